package pgxstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemkit/idemkit/core"
)

func TestStepResumes(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	side := db.sideTable(t)
	engine := core.New(s, core.WithLease(time.Second))
	runs := map[string]int{}
	step := func(ctx context.Context, name string) string {
		p, err := s.Step(ctx, name, func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
			runs[name]++
			_, err := tx.Exec(ctx, "INSERT INTO "+side+" VALUES ($1)", name)
			return []byte("payload-" + name), err
		})
		if err != nil {
			t.Fatalf("Step %s: %v", name, err)
		}
		return string(p)
	}
	crash := errors.New("crashed after step b")
	work := func(fail bool) func(ctx context.Context) ([]byte, error) {
		return func(ctx context.Context) ([]byte, error) {
			a := step(ctx, "a")
			b := step(ctx, "b")
			if fail {
				return nil, crash
			}
			return []byte(a + "," + b), nil
		}
	}
	call := core.Call{Key: "k", Input: []byte("pay 10")}
	if _, err := engine.Do(ctx, call, work(true)); !errors.Is(err, crash) {
		t.Fatalf("first attempt: %v; want %v", err, crash)
	}
	for i := range 2 {
		out, err := engine.Do(ctx, call, work(false))
		if err != nil || string(out) != "payload-a,payload-b" {
			t.Fatalf("attempt %d: %q, %v; want the recorded payloads", i+2, out, err)
		}
	}
	if runs["a"] != 1 || runs["b"] != 1 || db.count(t, side) != 2 {
		t.Errorf("step runs %v, side rows %d; want each step run once, 2 rows: the retry resumes", runs, db.count(t, side))
	}
	// Another request on another key starts over.
	if _, err := engine.Do(ctx, core.Call{Key: "k2", Input: []byte("pay 10")}, work(false)); err != nil || runs["a"] != 2 {
		t.Errorf("another key: %v, runs %v; want its steps run", err, runs)
	}
	// Steps expire with the prune.
	if _, err := db.pool.Exec(ctx, "UPDATE "+db.stepsTable()+" SET expires_at = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx); err != nil || n != 4 {
		t.Errorf("Prune of 4 expired steps: %d, %v; want 4", n, err)
	}
}

func TestStepFenced(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	side := db.sideTable(t)
	if _, err := s.Step(ctx, "a", nil); !errors.Is(err, ErrNoClaim) {
		t.Errorf("Step without a claim: %v; want ErrNoClaim", err)
	}
	engine := core.New(s)
	insert := func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
		_, err := tx.Exec(ctx, "INSERT INTO "+side+" VALUES ('x')")
		return nil, err
	}
	refused := errors.New("refused")
	_, err := engine.Do(ctx, core.Call{Key: "k"}, func(ctx context.Context) ([]byte, error) {
		if _, err := s.Step(ctx, "fails", func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
			insert(ctx, tx)
			return nil, refused
		}); !errors.Is(err, refused) {
			t.Errorf("Step whose fn fails: %v; want %v", err, refused)
		}
		key, _, _ := core.HeldClaim(ctx)
		// Another holder takes the claim over.
		if _, err := db.pool.Exec(ctx, "UPDATE "+db.table()+" SET lease_token = 'other' WHERE key = $1", key); err != nil {
			t.Fatal(err)
		}
		_, err := s.Step(ctx, "late", insert)
		return nil, err
	})
	if !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Step of a holder whose claim was taken over: %v; want ErrLeaseLost", err)
	}
	if n := db.count(t, side); n != 0 {
		t.Errorf("side rows = %d; want 0: a failed or fenced step rolls its writes back", n)
	}
	var steps int
	db.pool.QueryRow(ctx, "SELECT count(*) FROM "+db.stepsTable()).Scan(&steps)
	if steps != 0 {
		t.Errorf("steps recorded = %d; want 0", steps)
	}
}

func (db *testDB) stepsTable() string {
	return pgx.Identifier{db.schema, "idempotency_keys_steps"}.Sanitize()
}
