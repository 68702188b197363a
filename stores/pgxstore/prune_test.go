package pgxstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// seed inserts n completed rows named prefix-1…n, expired (or live when
// live is set), with one statement.
func seed(ctx context.Context, t *testing.T, db *testDB, prefix string, n int, live bool) {
	t.Helper()
	expires := "now() - interval '1 hour'"
	if live {
		expires = "now() + interval '1 day'"
	}
	tbl := db.table()
	_, err := db.pool.Exec(ctx, `INSERT INTO `+tbl+` (key, fingerprint, state, status, headers, body, created_at, completed_at, expires_at)
		SELECT $1 || g, sha256(g::text::bytea), 'completed', 200, '\x00'::bytea, convert_to('{"n":' || g || '}', 'UTF8'),
			now() - interval '2 days', now() - interval '2 days', `+expires+`
		FROM generate_series(1, $2::int) g`, prefix+"-", n)
	if err != nil {
		t.Fatalf("seed %d rows: %v", n, err)
	}
}

func countRows(ctx context.Context, t *testing.T, db *testDB) int64 {
	t.Helper()
	var n int64
	tbl := db.table()
	if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPruneWhileClaiming prunes 100k expired rows in batches while 8
// workers keep claiming and completing new keys; the count must be exact,
// live rows must survive, and no claim may fail.
func TestPruneWhileClaiming(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 16)
	const expired, live = 100_000, 1_000
	seed(ctx, t, db, "old", expired, false)
	seed(ctx, t, db, "live", live, true)
	s := db.store(WithPruneBatch(1000))

	stop := make(chan struct{})
	var claims atomic.Int64
	var maxLatency atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req := claimReq(t, "")
				start := time.Now()
				c, err := s.Claim(ctx, req)
				if err == nil && c.Status != core.ClaimAcquired {
					err = errStatus(c.Status)
				}
				if err == nil {
					err = s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 201, Body: []byte("ok")}, time.Hour)
				}
				if d := int64(time.Since(start)); d > maxLatency.Load() {
					maxLatency.Store(d)
				}
				if err != nil {
					errs <- err
					return
				}
				claims.Add(1)
			}
		}()
	}

	start := time.Now()
	pruned, err := s.Prune(ctx)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("claim during prune: %v", err)
	}
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if pruned != expired {
		t.Errorf("Prune() = %d; want %d expired rows deleted", pruned, expired)
	}
	if got, want := countRows(ctx, t, db), live+claims.Load(); got != want {
		t.Errorf("rows left = %d; want %d (live rows and new claims must survive)", got, want)
	}
	if n, err := s.Prune(ctx); n != 0 || err != nil {
		t.Errorf("second Prune() = %d, %v; want 0, nil", n, err)
	}
	t.Logf("pruned %d rows in %v (batches of 1000) while %d claim+complete ran; slowest claim+complete %v",
		pruned, elapsed, claims.Load(), time.Duration(maxLatency.Load()))
	if claims.Load() == 0 {
		t.Errorf("no claim completed while pruning; want claims to keep working")
	}
}

type errStatus core.ClaimStatus

func (e errStatus) Error() string { return "unexpected claim status " + core.ClaimStatus(e).String() }

func TestStartPruner(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	seed(ctx, t, db, "old", 250, false)
	reports := make(chan int64, 100)
	s := db.store(WithPruneBatch(100), WithPruneReport(func(n int64, err error) {
		if err != nil {
			t.Errorf("pruner report: %v", err)
		}
		reports <- n
	}))
	stop := s.StartPruner(ctx, 20*time.Millisecond)
	select {
	case n := <-reports:
		if n != 250 {
			t.Errorf("first pruner run deleted %d rows; want 250", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pruner did not run within 10s")
	}
	stop()
	stop() // idempotent
	if got := countRows(ctx, t, db); got != 0 {
		t.Errorf("rows left = %d; want 0", got)
	}
}
