// Package pgxstore (in the test-only module of stores/pgxstore) runs the
// tests of pgxstore that need what pgxstore itself must not require: the
// conformance suites, idemhttp, and svctest's containers and private
// servers. It sees only pgxstore's exported API.
package pgxstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/migrations"
	. "github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/svctest"
)

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
		svctest.Unavailable(t, "cannot reach PostgreSQL at %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// privateServer starts a private PostgreSQL server (for a test that stops,
// crashes or pauses it), connects to it with at most maxConns connections
// and applies the migrations in its default schema.
func privateServer(t testing.TB, maxConns int32) (*svctest.PostgresServer, *pgxpool.Pool) {
	t.Helper()
	srv := svctest.StartPostgres(t)
	pool := newPool(t, srv.URL(), maxConns)
	if err := EnsureSchema(ctxT(t), pool); err != nil {
		t.Fatalf("EnsureSchema: %v", err)
	}
	return srv, pool
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
	return newTestDBOn(t, newPool(t, svctest.PostgresURL(t), maxConns), opts...)
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

// schemaStores returns a conformance factory: a store in a schema of its
// own per subtest, on pool.
func schemaStores(pool *pgxpool.Pool) conformance.NewStoreFunc {
	return func(t *testing.T) core.Store { return newTestDBOn(t, pool).store() }
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
