package redisstore

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/redis/go-redis/v9"
)

// TestSingleNode runs this package's own checks against the Redis of
// IDEMKIT_REDIS_URL; the conformance suites run on it from test/.
func TestSingleNode(t *testing.T) {
	client := singleClient(t)
	t.Run("Checks", func(t *testing.T) { runStoreChecks(t, client) })
}

// TestCluster runs the same against a private 3-master Redis Cluster
// through a ClusterClient, and checks that records spread over every
// master; the conformance suites run on a cluster from test/.
func TestCluster(t *testing.T) {
	client, addrs := clusterClient(t)
	t.Run("Checks", func(t *testing.T) { runStoreChecks(t, client) })
	t.Run("Spread", func(t *testing.T) { checkSpread(t, client, addrs) })
}

// checkSpread claims many records and counts, on each master, the keys
// under the store's prefix: every master must hold some (the hash tag is
// the storage key, not the prefix), and together all of them.
func checkSpread(t *testing.T, client *redis.ClusterClient, masters []string) {
	const n = 300
	ctx := context.Background()
	s := New(client, WithPrefix(uniquePrefix(t)))
	for i := 0; i < n; i++ {
		claim(t, s, newKey(t), fp(1), newToken(t), time.Minute)
	}
	total := 0
	for _, addr := range masters {
		node := redis.NewClient(&redis.Options{Addr: addr})
		var keys []string
		iter := node.Scan(ctx, 0, s.prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		err := iter.Err()
		node.Close()
		if err != nil {
			t.Fatalf("SCAN on %s: %v", addr, err)
		}
		t.Logf("master %s holds %d of %d records", addr, len(keys), n)
		if len(keys) == 0 {
			t.Errorf("master %s holds none of %d records; want records spread over every master", addr, n)
		}
		total += len(keys)
	}
	if total != n {
		t.Errorf("masters hold %d records in all; want %d (each record exactly once)", total, n)
	}
}

// runStoreChecks is this package's own focused store checks; the
// conformance suites run on the same servers from the test-only module in
// test/.
func runStoreChecks(t *testing.T, client redis.UniversalClient) {
	newStore := func(t *testing.T) *Store {
		return New(client, WithPrefix(uniquePrefix(t)))
	}
	checks := []struct {
		name string
		fn   func(t *testing.T, s *Store, client redis.UniversalClient)
	}{
		{"StateMachine", checkStateMachine},
		{"MismatchBeforeInFlight", checkMismatchBeforeInFlight},
		{"ConcurrentClaim", checkConcurrentClaim},
		{"Fencing", checkFencing},
		{"LeaseExpiry", checkLeaseExpiry},
		{"Renew", checkRenew},
		{"Retention", checkRetention},
		{"BinaryExact", checkBinaryExact},
		{"KeyLayout", checkKeyLayout},
		{"CorruptRecord", checkCorruptRecord},
		{"Context", checkContext},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newStore(t), client)
		})
	}
}

func claim(t *testing.T, s *Store, key string, f core.Fingerprint, tok core.Token, lease time.Duration) core.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), core.ClaimRequest{Key: key, Fingerprint: f, Token: tok, Lease: lease})
	if err != nil {
		t.Fatalf("Claim(%s) error: %v", key, err)
	}
	return c
}

func sampleResponse() *core.Response {
	return &core.Response{
		Status: http.StatusCreated,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "b", ""}, "Location": {"/payments/1"}},
		Body:   []byte(`{"id":"1"}`),
	}
}

