package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// The tests take the servers from IDEMKIT_REDIS_URL and
// IDEMKIT_POSTGRES_URL, skip without them, and fail instead when
// IDEMKIT_REQUIRE_SERVICES is set.

func serverURL(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if r := os.Getenv("IDEMKIT_REQUIRE_SERVICES"); r != "" && r != "0" && r != "false" {
			t.Fatalf("required service unavailable (IDEMKIT_REQUIRE_SERVICES is set): %s is unset", name)
		}
		t.Skipf("skipped: %s is unset", name)
	}
	return v
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// result is one idemctl run.
type result struct {
	code           int
	stdout, stderr string
}

// idemctl runs the command with args in env, as the binary would.
func idemctl(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func (r result) expect(t *testing.T, code int, what string, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d; want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
	for _, c := range contains {
		if !strings.Contains(r.stdout+r.stderr, c) {
			t.Errorf("%s: output lacks %q\nstdout:\n%s\nstderr:\n%s", what, c, r.stdout, r.stderr)
		}
	}
}

// pgSchema creates a fresh schema with the store's table, dropped at cleanup.
func pgSchema(t *testing.T, url string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)
	schema := "idemctl_" + randHex(t, 6)
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(schema)); err != nil {
		t.Fatalf("EnsureSchema: %v", err)
	}
	return pool, schema
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// stored makes a completed record through an engine and returns the call.
func stored(t *testing.T, e *core.Engine) core.Call {
	t.Helper()
	call := core.Call{Scope: "tenant-" + randHex(t, 3), Key: "order-" + randHex(t, 6), Name: "charge", Input: []byte(`{"amount":1200}`)}
	if _, err := e.Do(context.Background(), call, func(context.Context) ([]byte, error) { return []byte(`{"id":42}`), nil }); err != nil {
		t.Fatalf("Do: %v", err)
	}
	return call
}

// walk inspects the record of call (table and JSON), deletes it, and
// finds it gone: the same on every store.
func walk(t *testing.T, env map[string]string, e *core.Engine, call core.Call, storeArgs ...string) {
	t.Helper()
	skey := e.StorageKey(call.Scope, call.Key)
	keyArgs := append(append([]string{}, storeArgs...), "-scope", call.Scope, "-key", `"`+call.Key+`"`)
	idemctl(t, env, append([]string{"inspect"}, keyArgs...)...).
		expect(t, 0, "inspect", skey, "completed", "STATUS", "200", "body 9 B")

	r := idemctl(t, env, append([]string{"inspect", "-json", "-key-hash", skey}, storeArgs...)...)
	r.expect(t, 0, "inspect -json -key-hash")
	var got recordJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("inspect -json printed %q: %v", r.stdout, err)
	}
	if got.Key != skey || got.State != "completed" || got.Status != 200 || got.BodyBytes != 9 || got.ExpiresAt == nil ||
		time.Until(*got.ExpiresAt) < time.Hour || len(got.Fingerprint) != 64 {
		t.Errorf("inspect -json = %+v; want the completed record under %s, status 200, 9 body bytes, hours to live", got, skey)
	}

	idemctl(t, env, append([]string{"delete"}, keyArgs...)...).expect(t, 0, "delete", "deleted the completed record", skey)
	idemctl(t, env, append([]string{"inspect"}, keyArgs...)...).expect(t, 1, "inspect after delete", "no live record", skey)
	idemctl(t, env, append([]string{"delete"}, keyArgs...)...).expect(t, 1, "delete after delete", "no live record")

	runs := 0
	if _, err := e.Do(context.Background(), call, func(context.Context) ([]byte, error) { runs++; return []byte(`{"id":43}`), nil }); err != nil || runs != 1 {
		t.Errorf("Do after delete: runs %d, err %v; want the handler run again", runs, err)
	}
}

