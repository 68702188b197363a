package redisstore

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
)

// TestHungRedisBound freezes a private redis-server and claims with
// go-redis's default options (ReadTimeout 5 s, MaxRetries 3) and a context
// without a deadline, as the engine calls by default: the store's own
// bound ends the call in ErrStoreUnavailable, where before the store
// bounded its calls a timed-out attempt was followed by a retry on a new
// connection whose handshake waited another ReadTimeout (10 s in all).
func TestHungRedisBound(t *testing.T) {
	cases := []struct {
		name       string
		ctxTimeout bool
		timeout    time.Duration // store option; 0: default
		bound      time.Duration // what the docs promise
	}{
		// With ContextTimeoutEnabled the store's deadline cuts the socket
		// read short.
		{"ContextTimeoutEnabled", true, time.Second, time.Second},
		// Without it one attempt waits its ReadTimeout, and the deadline
		// stops go-redis's retries: about max(timeout, ReadTimeout).
		{"ContextTimeoutDisabled", false, 0, max(DefaultTimeout, 5*time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := svctest.StartRedis(t)
			client := newClient(t, &redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: c.ctxTimeout})
			var opts []Option
			if c.timeout > 0 {
				opts = append(opts, WithTimeout(c.timeout))
			}
			s := New(client, append(opts, WithPrefix(uniquePrefix(t)))...)
			claim(t, s, newKey(t), fp(1), newToken(t), time.Minute) // a pooled connection

			srv.Pause()
			start := time.Now()
			_, err := s.Claim(context.Background(), core.ClaimRequest{Key: newKey(t), Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
			took := time.Since(start)
			srv.Resume()
			t.Logf("Claim on a hung Redis: %v after %v (bound %v)", err, took.Round(time.Millisecond), c.bound)
			if !errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf("Claim on a hung Redis = %v; want ErrStoreUnavailable", err)
			}
			if limit := c.bound + 2*time.Second; took > limit {
				t.Errorf("Claim on a hung Redis took %v; want < %v: the store bounds each call (WithTimeout)", took, limit)
			}
		})
	}
}

// resendingRedis starts a private redis-server and returns it and a client
// that re-sends a command quickly after a read timeout, as go-redis does by
// default, only faster. go-redis re-sends a command on another pooled
// connection (a new one would wait for its handshake instead), so the pool
// is filled first, as a busy service's is.
func resendingRedis(t *testing.T) (*svctest.RedisServer, *redis.Client) {
	const conns = 4
	srv := svctest.StartRedis(t)
	c := newClient(t, &redis.Options{
		Addr:                  srv.Addr(),
		ReadTimeout:           200 * time.Millisecond,
		MaxRetries:            conns - 1,
		ContextTimeoutEnabled: true,
	})
	// conns connections in use at once: the pool keeps them, initialised.
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Do(context.Background(), "DEBUG", "SLEEP", "0.05")
		}()
	}
	wg.Wait()
	if n := c.PoolStats().IdleConns; n < conns {
		t.Fatalf("the pool holds %d idle connections; want %d", n, conns)
	}
	return srv, c
}

// TestHungRedisResentClaim freezes a private redis-server while a claim is
// on its way: go-redis times out and re-sends it, and when the server
// runs again it executes every copy. The copy whose reply the caller
// reads must say acquired, not in flight (before: in flight, a 409 for
// the caller's own request), and the copies leave one pending record
// holding the caller's token, which that token releases.
func TestHungRedisResentClaim(t *testing.T) {
	srv, client := resendingRedis(t)
	prefix := uniquePrefix(t)
	s := New(client, WithPrefix(prefix), WithTimeout(5*time.Second))
	claim(t, s, newKey(t), fp(1), newToken(t), time.Minute) // the script loaded
	ctx := context.Background()

	key, tok := newKey(t), newToken(t)
	const lease = 30 * time.Second
	type result struct {
		c   core.Claim
		err error
	}
	done := make(chan result, 1)
	srv.Pause()
	go func() {
		c, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp(1), Token: tok, Lease: lease})
		done <- result{c, err}
	}()
	time.Sleep(500 * time.Millisecond) // two or three copies sent
	srv.Resume()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Claim did not return within 10s of the server resuming")
	}
	t.Logf("Claim re-sent across a 500ms stall: %v %v", r.c.Status, r.err)
	if r.err != nil || r.c.Status != core.ClaimAcquired {
		t.Errorf("Claim re-sent across a stall = %v, %v; want acquired: a re-sent claim with its own token is the same claim, never in flight for its own sender", r.c.Status, r.err)
	}
	checkOneRecordHeldBy(t, s, client, prefix, key, tok, lease)
}

