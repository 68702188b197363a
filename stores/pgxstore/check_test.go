package pgxstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/idemkit/idemkit/migrations"
)

// TestCheck: Check answers nil on a migrated table and an error wrapping
// ErrSchema (not ErrStoreUnavailable) when the table or its schema is
// missing; TestCheckOlderSchema covers a missing column and
// TestCheckServerStopped a server that is down.
func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	var _ core.Checker = db.store()
	if err := db.store().Check(ctx); err != nil {
		t.Errorf("Check on a migrated table: %v; want nil", err)
	}
	for name, s := range map[string]*Store{
		"MissingTable":  New(db.pool, WithSchema(db.schema), WithTable("no_such_table_"+randHex(4))),
		"MissingSchema": New(db.pool, WithSchema("no_such_schema_"+randHex(4))),
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Check(ctx)
			if !errors.Is(err, ErrSchema) || errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf("Check: %v; want an error wrapping ErrSchema and not ErrStoreUnavailable", err)
			}
			_, err = s.Claim(ctx, claimReq(t, ""))
			if !errors.Is(err, ErrSchema) || !hasSQLState(err, "42P01") && !hasSQLState(err, "3F000") {
				t.Errorf("Claim: %v; want an error wrapping ErrSchema and the server's error", err)
			}
		})
	}
}

// TestCheckOlderSchema: a table at migration 1 fails Check (and the
// statements that need version 2) with ErrSchema; EnsureSchema brings it to
// the current version without losing a row: a record completed under
// version 1 still replays and a claim taken under it can still complete.
// Apply the migration before deploying a store that needs it.
func TestCheckOlderSchema(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := newPool(t, postgresURL(t), 4)
	schema := "idemkit_test_" + randHex(6)
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	list, err := migrations.List()
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := setSearchPath(ctx, tx, schema, true); err != nil {
			return err
		}
		up, err := render(list[0].Up, migrations.DefaultTable)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, up)
		return err
	})
	if err != nil {
		t.Fatalf("applying migration 1 alone: %v", err)
	}
	s := New(pool, WithSchema(schema))
	err = s.Check(ctx)
	// It lacks migration 2's column and migration 3's table; the server
	// reports whichever it resolves first.
	if !errors.Is(err, ErrSchema) || !hasSQLState(err, "42703") && !hasSQLState(err, "42P01") {
		t.Errorf("Check on a version-1 table: %v; want ErrSchema wrapping SQLSTATE 42703 (undefined column) or 42P01 (undefined table)", err)
	}
	t.Logf("version-1 table: %v", err)

	// Rows written under version 1.
	old := claimReq(t, "old")
	tbl := pgx.Identifier{schema, migrations.DefaultTable}.Sanitize()
	_, err = pool.Exec(ctx, `INSERT INTO `+tbl+` (key, fingerprint, state, status, headers, body, completed_at, expires_at)
		VALUES ($1, $2, 'completed', 201, $3, 'old', now(), now() + interval '1 day')`, old.Key, old.Fingerprint[:], codec.AppendHeader(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	held := claimReq(t, "")
	_, err = pool.Exec(ctx, `INSERT INTO `+tbl+` (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
		VALUES ($1, $2, 'pending', $3, now() + interval '1 minute', now() + interval '1 minute')`, held.Key, held.Fingerprint[:], string(held.Token))
	if err != nil {
		t.Fatal(err)
	}
	// The statements need version 2: they say so rather than misbehave.
	if _, err := s.Claim(ctx, claimReq(t, "")); !errors.Is(err, ErrSchema) {
		t.Errorf("Claim on a version-1 table: %v; want ErrSchema", err)
	}
	if err := s.Complete(ctx, held.Key, held.Token, &core.Response{Status: 201}, time24h); !errors.Is(err, ErrSchema) {
		t.Errorf("Complete on a version-1 table: %v; want ErrSchema", err)
	}

	if err := EnsureSchema(ctx, pool, WithSchema(schema)); err != nil {
		t.Fatalf("EnsureSchema over version 1: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after EnsureSchema: %v; want nil", err)
	}
	if c := mustClaim(t, s, old, core.ClaimReplay); string(c.Response.Body) != "old" {
		t.Errorf("record completed under version 1 replays %q; want %q", c.Response.Body, "old")
	}
	if err := s.Complete(ctx, held.Key, held.Token, &core.Response{Status: 201}, time24h); err != nil {
		t.Errorf("Complete of a claim taken under version 1: %v", err)
	}
	if err := s.Complete(ctx, held.Key, held.Token, &core.Response{Status: 201}, time24h); err != nil {
		t.Errorf("retried Complete after the upgrade: %v", err)
	}
}

// TestSchemaVersion: SchemaVersion names the newest migration, so a new
// migration cannot land without the store's expectation (and Check's
// column list) being looked at.
func TestSchemaVersion(t *testing.T) {
	list, err := migrations.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := list[len(list)-1].Version; got != SchemaVersion {
		t.Errorf("newest migration is version %d; SchemaVersion is %d: update it, checkSQL and Check", got, SchemaVersion)
	}
}

// TestMigrationCompletedToken: the column migration 2 adds holds the token
// of a completed row only, never an empty one; rows of either state
// without it stay valid.
func TestMigrationCompletedToken(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	tbl := db.table()
	fp := `'\x` + strings.Repeat("ab", 32) + `'::bytea`
	cols := `(key, fingerprint, state, lease_token, lease_expires_at, status, headers, body, completed_at, expires_at, completed_token)`
	pend := `'pending', 'tok', now() + interval '1 minute', NULL, NULL, NULL, NULL, now() + interval '1 minute'`
	done := `'completed', NULL, NULL, 201, '\x00'::bytea, '\x'::bytea, now(), now() + interval '1 day'`
	for _, tc := range []struct {
		name, values string
		ok           bool
	}{
		{"PendingWithout", `'k1', ` + fp + `, ` + pend + `, NULL`, true},
		{"CompletedWith", `'k2', ` + fp + `, ` + done + `, 'tok'`, true},
		{"CompletedWithout", `'k3', ` + fp + `, ` + done + `, NULL`, true},
		{"PendingWith", `'b1', ` + fp + `, ` + pend + `, 'tok'`, false},
		{"CompletedEmpty", `'b2', ` + fp + `, ` + done + `, ''`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.pool.Exec(ctx, "INSERT INTO "+tbl+cols+" VALUES ("+tc.values+")")
			var pgErr *pgconn.PgError
			switch {
			case tc.ok && err != nil:
				t.Errorf("valid row rejected: %v", err)
			case !tc.ok && !(errors.As(err, &pgErr) && pgErr.Code == "23514"):
				t.Errorf("INSERT: err = %v; want a check violation (SQLSTATE 23514): the schema must make impossible rows impossible", err)
			}
		})
	}
}
