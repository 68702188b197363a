package redisstore

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
)

// fastFailClient is a client of addr with short timeouts and no retries,
// as a deployment that prefers a quick 503 to a slow answer would use.
func fastFailClient(t *testing.T, addr string) *redis.Client {
	c := newClient(t, &redis.Options{
		Addr:                  addr,
		DialTimeout:           100 * time.Millisecond,
		ReadTimeout:           200 * time.Millisecond,
		WriteTimeout:          200 * time.Millisecond,
		PoolTimeout:           300 * time.Millisecond,
		MaxRetries:            -1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
		PoolSize:              8,
	})
	return c
}

// TestRedisDown stops a private redis-server mid-test: every store call
// fails fast with ErrStoreUnavailable, and when the server is back the
// records are as they were and service resumes.
func TestRedisDown(t *testing.T) {
	srv := svctest.StartRedis(t)
	s := New(fastFailClient(t, srv.Addr()), WithPrefix(uniquePrefix(t)))
	ctx := context.Background()

	done, doneTok := newKey(t), newToken(t)
	want := sampleResponse()
	claim(t, s, done, fp(1), doneTok, time.Minute)
	if err := s.Complete(ctx, done, doneTok, want, time.Hour); err != nil {
		t.Fatalf("Complete before the outage: %v", err)
	}
	pending, pendTok := newKey(t), newToken(t)
	claim(t, s, pending, fp(2), pendTok, time.Minute)

	srv.Stop()

	calls := []struct {
		name string
		call func() error
	}{
		{"Claim", func() error {
			_, err := s.Claim(ctx, core.ClaimRequest{Key: newKey(t), Fingerprint: fp(3), Token: newToken(t), Lease: time.Minute})
			return err
		}},
		{"ClaimReplay", func() error {
			_, err := s.Claim(ctx, core.ClaimRequest{Key: done, Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
			return err
		}},
		{"Complete", func() error { return s.Complete(ctx, pending, pendTok, want, time.Hour) }},
		{"Renew", func() error { return s.Renew(ctx, pending, pendTok, time.Minute) }},
		{"Release", func() error { return s.Release(ctx, pending, pendTok) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		took := time.Since(start)
		if !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("%s while Redis is down = %v; want ErrStoreUnavailable", c.name, err)
		}
		if errors.Is(err, redis.Nil) || errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("%s while Redis is down = %v; must wrap neither redis.Nil nor ErrLeaseLost", c.name, err)
		}
		if took > time.Second {
			t.Errorf("%s while Redis is down took %v; want a quick failure (< 1s with these client timeouts)", c.name, took)
		}
		t.Logf("%s while down: %v after %v", c.name, err, took.Round(time.Millisecond))
	}

	srv.Start()

	// The client reconnects on its own; the first calls may still meet
	// connections of the old process.
	deadline := time.Now().Add(5 * time.Second)
	var c core.Claim
	for {
		var err error
		c, err = s.Claim(ctx, core.ClaimRequest{Key: done, Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim still failing 5s after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.Status != core.ClaimReplay || !reflect.DeepEqual(c.Response, want) {
		t.Errorf("after restart, Claim on the completed key = %v %#v; want the same replay as before the outage", c.Status, c.Response)
	}
	if c := claim(t, s, pending, fp(2), newToken(t), time.Minute); c.Status != core.ClaimInFlight {
		t.Errorf("after restart, Claim on the pending key = %v; want in-flight (the claim survived, untouched)", c.Status)
	}
	if err := s.Complete(ctx, pending, pendTok, want, time.Hour); err != nil {
		t.Errorf("after restart, Complete by the holder: %v", err)
	}
	if c := claim(t, s, newKey(t), fp(4), newToken(t), time.Minute); c.Status != core.ClaimAcquired {
		t.Errorf("after restart, Claim on a new key = %v; want acquired", c.Status)
	}
}

// TestRedisHung freezes a private redis-server: calls fail with
// ErrStoreUnavailable by the client's read timeout, or sooner by the
// context's deadline, and succeed again once it runs.
func TestRedisHung(t *testing.T) {
	srv := svctest.StartRedis(t)
	s := New(fastFailClient(t, srv.Addr()), WithPrefix(uniquePrefix(t)))
	key, tok := newKey(t), newToken(t)
	claim(t, s, key, fp(1), tok, time.Minute)

	srv.Pause()
	start := time.Now()
	_, err := s.Claim(context.Background(), core.ClaimRequest{Key: newKey(t), Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
	if took := time.Since(start); !errors.Is(err, core.ErrStoreUnavailable) || took > time.Second {
		t.Errorf("Claim on a hung server = %v after %v; want ErrStoreUnavailable within the 200ms read timeout", err, took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s.Renew(ctx, key, tok, time.Minute)
	if took := time.Since(start); !errors.Is(err, core.ErrStoreUnavailable) || took > 150*time.Millisecond {
		t.Errorf("Renew with a 50ms deadline on a hung server = %v after %v; want ErrStoreUnavailable by the deadline", err, took)
	}
	srv.Resume()

	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Complete(context.Background(), key, tok, sampleResponse(), time.Hour)
		if err == nil {
			break
		}
		if !errors.Is(err, core.ErrStoreUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Complete after the server resumed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := claim(t, s, key, fp(1), newToken(t), time.Minute); c.Status != core.ClaimReplay {
		t.Errorf("Claim after resume = %v; want replay", c.Status)
	}
}

// TestRedisReadOnly points the store at a read-only replica: writes fail
// with READONLY, which must surface as ErrStoreUnavailable.
func TestRedisReadOnly(t *testing.T) {
	primary := svctest.StartRedis(t)
	replica := svctest.StartRedis(t)
	host, port := "127.0.0.1", primary.Addr()[len("127.0.0.1:"):]
	if _, err := svctest.RedisDo(replica.Addr(), time.Second, "REPLICAOF", host, port); err != nil {
		t.Fatalf("REPLICAOF: %v", err)
	}
	s := New(fastFailClient(t, replica.Addr()), WithPrefix(uniquePrefix(t)))
	_, err := s.Claim(context.Background(), core.ClaimRequest{Key: newKey(t), Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
	if !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("Claim on a read-only replica = %v; want ErrStoreUnavailable", err)
	}
	t.Logf("Claim on a replica: %v", err)
}