func TestPostgres(t *testing.T) {
	url := serverURL(t, "IDEMKIT_POSTGRES_URL")
	env := map[string]string{"IDEMKIT_POSTGRES_URL": url}
	pool, schema := pgSchema(t, url)
	e := core.New(pgxstore.New(pool, pgxstore.WithSchema(schema)))
	args := []string{"-store", "postgres", "-pg-schema", schema}

	walk(t, env, e, stored(t, e), args...)
	r := idemctl(t, env, append([]string{"inspect"}, args...)...)
	r.expect(t, 2, "inspect without a key", "-key or -key-hash is required")

	idemctl(t, env, append([]string{"check"}, args...)...).expect(t, 0, "check", "postgres", "ok")
	idemctl(t, env, append([]string{"prune"}, args...)...).expect(t, 0, "prune", "deleted 0 expired records")
	if _, err := pool.Exec(context.Background(), "UPDATE "+pgx.Identifier{schema, "idempotency_keys"}.Sanitize()+" SET expires_at = now() - interval '1 s'"); err != nil {
		t.Fatal(err)
	}
	r = idemctl(t, env, append([]string{"prune", "-json"}, args...)...)
	r.expect(t, 0, "prune -json", `"deleted": 1`)
}

func TestPostgresCheckMissingSchema(t *testing.T) {
	env := map[string]string{"IDEMKIT_POSTGRES_URL": serverURL(t, "IDEMKIT_POSTGRES_URL")}
	schema := "idemctl_absent_" + randHex(t, 6)
	idemctl(t, env, "check", "-store", "postgres", "-pg-schema", schema).
		expect(t, 1, "check on a missing schema", "down", "schema missing or out of date", schema, "apply the migrations")
	r := idemctl(t, env, "check", "-store", "postgres", "-pg-schema", schema, "-json")
	r.expect(t, 1, "check -json on a missing schema")
	var got map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["status"] != "down" || !strings.Contains(got["detail"], "schema") {
		t.Errorf("check -json printed %q (%v); want status down and a detail naming the schema", r.stdout, err)
	}
}

func TestRedis(t *testing.T) {
	url := serverURL(t, "IDEMKIT_REDIS_URL")
	env := map[string]string{"IDEMKIT_REDIS_URL": url, "SERVICE_SECRET": "s3cret-" + randHex(t, 4)}
	prefix := "idemctl:" + randHex(t, 6) + ":"
	e := core.New(redisstore.New(redisClient(t, url), redisstore.WithPrefix(prefix)), core.WithHMACSecret([]byte(env["SERVICE_SECRET"])))
	args := []string{"-store", "redis", "-redis-prefix", prefix, "-hmac-secret-env", "SERVICE_SECRET"}

	call := stored(t, e)
	// Without the secret the key derived is another: nothing found.
	idemctl(t, env, "inspect", "-store", "redis", "-redis-prefix", prefix, "-scope", call.Scope, "-key", call.Key).
		expect(t, 1, "inspect without the service's secret", "no live record")
	walk(t, env, e, call, args...)

	idemctl(t, env, "check", "-store", "redis").expect(t, 0, "check", "redis", "ok")
	idemctl(t, env, "prune", "-store", "redis").expect(t, 0, "prune", "TTL")
}

// TestDeletePending: a claim whose handler runs is refused without
// -force, then deleted with it.
func TestDeletePending(t *testing.T) {
	url := serverURL(t, "IDEMKIT_REDIS_URL")
	env := map[string]string{"IDEMKIT_REDIS_URL": url}
	prefix := "idemctl:" + randHex(t, 6) + ":"
	e := core.New(redisstore.New(redisClient(t, url), redisstore.WithPrefix(prefix)))
	call := core.Call{Key: "k-" + randHex(t, 6), Name: "job"}
	args := []string{"-store", "redis", "-redis-prefix", prefix, "-key", call.Key}
	_, err := e.Do(context.Background(), call, func(context.Context) ([]byte, error) {
		idemctl(t, env, append([]string{"inspect"}, args...)...).expect(t, 0, "inspect while running", "pending", "EXPIRES")
		idemctl(t, env, append([]string{"delete"}, args...)...).expect(t, 1, "delete of a pending claim", "pending claim", "-force")
		idemctl(t, env, append([]string{"delete", "-force"}, args...)...).expect(t, 0, "delete -force", "deleted the pending record")
		return nil, nil
	})
	_ = err // the engine's completion finds its claim gone (lease lost): whatever it answers, the record is not there
	idemctl(t, env, append([]string{"inspect"}, args...)...).expect(t, 1, "inspect after delete -force", "no live record")
}

