package pgxstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/core"
)

type coreResponse = core.Response

const time24h = 24 * time.Hour

// claimReq returns a claim on a fresh random key, with a random payload and
// token, leased for 30 s. A non-empty payload fixes the fingerprint.
func claimReq(t testing.TB, payload string) core.ClaimRequest {
	t.Helper()
	if payload == "" {
		payload = randHex(8)
	}
	return core.ClaimRequest{
		Key:         randHex(32),
		Fingerprint: sha256.Sum256([]byte(payload)),
		Token:       core.Token(randHex(16)),
		Lease:       30 * time.Second,
	}
}

// again is the same key and payload with a new token.
func again(req core.ClaimRequest) core.ClaimRequest {
	req.Token = core.Token(randHex(16))
	return req
}

func mustClaim(t testing.TB, s *Store, req core.ClaimRequest, want core.ClaimStatus) core.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), req)
	if err != nil {
		t.Fatalf("Claim(%s) error = %v; want %v", req.Key[:8], err, want)
	}
	if c.Status != want {
		t.Fatalf("Claim(%s) = %v; want %v", req.Key[:8], c.Status, want)
	}
	return c
}

func TestClaimDecisions(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, 8)
	s := db.store()
	ctx := ctxT(t)

	t.Run("AcquireInFlightMismatch", func(t *testing.T) {
		req := claimReq(t, "")
		mustClaim(t, s, req, core.ClaimAcquired)
		c := mustClaim(t, s, again(req), core.ClaimInFlight)
		if c.RetryAfter <= 25*time.Second || c.RetryAfter > 30*time.Second {
			t.Errorf("in-flight RetryAfter = %v; want the remaining lease, about 30s", c.RetryAfter)
		}
		other := again(req)
		other.Fingerprint[0] ^= 1
		mustClaim(t, s, other, core.ClaimMismatch) // mismatch before in-flight
	})

	t.Run("ReplayExactBytes", func(t *testing.T) {
		body := make([]byte, 3<<20) // large, binary, with NULs and invalid UTF-8
		for i := range body {
			body[i] = byte(i * 7)
		}
		cases := map[string]*core.Response{
			"Binary":   {Status: 201, Header: http.Header{"Location": {"/p/1"}, "X-Multi": {"a", "", "b"}}, Body: body},
			"Empty":    {Status: 204, Header: http.Header{}, Body: nil},
			"Omitted":  {Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, BodyOmitted: true},
			"NoHeader": {Status: 100 + 99, Body: []byte{0, 0xff, 0}},
		}
		for name, resp := range cases {
			t.Run(name, func(t *testing.T) {
				req := claimReq(t, "")
				mustClaim(t, s, req, core.ClaimAcquired)
				if err := s.Complete(ctx, req.Key, req.Token, resp, time24h); err != nil {
					t.Fatalf("Complete: %v", err)
				}
				c := mustClaim(t, s, again(req), core.ClaimReplay)
				got := c.Response
				wantHeader := resp.Header
				if wantHeader == nil {
					wantHeader = http.Header{}
				}
				if got.Status != resp.Status || !reflect.DeepEqual(got.Header, wantHeader) || got.BodyOmitted != resp.BodyOmitted {
					t.Errorf("replay = %d %v omitted=%v; want %d %v omitted=%v", got.Status, got.Header, got.BodyOmitted, resp.Status, wantHeader, resp.BodyOmitted)
				}
				wantBody := resp.Body
				if resp.BodyOmitted {
					wantBody = nil
				}
				if !bytes.Equal(got.Body, wantBody) {
					t.Errorf("replayed body: %d bytes; want %d exact bytes", len(got.Body), len(wantBody))
				}
				other := again(req)
				other.Fingerprint[31] ^= 1
				mustClaim(t, s, other, core.ClaimMismatch)
			})
		}
	})

	t.Run("FencedComplete", func(t *testing.T) {
		req := claimReq(t, "")
		mustClaim(t, s, req, core.ClaimAcquired)
		resp := &core.Response{Status: 200, Body: []byte("x")}
		for name, tok := range map[string]core.Token{"OtherToken": "nope", "Empty": ""} {
			if err := s.Complete(ctx, req.Key, tok, resp, time24h); !errors.Is(err, core.ErrLeaseLost) {
				t.Errorf("Complete with %s token: err = %v; want ErrLeaseLost", name, err)
			}
			if err := s.Renew(ctx, req.Key, tok, time.Minute); !errors.Is(err, core.ErrLeaseLost) {
				t.Errorf("Renew with %s token: err = %v; want ErrLeaseLost", name, err)
			}
			if err := s.Release(ctx, req.Key, tok); !errors.Is(err, core.ErrLeaseLost) {
				t.Errorf("Release with %s token: err = %v; want ErrLeaseLost", name, err)
			}
		}
		if err := s.Complete(ctx, "absent-"+req.Key, req.Token, resp, time24h); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Complete on absent key: err = %v; want ErrLeaseLost", err)
		}
		if err := s.Complete(ctx, req.Key, req.Token, resp, time24h); err != nil {
			t.Fatalf("Complete by holder: %v", err)
		}
		if err := s.Complete(ctx, req.Key, req.Token, resp, time24h); err != nil {
			t.Errorf("second Complete: err = %v; want nil (the record holds this token's completion)", err)
		}
		if err := s.Release(ctx, req.Key, req.Token); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Release after Complete: err = %v; want ErrLeaseLost", err)
		}
		if err := s.Renew(ctx, req.Key, req.Token, time.Minute); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Renew after Complete: err = %v; want ErrLeaseLost", err)
		}
	})

	t.Run("ReleaseThenReclaim", func(t *testing.T) {
		req := claimReq(t, "")
		mustClaim(t, s, req, core.ClaimAcquired)
		if err := s.Release(ctx, req.Key, req.Token); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := s.Release(ctx, req.Key, req.Token); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("second Release: err = %v; want ErrLeaseLost", err)
		}
		other := again(req)
		other.Fingerprint[0] ^= 1 // after a release anything may claim
		mustClaim(t, s, other, core.ClaimAcquired)
	})

	t.Run("LeaseLapseTakeoverFencing", func(t *testing.T) {
		req := claimReq(t, "")
		req.Lease = time.Minute // live for every check before the renewal below
		mustClaim(t, s, req, core.ClaimAcquired)
		mustClaim(t, s, again(req), core.ClaimInFlight)
		// A renewal sets the lease from now, here a short one, which the
		// test lets lapse.
		if err := s.Renew(ctx, req.Key, req.Token, 200*time.Millisecond); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := s.Renew(ctx, req.Key, req.Token, time.Second); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Renew after the lease lapsed: err = %v; want ErrLeaseLost", err)
		}
		taker := again(req)
		mustClaim(t, s, taker, core.ClaimAcquired)
		if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 200}, time24h); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Complete by the old holder: err = %v; want ErrLeaseLost: a lapsed holder must never overwrite the taker", err)
		}
		if err := s.Release(ctx, req.Key, req.Token); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Release by the old holder: err = %v; want ErrLeaseLost", err)
		}
		if err := s.Complete(ctx, req.Key, taker.Token, &core.Response{Status: 202}, time24h); err != nil {
			t.Errorf("Complete by the taker: %v", err)
		}
		c := mustClaim(t, s, again(req), core.ClaimReplay)
		if c.Response.Status != 202 {
			t.Errorf("replay status = %d; want 202", c.Response.Status)
		}
	})

	t.Run("ExpiredRecordIsAbsent", func(t *testing.T) {
		req := claimReq(t, "")
		mustClaim(t, s, req, core.ClaimAcquired)
		// Retained for a second: the replay right after is well inside it,
		// and the test waits for its end.
		if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 200}, time.Second); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, again(req), core.ClaimReplay)
		time.Sleep(1100 * time.Millisecond)
		other := again(req)
		other.Fingerprint[0] ^= 1
		mustClaim(t, s, other, core.ClaimAcquired)
		mustClaim(t, s, again(other), core.ClaimInFlight)
	})

	t.Run("CompleteAfterLapseIsLost", func(t *testing.T) {
		req := claimReq(t, "")
		req.Lease = 50 * time.Millisecond
		mustClaim(t, s, req, core.ClaimAcquired)
		time.Sleep(100 * time.Millisecond)
		if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 200}, time24h); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Complete after the lease lapsed: err = %v; want ErrLeaseLost (expired records count as absent)", err)
		}
	})

	t.Run("InvalidInput", func(t *testing.T) {
		req := claimReq(t, "")
		req.Key = "bad\x00key"
		if _, err := s.Claim(ctx, req); err == nil || errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("Claim with a NUL in the key: err = %v; want a plain error", err)
		}
		req = claimReq(t, "")
		mustClaim(t, s, req, core.ClaimAcquired)
		if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 600}, time24h); err == nil {
			t.Errorf("Complete with status 600: nil error; want a refusal")
		}
	})
}

