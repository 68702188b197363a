package pgxstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/migrations"
)

// This module's own tests take PostgreSQL from IDEMKIT_POSTGRES_URL only, so
// that the module requires nothing but core, pgx and migrations. The tests
// that start containers or private servers live in the test-only module in
// test/.
const (
	envPostgresURL     = "IDEMKIT_POSTGRES_URL"
	envRequireServices = "IDEMKIT_REQUIRE_SERVICES"
)

// serviceUnavailable ends the test because a server it needs is missing: a
// skip with the reason, or a failure when IDEMKIT_REQUIRE_SERVICES is set.
func serviceUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if v := os.Getenv(envRequireServices); v != "" && v != "0" && v != "false" {
		t.Fatalf("required service unavailable ("+envRequireServices+" is set): "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// postgresURL returns IDEMKIT_POSTGRES_URL, or ends the test through
// serviceUnavailable when it is unset.
func postgresURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(envPostgresURL)
	if url == "" {
		serviceUnavailable(t, "%s is unset", envPostgresURL)
	}
	return url
}

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newPool connects to the test database with at most maxConns connections
// and closes the pool in t.Cleanup.
func newPool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgxpool.ParseConfig: %v", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgxpool.NewWithConfig: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		serviceUnavailable(t, "cannot reach PostgreSQL at %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// testDB is one test's private schema on the shared test database.
type testDB struct {
	pool   *pgxpool.Pool
	schema string
	opts   []Option
}

// newTestDB creates a schema with a random name on a new pool, applies the
// migrations in it and drops it in t.Cleanup.
func newTestDB(t testing.TB, maxConns int32, opts ...Option) *testDB {
	t.Helper()
	return newTestDBOn(t, newPool(t, postgresURL(t), maxConns), opts...)
}

// newTestDBOn is newTestDB on an existing pool.
func newTestDBOn(t testing.TB, pool *pgxpool.Pool, opts ...Option) *testDB {
	t.Helper()
	schema := "idemkit_test_" + randHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	opts = append([]Option{WithSchema(schema)}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureSchema(ctx, pool, opts...); err != nil {
		t.Fatalf("EnsureSchema: %v", err)
	}
	return &testDB{pool: pool, schema: schema, opts: opts}
}

func (db *testDB) store(extra ...Option) *Store {
	return New(db.pool, append(append([]Option{}, db.opts...), extra...)...)
}

// table is the quoted, schema-qualified name of the test table, for
// statements a test writes by hand.
func (db *testDB) table() string {
	return pgx.Identifier{db.schema, migrations.DefaultTable}.Sanitize()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
