package pgxstore

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/idemkit/idemkit/core"
)

// sideTable creates a table for a handler's own writes in the test schema.
func (db *testDB) sideTable(t *testing.T) string {
	t.Helper()
	name := pgx.Identifier{db.schema, "side"}.Sanitize()
	if _, err := db.pool.Exec(ctxT(t), "CREATE TABLE "+name+" (k text)"); err != nil {
		t.Fatal(err)
	}
	return name
}

func (db *testDB) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(ctxT(t), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompleteTx(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	side := db.sideTable(t)
	req := claimReq(t, "")
	mustClaim(t, s, req, core.ClaimAcquired)

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+side+" VALUES ($1)", req.Key); err != nil {
		t.Fatal(err)
	}
	stored := &core.Response{Status: 201, Body: []byte("in tx")}
	if err := s.CompleteTx(ctx, tx, req.Key, req.Token, stored, time24h); err != nil {
		t.Fatalf("CompleteTx of a held claim: %v; want nil", err)
	}
	// Before the commit, others still see the claim pending.
	mustClaim(t, s, again(req), core.ClaimInFlight)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The engine's own Complete afterwards: nil, record left as it is.
	if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 200, Body: []byte("captured")}, time24h); err != nil {
		t.Errorf("Complete after CompleteTx with the same token: %v; want nil (idempotent for its holder)", err)
	}
	c := mustClaim(t, s, again(req), core.ClaimReplay)
	if c.Response.Status != 201 || string(c.Response.Body) != "in tx" {
		t.Errorf("replay = %d %q; want 201 \"in tx\": the later Complete must leave the record as it is", c.Response.Status, c.Response.Body)
	}
	if n := db.count(t, side); n != 1 {
		t.Errorf("side rows = %d; want 1", n)
	}
}

func TestCompleteTxLeaseLost(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	side := db.sideTable(t)
	req := claimReq(t, "")
	req.Lease = 200 * time.Millisecond
	mustClaim(t, s, req, core.ClaimAcquired)
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "INSERT INTO "+side+" VALUES ($1)", req.Key); err != nil {
		t.Fatal(err)
	}
	// The lease lapses while the transaction is open (now() inside it
	// stays at its start): the completion must judge the statement's time.
	time.Sleep(300 * time.Millisecond)
	err = s.CompleteTx(ctx, tx, req.Key, req.Token, &core.Response{Status: 201}, time24h)
	if !errors.Is(err, core.ErrLeaseLost) {
		t.Fatalf("CompleteTx after the lease lapsed: %v; want ErrLeaseLost", err)
	}
	tx.Rollback(ctx)
	if n := db.count(t, side); n != 0 {
		t.Errorf("side rows = %d; want 0", n)
	}
	// Taken over by another holder: the old token cannot complete either.
	other := again(req)
	other.Lease = 30 * time.Second
	mustClaim(t, s, other, core.ClaimAcquired)
	tx2, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(context.Background())
	if err := s.CompleteTx(ctx, tx2, req.Key, req.Token, &core.Response{Status: 201}, time24h); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("CompleteTx by the old holder after a takeover: %v; want ErrLeaseLost", err)
	}
}

func TestCompleteSQLTx(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	side := db.sideTable(t)
	sdb := stdlib.OpenDBFromPool(db.pool)
	defer sdb.Close()
	req := claimReq(t, "")
	mustClaim(t, s, req, core.ClaimAcquired)
	tx, err := sdb.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+side+" VALUES ($1)", req.Key); err != nil {
		t.Fatal(err)
	}
	body := []byte{0, 1, 0xff, 'x'}
	if err := s.CompleteSQLTx(ctx, tx, req.Key, req.Token, &core.Response{Status: 202, Body: body}, time24h); err != nil {
		t.Fatalf("CompleteSQLTx: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c := mustClaim(t, s, again(req), core.ClaimReplay)
	if c.Response.Status != 202 || string(c.Response.Body) != string(body) {
		t.Errorf("replay = %d %q; want 202 %q", c.Response.Status, c.Response.Body, body)
	}
	tx, err = sdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := s.CompleteSQLTx(ctx, tx, req.Key, core.Token("other"), &core.Response{Status: 202}, time24h); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("CompleteSQLTx with another token: %v; want ErrLeaseLost", err)
	}
}

func TestBeginCommitRollback(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	side := db.sideTable(t)

	for _, commit := range []bool{false, true} {
		req := claimReq(t, "")
		mustClaim(t, s, req, core.ClaimAcquired)
		hctx, txn, err := s.Begin(ctx, req.Key, req.Token)
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		tx, ok := Tx(hctx)
		if !ok {
			t.Fatal("Tx(ctx of Begin) found no transaction")
		}
		if _, err := tx.Exec(hctx, "INSERT INTO "+side+" VALUES ($1)", req.Key); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(hctx); !errors.Is(err, ErrTxOwned) {
			t.Errorf("the handler's Commit: %v; want ErrTxOwned", err)
		}
		if commit {
			if err := txn.Commit(ctx, &core.Response{Status: 201, Body: []byte("ok")}, time24h); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			mustClaim(t, s, again(req), core.ClaimReplay)
		} else {
			if err := txn.Rollback(ctx); err != nil {
				t.Fatalf("Rollback: %v", err)
			}
			if err := s.Release(ctx, req.Key, req.Token); err != nil {
				t.Fatalf("Release after Rollback: %v", err)
			}
		}
	}
	if n := db.count(t, side); n != 1 {
		t.Errorf("side rows = %d; want 1: the committed transaction's row only", n)
	}
	if _, ok := Tx(ctx); ok {
		t.Error("Tx(ctx) without a transaction reported one")
	}
}