func checkStateMachine(t *testing.T, s *Store, _ redis.UniversalClient) {
	ctx := context.Background()
	key, tok := newKey(t), newToken(t)
	if c := claim(t, s, key, fp(1), tok, 10*time.Second); c.Status != core.ClaimAcquired {
		t.Fatalf("Claim on absent key = %v; want acquired", c.Status)
	}
	c := claim(t, s, key, fp(1), newToken(t), 10*time.Second)
	if c.Status != core.ClaimInFlight {
		t.Fatalf("second Claim = %v; want in-flight: a claim on an in-flight key must not succeed", c.Status)
	}
	if c.RetryAfter <= 9*time.Second || c.RetryAfter > 10*time.Second {
		t.Errorf("RetryAfter = %v; want the remaining lease, in (9s, 10s]", c.RetryAfter)
	}
	want := sampleResponse()
	if err := s.Complete(ctx, key, tok, want, time.Hour); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	c = claim(t, s, key, fp(1), newToken(t), 10*time.Second)
	if c.Status != core.ClaimReplay {
		t.Fatalf("Claim on completed key = %v; want replay", c.Status)
	}
	if !reflect.DeepEqual(c.Response, want) {
		t.Errorf("replayed response = %#v; want %#v", c.Response, want)
	}
	if c := claim(t, s, key, fp(2), newToken(t), 10*time.Second); c.Status != core.ClaimMismatch {
		t.Errorf("Claim with other fingerprint on completed key = %v; want mismatch", c.Status)
	}
	if err := s.Complete(ctx, key, tok, want, time.Hour); err != nil {
		t.Errorf("second Complete by the holder = %v; want nil: completing is idempotent for its holder", err)
	}
	if err := s.Complete(ctx, key, newToken(t), want, time.Hour); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Complete with another token = %v; want ErrLeaseLost: a completed record cannot be completed again", err)
	}
	if err := s.Release(ctx, key, tok); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Release of completed record = %v; want ErrLeaseLost", err)
	}
	if err := s.Renew(ctx, key, tok, time.Second); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Renew of completed record = %v; want ErrLeaseLost", err)
	}
	// Release frees the key at once.
	key2, tok2 := newKey(t), newToken(t)
	claim(t, s, key2, fp(1), tok2, 10*time.Second)
	if err := s.Release(ctx, key2, tok2); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if c := claim(t, s, key2, fp(3), newToken(t), 10*time.Second); c.Status != core.ClaimAcquired {
		t.Errorf("Claim after Release = %v; want acquired", c.Status)
	}
	if err := s.Release(ctx, newKey(t), tok2); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Release of absent key = %v; want ErrLeaseLost", err)
	}
}

func checkMismatchBeforeInFlight(t *testing.T, s *Store, _ redis.UniversalClient) {
	key := newKey(t)
	claim(t, s, key, fp(1), newToken(t), 10*time.Second)
	if c := claim(t, s, key, fp(9), newToken(t), 10*time.Second); c.Status != core.ClaimMismatch {
		t.Errorf("Claim with other fingerprint on in-flight key = %v; want mismatch (reported before in-flight)", c.Status)
	}
}

func checkConcurrentClaim(t *testing.T, s *Store, _ redis.UniversalClient) {
	const n = 64
	key := newKey(t)
	results := make(chan core.ClaimStatus, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		tok := newToken(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := s.Claim(context.Background(), core.ClaimRequest{Key: key, Fingerprint: fp(1), Token: tok, Lease: 10 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			results <- c.Status
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Claim error: %v", err)
	}
	acquired := 0
	for st := range results {
		switch st {
		case core.ClaimAcquired:
			acquired++
		case core.ClaimInFlight:
		default:
			t.Errorf("concurrent Claim = %v; want acquired or in-flight", st)
		}
	}
	if acquired != 1 {
		t.Errorf("%d of %d concurrent Claims acquired; want exactly 1", acquired, n)
	}
}

func checkFencing(t *testing.T, s *Store, _ redis.UniversalClient) {
	ctx := context.Background()
	key, old := newKey(t), newToken(t)
	claim(t, s, key, fp(1), old, 30*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	cur := newToken(t)
	if c := claim(t, s, key, fp(1), cur, 10*time.Second); c.Status != core.ClaimAcquired {
		t.Fatalf("Claim after lease lapsed = %v; want acquired", c.Status)
	}
	if err := s.Renew(ctx, key, old, time.Minute); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Renew with old token = %v; want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, key, old, sampleResponse(), time.Hour); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Complete with old token = %v; want ErrLeaseLost: a holder whose lease was taken over must not overwrite", err)
	}
	if err := s.Release(ctx, key, old); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Release with old token = %v; want ErrLeaseLost", err)
	}
	if c := claim(t, s, key, fp(1), newToken(t), time.Second); c.Status != core.ClaimInFlight {
		t.Errorf("Claim after stale calls = %v; want in-flight (new holder untouched)", c.Status)
	}
	if err := s.Complete(ctx, key, cur, sampleResponse(), time.Hour); err != nil {
		t.Errorf("Complete with current token: %v", err)
	}
}

func checkLeaseExpiry(t *testing.T, s *Store, client redis.UniversalClient) {
	key := newKey(t)
	const lease = 500 * time.Millisecond // the PTTL is read well inside it; the test waits for its end
	claim(t, s, key, fp(1), newToken(t), lease)
	pttl := client.PTTL(context.Background(), s.recordKey(key)).Val()
	if pttl <= 0 || pttl > lease {
		t.Errorf("PTTL of pending record = %v; want (0, %v]: pending claims expire with the lease", pttl, lease)
	}
	time.Sleep(lease + 100*time.Millisecond)
	if c := claim(t, s, key, fp(2), newToken(t), time.Second); c.Status != core.ClaimAcquired {
		t.Errorf("Claim after lease lapsed = %v; want acquired (an expired claim is absent)", c.Status)
	}
}

func checkRenew(t *testing.T, s *Store, client redis.UniversalClient) {
	ctx := context.Background()
	key, tok := newKey(t), newToken(t)
	// A long lease, renewed to a shorter one: the PTTL shows the renewal
	// set the lease from now.
	claim(t, s, key, fp(1), tok, 10*time.Second)
	if err := s.Renew(ctx, key, tok, 5*time.Second); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	pttl := client.PTTL(ctx, s.recordKey(key)).Val()
	if pttl <= 4*time.Second || pttl > 5*time.Second {
		t.Errorf("PTTL after Renew(5s) = %v; want (4s, 5s]", pttl)
	}
	if c := claim(t, s, key, fp(1), newToken(t), time.Second); c.Status != core.ClaimInFlight {
		t.Errorf("Claim after renewed lease = %v; want in-flight", c.Status)
	}
	if err := s.Renew(ctx, key, newToken(t), time.Second); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Renew with other token = %v; want ErrLeaseLost", err)
	}
	if err := s.Renew(ctx, newKey(t), tok, time.Second); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Renew of absent key = %v; want ErrLeaseLost", err)
	}
}