func TestTiered(t *testing.T) {
	rurl, purl := serverURL(t, "IDEMKIT_REDIS_URL"), serverURL(t, "IDEMKIT_POSTGRES_URL")
	env := map[string]string{"IDEMKIT_REDIS_URL": rurl, "IDEMKIT_POSTGRES_URL": purl}
	pool, schema := pgSchema(t, purl)
	hot := "idemctl:" + randHex(t, 6) + ":hot:"
	st := tieredstore.New(redisstore.New(redisClient(t, rurl), redisstore.WithPrefix(hot)), pgxstore.New(pool, pgxstore.WithSchema(schema)))
	e := core.New(st)
	args := []string{"-store", "tiered", "-hot-prefix", hot, "-pg-schema", schema}
	call := stored(t, e)
	// A replay warms the Redis tier: delete must clear that copy too.
	if _, err := e.Do(context.Background(), call, func(context.Context) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	st.Flush()
	walk(t, env, e, call, args...)
	idemctl(t, env, append([]string{"check"}, args...)...).expect(t, 0, "check", "tiered", "ok")
	idemctl(t, env, append([]string{"prune"}, args...)...).expect(t, 0, "prune", "expired records")
}

func TestUsage(t *testing.T) {
	idemctl(t, nil).expect(t, 2, "no command", "usage: idemctl")
	idemctl(t, nil, "frobnicate").expect(t, 2, "unknown command", "unknown command")
	idemctl(t, nil, "check").expect(t, 2, "no -store", "-store is required")
	idemctl(t, nil, "check", "-store", "postgres").expect(t, 2, "no URL", "IDEMKIT_POSTGRES_URL is not set")
	idemctl(t, nil, "inspect", "-store", "memory", "-key", "k", "-key-hash", "ab").expect(t, 2, "both key forms", "-key-hash")
	idemctl(t, nil, "inspect", "-store", "memory", "-key", "k").expect(t, 1, "memory", "no live record")
	idemctl(t, nil, "check", "-store", "memory", "-json").expect(t, 0, "memory check", `"status": "ok"`)
	idemctl(t, nil, "inspect", "-store", "memory", "-key", `"unterminated`).expect(t, 2, "a bad quoted key", "-key")
	// Flag values out of range are refused, not ignored or turned into an
	// instant timeout.
	idemctl(t, nil, "prune", "-store", "memory", "-batch", "-1").expect(t, 2, "a negative batch", "-batch", "-1")
	idemctl(t, nil, "check", "-store", "memory", "-timeout", "0s").expect(t, 2, "a zero timeout", "-timeout", "0s")
	idemctl(t, nil, "check", "-store", "memory", "-timeout", "-1s").expect(t, 2, "a negative timeout", "-timeout", "-1s")
}

// TestQuotedKey: a key given as the header's quoted value, escapes
// included, names the record of the string inside.
func TestQuotedKey(t *testing.T) {
	for _, tc := range []struct{ flag, key string }{
		{`"pay-1"`, "pay-1"},
		{`pay-1`, "pay-1"},
		{`"a\"b"`, `a"b`},
	} {
		o := &options{key: tc.flag, scope: "s"}
		got, err := o.storageKey()
		if want := core.StorageKey("s", tc.key, nil); err != nil || got != want {
			t.Errorf("-key %s: storage key %q, %v; want that of %q", tc.flag, got, err, tc.key)
		}
	}
}
