package pgxstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/migrations"
)

// applyAll runs every rendered up (or down, newest first) in schema.
func applyAll(ctx context.Context, t *testing.T, db *testDB, table string, up bool) {
	t.Helper()
	list, err := migrations.List()
	if err != nil {
		t.Fatal(err)
	}
	if !up {
		for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
			list[i], list[j] = list[j], list[i]
		}
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := setSearchPath(ctx, tx, db.schema, true); err != nil {
			return err
		}
		for _, m := range list {
			sql := m.Down
			if up {
				sql = m.Up
			}
			r, err := render(sql, table)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("apply (up=%v): %v", up, err)
	}
}

// objects lists the relations and functions in the schema.
func objects(ctx context.Context, t *testing.T, db *testDB) []string {
	t.Helper()
	rows, err := db.pool.Query(ctx, `
		SELECT c.relkind::text || ':' || c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
		UNION ALL
		SELECT 'f:' || p.proname FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
		ORDER BY 1`, db.schema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestMigrationsUpDownUp(t *testing.T) {
	for _, table := range []string{migrations.DefaultTable, `Odd "Name"; DROP TABLE x`} {
		t.Run(strings.Fields(table)[0], func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			db := newTestDB(t, 4, WithTable(table))
			first := objects(ctx, t, db)
			want := []string{"f:" + table + "_try_jsonb", "i:" + table + "_expires_at_idx", "i:" + table + "_pkey", "r:" + table, "v:" + table + "_json"}
			for _, w := range want {
				if !contains(first, w) {
					t.Errorf("after up, schema lacks %q; have %v", w, first)
				}
			}
			applyAll(ctx, t, db, table, true) // idempotent: a second up is harmless
			applyAll(ctx, t, db, table, false)
			if left := objects(ctx, t, db); len(left) != 0 {
				t.Errorf("after down, schema still holds %v; want nothing: the down must drop everything the up made", left)
			}
			applyAll(ctx, t, db, table, true)
			if again := objects(ctx, t, db); strings.Join(again, ",") != strings.Join(first, ",") {
				t.Errorf("after up, down, up: objects %v; want %v", again, first)
			}
			// The store works on the re-created table.
			s := db.store(WithTable(table))
			if _, err := s.Claim(ctx, claimReq(t, "")); err != nil {
				t.Errorf("Claim after up/down/up: %v", err)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestMigrationsRejectImpossibleRows(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	tbl := db.table()
	fp := `'\x` + strings.Repeat("ab", 32) + `'::bytea`
	cols := `(key, fingerprint, state, lease_token, lease_expires_at, status, headers, body, body_omitted, completed_at, expires_at)`
	pend := `'pending', 'tok', now() + interval '1 minute', NULL, NULL, NULL, false, NULL, now() + interval '1 minute'`
	done := `'completed', NULL, NULL, 201, '\x00'::bytea, '\x'::bytea, false, now(), now() + interval '1 day'`
	valid := []struct{ name, values string }{
		{"Pending", `'k1', ` + fp + `, ` + pend},
		{"Completed", `'k2', ` + fp + `, ` + done},
	}
	for _, v := range valid {
		if _, err := db.pool.Exec(ctx, "INSERT INTO "+tbl+cols+" VALUES ("+v.values+")"); err != nil {
			t.Errorf("valid %s row rejected: %v", v.name, err)
		}
	}
	bad := []struct{ name, values string }{
		{"EmptyKey", `'', ` + fp + `, ` + pend},
		{"ShortFingerprint", `'b1', '\x01'::bytea, ` + pend},
		{"UnknownState", `'b2', ` + fp + `, 'running', 'tok', now(), NULL, NULL, NULL, false, NULL, now()`},
		{"PendingWithoutToken", `'b3', ` + fp + `, 'pending', NULL, now() + interval '1 minute', NULL, NULL, NULL, false, NULL, now() + interval '1 minute'`},
		{"PendingWithoutLease", `'b4', ` + fp + `, 'pending', 'tok', NULL, NULL, NULL, NULL, false, NULL, now() + interval '1 minute'`},
		{"PendingWithResponse", `'b5', ` + fp + `, 'pending', 'tok', now() + interval '1 minute', 200, '\x00'::bytea, '\x'::bytea, false, NULL, now() + interval '1 minute'`},
		{"PendingCompletedAt", `'b6', ` + fp + `, 'pending', 'tok', now() + interval '1 minute', NULL, NULL, NULL, false, now(), now() + interval '1 minute'`},
		{"PendingExpiryNotLease", `'b7', ` + fp + `, 'pending', 'tok', now() + interval '1 minute', NULL, NULL, NULL, false, NULL, now() + interval '1 day'`},
		{"CompletedWithoutStatus", `'b8', ` + fp + `, 'completed', NULL, NULL, NULL, '\x00'::bytea, '\x'::bytea, false, now(), now()`},
		{"CompletedStatus99", `'b9', ` + fp + `, 'completed', NULL, NULL, 99, '\x00'::bytea, '\x'::bytea, false, now(), now()`},
		{"CompletedStatus600", `'b10', ` + fp + `, 'completed', NULL, NULL, 600, '\x00'::bytea, '\x'::bytea, false, now(), now()`},
		{"CompletedWithoutHeaders", `'b11', ` + fp + `, 'completed', NULL, NULL, 200, NULL, '\x'::bytea, false, now(), now()`},
		{"CompletedWithoutBody", `'b12', ` + fp + `, 'completed', NULL, NULL, 200, '\x00'::bytea, NULL, false, now(), now()`},
		{"CompletedWithoutCompletedAt", `'b13', ` + fp + `, 'completed', NULL, NULL, 200, '\x00'::bytea, '\x'::bytea, false, NULL, now()`},
		{"CompletedWithLease", `'b14', ` + fp + `, 'completed', 'tok', now(), 200, '\x00'::bytea, '\x'::bytea, false, now(), now()`},
		{"OmittedWithBody", `'b15', ` + fp + `, 'completed', NULL, NULL, 200, '\x00'::bytea, '\x01'::bytea, true, now(), now()`},
		{"NoExpiry", `'b16', ` + fp + `, 'completed', NULL, NULL, 200, '\x00'::bytea, '\x'::bytea, false, now(), NULL`},
		{"DuplicateKey", `'k1', ` + fp + `, ` + pend},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := db.pool.Exec(ctx, "INSERT INTO "+tbl+cols+" VALUES ("+b.values+")")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "23") {
				t.Errorf("INSERT %s row: err = %v; want an integrity violation (SQLSTATE 23xxx): the schema must make impossible rows impossible", b.name, err)
			}
		})
	}
}

func TestJSONView(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	bodies := map[string][]byte{
		"json":    []byte(`{"id": "p_1", "amount": 1200, "b": 1, "a": 2}`),
		"invalid": []byte(`{"id": `),
		"binary":  {0xff, 0x00, 0xfe},
		"empty":   {},
	}
	for name, body := range bodies {
		req := claimReq(t, "")
		req.Key = name + "-" + req.Key
		if _, err := s.Claim(ctx, req); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, req.Key, req.Token, &coreResponse{Status: 201, Body: body}, time24h); err != nil {
			t.Fatal(err)
		}
		var js *string
		var n int
		view := pgx.Identifier{db.schema, migrations.DefaultTable + "_json"}.Sanitize()
		if err := db.pool.QueryRow(ctx, "SELECT body_json->>'id', body_bytes FROM "+view+" WHERE key = $1", req.Key).Scan(&js, &n); err != nil {
			t.Fatalf("%s: query view: %v", name, err)
		}
		if n != len(body) {
			t.Errorf("%s: body_bytes = %d; want %d", name, n, len(body))
		}
		switch {
		case name == "json" && (js == nil || *js != "p_1"):
			t.Errorf("json body: body_json->>'id' = %v; want p_1", js)
		case name != "json" && js != nil:
			t.Errorf("%s body: body_json->>'id' = %q; want NULL", name, *js)
		}
		// The replay still gets the exact bytes (no JSON normalisation).
		c, err := s.Claim(ctx, req)
		if err != nil || c.Response == nil || !bytes.Equal(c.Response.Body, body) {
			t.Errorf("%s: replay = %+v, %v; want the exact body %q", name, c, err, body)
		}
	}
}

func TestEnsureSchemaConcurrent(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 8)
	fresh := "idemkit_test_" + randHex(6)
	t.Cleanup(func() {
		db.pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{fresh}.Sanitize()+" CASCADE")
	})
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() { errs <- EnsureSchema(ctx, db.pool, WithSchema(fresh)) }()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent EnsureSchema: %v; want every call to succeed", err)
		}
	}
	s := New(db.pool, WithSchema(fresh))
	mustClaim(t, s, claimReq(t, ""), core.ClaimAcquired)
}