func checkRetention(t *testing.T, s *Store, client redis.UniversalClient) {
	ctx := context.Background()
	key, tok := newKey(t), newToken(t)
	claim(t, s, key, fp(1), tok, 10*time.Second)
	const ttl = 500 * time.Millisecond // read well inside it; the test waits for its end
	if err := s.Complete(ctx, key, tok, sampleResponse(), ttl); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	pttl := client.PTTL(ctx, s.recordKey(key)).Val()
	if pttl <= 0 || pttl > ttl {
		t.Errorf("PTTL of completed record = %v; want (0, %v]: completed records expire with the TTL", pttl, ttl)
	}
	if c := claim(t, s, key, fp(1), newToken(t), time.Second); c.Status != core.ClaimReplay {
		t.Errorf("Claim before TTL = %v; want replay", c.Status)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if c := claim(t, s, key, fp(2), newToken(t), time.Second); c.Status != core.ClaimAcquired {
		t.Errorf("Claim after TTL = %v; want acquired (expired records are absent)", c.Status)
	}
}

func checkBinaryExact(t *testing.T, s *Store, _ redis.UniversalClient) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	cases := []struct {
		name string
		resp *core.Response
	}{
		{"NUL", &core.Response{Status: 200, Header: http.Header{}, Body: []byte("a\x00b\x00")}},
		{"InvalidUTF8", &core.Response{Status: 200, Header: http.Header{"X-Bin": {"\xff\xfe\x01"}}, Body: []byte{0xff, 0xc3, 0x28}}},
		{"Empty", &core.Response{Status: 204, Header: http.Header{}, Body: []byte{}}},
		{"Large", &core.Response{Status: 200, Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: big}},
		{"Omitted", &core.Response{Status: 201, Header: http.Header{"Location": {"/x"}}, Body: []byte{}, BodyOmitted: true}},
		{"LuaLike", &core.Response{Status: 299, Header: http.Header{"P": {"C"}}, Body: []byte("P" + strings.Repeat("\x00", 40) + "C")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, tok := newKey(t), newToken(t)
			claim(t, s, key, fp(7), tok, 10*time.Second)
			if err := s.Complete(context.Background(), key, tok, c.resp, time.Hour); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			got := claim(t, s, key, fp(7), newToken(t), time.Second)
			if got.Status != core.ClaimReplay {
				t.Fatalf("Claim = %v; want replay", got.Status)
			}
			r := got.Response
			if r.Status != c.resp.Status || r.BodyOmitted != c.resp.BodyOmitted ||
				!reflect.DeepEqual(r.Header, c.resp.Header) || !bytes.Equal(r.Body, c.resp.Body) {
				t.Errorf("replayed %d %v omitted=%v body %d bytes; want %d %v omitted=%v body %d bytes, byte for byte",
					r.Status, r.Header, r.BodyOmitted, len(r.Body), c.resp.Status, c.resp.Header, c.resp.BodyOmitted, len(c.resp.Body))
			}
		})
	}
}