// TestHungRedisAbandonedClaim freezes a private redis-server for longer
// than the store's bound: the caller gets ErrStoreUnavailable, go-redis's
// copies of the claim land when the server runs again, and they leave at
// most one pending record holding the caller's token, which a Release
// with that token (what the engine does for a claim that errored)
// removes, so the key is not locked for a lease.
func TestHungRedisAbandonedClaim(t *testing.T) {
	srv, client := resendingRedis(t)
	prefix := uniquePrefix(t)
	s := New(client, WithPrefix(prefix), WithTimeout(700*time.Millisecond))
	claim(t, s, newKey(t), fp(1), newToken(t), time.Minute) // the script loaded
	ctx := context.Background()

	key, tok := newKey(t), newToken(t)
	const lease = 30 * time.Second
	srv.Pause()
	start := time.Now()
	_, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp(1), Token: tok, Lease: lease})
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	srv.Resume()
	t.Logf("Claim on a hung Redis: %v after %v", err, took.Round(time.Millisecond))
	if !errors.Is(err, core.ErrStoreUnavailable) {
		t.Fatalf("Claim on a hung Redis = %v; want ErrStoreUnavailable", err)
	}
	// The copies run as soon as the server does; wait for them.
	deadline := time.Now().Add(3 * time.Second)
	for client.Exists(ctx, recordKeyOf(prefix, key)).Val() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	checkOneRecordHeldBy(t, s, client, prefix, key, tok, lease)
}

// checkOneRecordHeldBy checks that the store holds exactly one record, the
// pending claim of key with tok leased for at most lease, and that tok
// releases it, so that another request claims the key at once.
func checkOneRecordHeldBy(t *testing.T, s *Store, client *redis.Client, prefix, key string, tok core.Token, lease time.Duration) {
	t.Helper()
	ctx := context.Background()
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	f := fp(1)
	v, err := client.Get(ctx, recordKeyOf(prefix, key)).Result()
	switch {
	case err != nil:
		t.Errorf("GET the claimed record: %v; want the pending record", err)
	case v != "P"+string(f[:])+string(tok):
		t.Errorf("claimed record = %q; want 'P' + fingerprint + the caller's token: one pending record holding that token", v)
	}
	if len(keys) != 2 { // the warm-up claim and this one
		t.Errorf("%d records under the prefix; want 2 (the warm-up claim and one record for the re-sent claim)", len(keys))
	}
	if pttl := client.PTTL(ctx, recordKeyOf(prefix, key)).Val(); pttl <= 0 || pttl > lease {
		t.Errorf("PTTL of the claimed record = %v; want (0, %v]", pttl, lease)
	}
	if err := s.Release(ctx, key, tok); err != nil {
		t.Errorf("Release with the claim's own token = %v; want nil: the token whose claim errored releases what its copies left", err)
	}
	if c := claim(t, s, key, fp(1), newToken(t), lease); c.Status != core.ClaimAcquired {
		t.Errorf("Claim by another request after the Release = %v; want acquired at once: the key is not locked for a lease", c.Status)
	}
}

// TestHungRedisResentComplete freezes a private redis-server while a
// Complete is on its way: go-redis re-sends it, the server runs every
// copy, and the copy whose reply the caller reads finds the record
// completed with the caller's token. Complete must return nil (before:
// ErrLeaseLost for a response that was stored, logged as lost).
func TestHungRedisResentComplete(t *testing.T) {
	srv, client := resendingRedis(t)
	s := New(client, WithPrefix(uniquePrefix(t)), WithTimeout(5*time.Second))
	ctx := context.Background()
	warm, warmTok := newKey(t), newToken(t) // the scripts loaded
	claim(t, s, warm, fp(1), warmTok, time.Minute)
	if err := s.Complete(ctx, warm, warmTok, sampleResponse(), time.Hour); err != nil {
		t.Fatal(err)
	}
	key, tok := newKey(t), newToken(t)
	claim(t, s, key, fp(1), tok, time.Minute)

	want := sampleResponse()
	done := make(chan error, 1)
	srv.Pause()
	go func() { done <- s.Complete(ctx, key, tok, want, time.Hour) }()
	time.Sleep(500 * time.Millisecond) // two or three copies sent
	srv.Resume()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Complete did not return within 10s of the server resuming")
	}
	t.Logf("Complete re-sent across a 500ms stall: %v", err)
	if err != nil {
		t.Errorf("Complete re-sent across a stall = %v; want nil: the record holds this token's completion", err)
	}
	if c := claim(t, s, key, fp(1), newToken(t), time.Minute); c.Status != core.ClaimReplay || !reflect.DeepEqual(c.Response, want) {
		t.Errorf("Claim after the re-sent Complete = %v; want a replay of the stored response", c.Status)
	}
}

// recordKeyOf is the Redis key of a record, as the package documents its
// layout: the prefix, then the storage key as the hash tag. (These tests
// use only the package's exported API.)
func recordKeyOf(prefix, key string) string { return prefix + "{" + key + "}" }

// privateCluster starts a private 3-master Redis Cluster and returns a
// client of it and the masters' addresses.
func privateCluster(t *testing.T) (*redis.ClusterClient, []string) {
	t.Helper()
	rc := svctest.StartRedisCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c, rc.Addrs()
}