// TestClaimCorruptRows: a stored row the store cannot read back as a
// record (written by hand, the CHECK constraints allow it) is reported as
// core.ErrCorruptRecord, never replayed and never a panic.
func TestClaimCorruptRows(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	tbl := db.table()
	for _, tc := range []struct{ name, headers, expires string }{
		{"InfiniteExpiry", `'\x00'::bytea`, `'infinity'`},
		{"GarbageHeaders", `'\xffff'::bytea`, `now() + interval '1 day'`},
		{"TrailingHeaderBytes", `'\x0000'::bytea`, `now() + interval '1 day'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := claimReq(t, "payload")
			_, err := db.pool.Exec(ctx, `INSERT INTO `+tbl+` (key, fingerprint, state, status, headers, body, completed_at, expires_at)
				VALUES ($1, $2, 'completed', 201, `+tc.headers+`, '\x'::bytea, now(), `+tc.expires+`)`, req.Key, req.Fingerprint[:])
			if err != nil {
				t.Fatalf("inserting the row: %v", err)
			}
			c, err := s.Claim(ctx, req)
			if !errors.Is(err, core.ErrCorruptRecord) {
				t.Fatalf("Claim = %v, %v; want core.ErrCorruptRecord", c.Status, err)
			}
		})
	}
}

// TestClaimRace runs many rounds of 64 simultaneous claims of one key, and
// of 64 simultaneous takeovers of an expired record: exactly one must win,
// and every other claim must get a decision.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	// 32 connections: 64 goroutines still race, with 32 statements in the
	// server at once, and the package's tests together stay well under a
	// default max_connections of 100.
	db := newTestDB(t, 32)
	s := db.store()
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	for _, mode := range []string{"Fresh", "ExpiredTakeover", "LapsedLease"} {
		t.Run(mode, func(t *testing.T) {
			for r := 0; r < rounds; r++ {
				base := claimReq(t, "same")
				switch mode {
				case "ExpiredTakeover":
					mustClaim(t, s, base, core.ClaimAcquired)
					if err := s.Complete(context.Background(), base.Key, base.Token, &core.Response{Status: 200}, time.Microsecond); err != nil {
						t.Fatal(err)
					}
				case "LapsedLease":
					base.Lease = time.Microsecond
					mustClaim(t, s, base, core.ClaimAcquired)
					base.Lease = 30 * time.Second
				}
				time.Sleep(time.Millisecond)
				counts := race(t, s, base, 64)
				if counts[core.ClaimAcquired] != 1 || counts[core.ClaimInFlight] != 63 {
					t.Fatalf("round %d: 64 concurrent claims gave %v; want exactly 1 acquired and 63 in flight", r, counts)
				}
			}
		})
	}
	t.Cleanup(func() {
		// How often a claim lost the insert race and decided from ON
		// CONFLICT's view of the row (the path cur cannot see).
		time.Sleep(600 * time.Millisecond) // statistics are flushed lazily
		var ins, upd int64
		if err := db.pool.QueryRow(context.Background(),
			"SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE schemaname = $1", db.schema).Scan(&ins, &upd); err == nil {
			t.Logf("rows inserted %d, updated %d (conflict path taken and takeovers)", ins, upd)
		}
	})
	t.Run("MixedFingerprints", func(t *testing.T) {
		for r := 0; r < rounds/4; r++ {
			base := claimReq(t, "")
			start := make(chan struct{})
			type res struct {
				fp  byte
				c   core.Claim
				err error
			}
			out := make(chan res, 64)
			for i := 0; i < 64; i++ {
				req := again(base)
				req.Fingerprint[0] = byte(i % 2)
				go func() {
					<-start
					c, err := s.Claim(context.Background(), req)
					out <- res{req.Fingerprint[0], c, err}
				}()
			}
			close(start)
			var winner = -1
			var all []res
			for i := 0; i < 64; i++ {
				r := <-out
				if r.err != nil {
					t.Fatalf("Claim: %v", r.err)
				}
				if r.c.Status == core.ClaimAcquired {
					if winner >= 0 {
						t.Fatalf("two claims acquired one key")
					}
					winner = int(r.fp)
				}
				all = append(all, r)
			}
			for _, r := range all {
				if r.c.Status == core.ClaimAcquired {
					continue
				}
				want := core.ClaimInFlight
				if int(r.fp) != winner {
					want = core.ClaimMismatch
				}
				if r.c.Status != want {
					t.Fatalf("fingerprint %d, winner %d: got %v; want %v", r.fp, winner, r.c.Status, want)
				}
			}
		}
	})
}

func race(t *testing.T, s *Store, base core.ClaimRequest, n int) map[core.ClaimStatus]int {
	t.Helper()
	start := make(chan struct{})
	type res struct {
		st  core.ClaimStatus
		err error
	}
	out := make(chan res, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		req := again(base)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := s.Claim(context.Background(), req)
			out <- res{c.Status, err}
		}()
	}
	close(start)
	wg.Wait()
	close(out)
	counts := map[core.ClaimStatus]int{}
	for r := range out {
		if r.err != nil {
			t.Fatalf("Claim: %v; want a decision for every concurrent claim", r.err)
		}
		counts[r.st]++
	}
	return counts
}

func TestErrorsMapToUnavailable(t *testing.T) {
	t.Parallel()
	url := postgresURL(t)
	db := newTestDB(t, 4)
	req := claimReq(t, "")

	check := func(t *testing.T, s *Store, ctx context.Context, what string) {
		t.Helper()
		_, err := s.Claim(ctx, req)
		errs := map[string]error{
			"Claim":    err,
			"Complete": s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 200}, time.Hour),
			"Release":  s.Release(ctx, req.Key, req.Token),
			"Renew":    s.Renew(ctx, req.Key, req.Token, time.Hour),
		}
		_, errs["Prune"] = s.Prune(ctx)
		for op, err := range errs {
			if !errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf("%s with %s: err = %v; want ErrStoreUnavailable", op, what, err)
			}
		}
	}

	t.Run("ConnectionRefused", func(t *testing.T) {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.Host, cfg.ConnConfig.Port = "127.0.0.1", 1 // nothing listens there
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		check(t, New(pool, db.opts...), context.Background(), "connection refused")
	})
	t.Run("ClosedPool", func(t *testing.T) {
		pool := newPool(t, url, 2)
		pool.Close()
		check(t, New(pool, db.opts...), context.Background(), "a closed pool")
	})
	t.Run("PoolExhausted", func(t *testing.T) {
		pool := newPool(t, url, 1)
		conn, err := pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		check(t, New(pool, db.opts...), ctx, "the pool exhausted until the deadline")
		_, err = New(pool, db.opts...).Claim(ctx, req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Claim on an exhausted pool: err = %v; want the cause (context.DeadlineExceeded) wrapped", err)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		check(t, db.store(), ctx, "a cancelled context")
	})
	t.Run("ReadOnly", func(t *testing.T) {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		s := New(pool, db.opts...)
		_, err = s.Claim(context.Background(), claimReq(t, ""))
		if !errors.Is(err, core.ErrStoreUnavailable) || !hasSQLState(err, "25006") {
			t.Errorf("Claim on a read-only session: err = %v; want ErrStoreUnavailable wrapping SQLSTATE 25006", err)
		}
	})
	t.Run("AdminShutdown", func(t *testing.T) {
		pool := newPool(t, url, 1)
		s := New(pool, db.opts...)
		var pid int32
		if err := pool.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := db.pool.Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		_, err := s.Claim(context.Background(), claimReq(t, ""))
		if !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("Claim on a terminated connection: err = %v; want ErrStoreUnavailable", err)
		}
		t.Logf("terminated backend: %v", err)
	})
	t.Run("MissingTableIsNotUnavailable", func(t *testing.T) {
		s := New(db.pool, WithSchema(db.schema), WithTable("no_such_table"))
		_, err := s.Claim(context.Background(), claimReq(t, ""))
		if err == nil || errors.Is(err, core.ErrStoreUnavailable) || !hasSQLState(err, "42P01") {
			t.Errorf("Claim on a missing table: err = %v; want a plain error wrapping SQLSTATE 42P01", err)
		}
	})
}

func TestUnavailableClassification(t *testing.T) {
	for code, want := range map[string]bool{
		"40001": true, "40P01": true, "25006": true, "57P01": true, "53300": true, "08006": true,
		"42P01": false, "23514": false, "22021": false,
	} {
		err := fmt.Errorf("x: %w", &pgconnError{Code: code})
		if got := unavailable(err); got != want {
			t.Errorf("unavailable(SQLSTATE %s) = %v; want %v", code, got, want)
		}
	}
}

func TestNewPanicsOnNilPool(t *testing.T) {
	defer func() {
		r := recover()
		if msg, ok := r.(string); !ok || len(msg) < 10 || msg[:10] != "pgxstore: " {
			t.Errorf("New(nil) panicked with %v; want a message with the pgxstore: prefix", r)
		}
	}()
	New(nil)
}