func checkKeyLayout(t *testing.T, s *Store, client redis.UniversalClient) {
	ctx := context.Background()
	key, tok := newKey(t), newToken(t)
	claim(t, s, key, fp(1), tok, 10*time.Second)
	rkey := s.recordKey(key)
	if want := s.prefix + "{" + key + "}"; rkey != want {
		t.Fatalf("record key = %q; want %q", rkey, want)
	}
	typ, err := client.Type(ctx, rkey).Result()
	if err != nil || typ != "string" {
		t.Fatalf("TYPE %s = %q, %v; want string: one key per record", rkey, typ, err)
	}
	if err := s.Complete(ctx, key, tok, sampleResponse(), time.Hour); err != nil {
		t.Fatal(err)
	}
	v, err := client.Get(ctx, rkey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	f := fp(1)
	want := append(append(append(append([]byte{stateCompletedToken}, f[:]...), byte(len(tok))), tok...), codec.EncodeResponse(sampleResponse())...)
	if !bytes.Equal(v, want) {
		t.Errorf("stored record = %q; want 'D' + fingerprint + token length + token + codec.EncodeResponse", v)
	}
}

func checkCorruptRecord(t *testing.T, s *Store, client redis.UniversalClient) {
	ctx := context.Background()
	f := fp(1)
	cases := []struct {
		name  string
		write func(rkey string) error
	}{
		{"Short", func(k string) error { return client.Set(ctx, k, "C", time.Minute).Err() }},
		{"BadState", func(k string) error { return client.Set(ctx, k, "X"+string(f[:])+"tok", time.Minute).Err() }},
		{"BadResponse", func(k string) error { return client.Set(ctx, k, "C"+string(f[:])+"\x09garbage", time.Minute).Err() }},
		{"WrongType", func(k string) error { return client.HSet(ctx, k, "a", "b").Err() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := newKey(t)
			if err := c.write(s.recordKey(key)); err != nil {
				t.Fatal(err)
			}
			_, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: f, Token: newToken(t), Lease: time.Second})
			if !errors.Is(err, core.ErrCorruptRecord) || !errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf("Claim on corrupt record = %v; want ErrCorruptRecord and ErrStoreUnavailable", err)
			}
			if errors.Is(err, redis.Nil) {
				t.Errorf("Claim error %v wraps redis.Nil", err)
			}
		})
	}
}

func checkContext(t *testing.T, s *Store, _ redis.UniversalClient) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	key, tok := newKey(t), newToken(t)
	_, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp(1), Token: tok, Lease: time.Second})
	if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Claim with cancelled context = %v; want ErrStoreUnavailable and context.Canceled", err)
	}
	for name, err := range map[string]error{
		"Complete": s.Complete(ctx, key, tok, sampleResponse(), time.Hour),
		"Release":  s.Release(ctx, key, tok),
		"Renew":    s.Renew(ctx, key, tok, time.Second),
	} {
		if !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("%s with cancelled context = %v; want ErrStoreUnavailable", name, err)
		}
	}
	dctx, dcancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer dcancel()
	time.Sleep(time.Millisecond)
	if _, err := s.Claim(dctx, core.ClaimRequest{Key: key, Fingerprint: fp(1), Token: tok, Lease: time.Second}); !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Claim past deadline = %v; want ErrStoreUnavailable and context.DeadlineExceeded", err)
	}
}

func TestNewPanicsOnNilClient(t *testing.T) {
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.HasPrefix(msg, "redisstore: ") {
			t.Errorf("New(nil) panicked with %v; want a message starting with \"redisstore: \"", r)
		}
	}()
	New(nil)
}

func TestMillis(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{{-time.Second, 1}, {0, 1}, {time.Microsecond, 1}, {time.Millisecond, 1}, {1500 * time.Microsecond, 2}, {30 * time.Second, 30000}} {
		if got := millis(c.d); got != c.want {
			t.Errorf("millis(%v) = %d; want %d", c.d, got, c.want)
		}
	}
}
