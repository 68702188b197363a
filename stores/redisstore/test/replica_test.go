package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
)

// replicated starts a private primary and a replica of it, and waits until
// the replica is in sync.
func replicated(t *testing.T) (primary, replica *svctest.RedisServer) {
	t.Helper()
	primary = svctest.StartRedis(t, "--shutdown-timeout", "1", "--repl-diskless-sync-delay", "0")
	_, port, _ := net.SplitHostPort(primary.Addr())
	replica = svctest.StartRedis(t, "--replicaof", "127.0.0.1", port)
	waitLink(t, primary, replica)
	return primary, replica
}

// waitLink waits until replica reports its link to primary up and primary
// counts it.
func waitLink(t *testing.T, primary, replica *svctest.RedisServer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := svctest.RedisDo(replica.Addr(), time.Second, "INFO", "replication")
		p, _ := svctest.RedisDo(primary.Addr(), time.Second, "INFO", "replication")
		rs, _ := r.(string)
		ps, _ := p.(string)
		if strings.Contains(rs, "master_link_status:up") && strings.Contains(ps, "connected_slaves:1") &&
			strings.Contains(ps, "state=online") && acked(primary.Addr()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not in sync after 10s:\n%s\n%s", rs, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// acked reports whether a write on primary is acknowledged by a replica
// within a second.
func acked(addr string) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	pipe := c.Pipeline()
	pipe.Set(ctx, "replica-probe", "1", time.Minute)
	wait := redis.NewIntCmd(ctx, "wait", 1, 1000)
	_ = pipe.Process(ctx, wait)
	_, _ = pipe.Exec(ctx)
	return wait.Val() == 1
}

// cutLink makes replica a replica of nothing reachable: it keeps its data
// but receives no more writes, as a replica behind a broken link does,
// and primary has no replica connected.
func cutLink(t *testing.T, primary, replica *svctest.RedisServer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, deadPort, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	if _, err := svctest.RedisDo(replica.Addr(), time.Second, "REPLICAOF", "127.0.0.1", deadPort); err != nil {
		t.Fatalf("REPLICAOF: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := svctest.RedisDo(primary.Addr(), time.Second, "INFO", "replication")
		if ps, _ := p.(string); strings.Contains(ps, "connected_slaves:0") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("primary still counts its replica 5s after the link was cut")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failover stops primary and promotes replica, returning a store on it with
// the same prefix.
func failover(t *testing.T, primary, replica *svctest.RedisServer, prefix string) (*Store, *redis.Client) {
	t.Helper()
	primary.Stop()
	if _, err := svctest.RedisDo(replica.Addr(), time.Second, "REPLICAOF", "NO", "ONE"); err != nil {
		t.Fatalf("REPLICAOF NO ONE: %v", err)
	}
	c := newClient(t, &redis.Options{Addr: replica.Addr(), ContextTimeoutEnabled: true})
	return New(c, WithPrefix(prefix)), c
}

func primaryClient(t *testing.T, addr string) *redis.Client {
	return newClient(t, &redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
}

// TestReplicaAcks runs a real primary and replica and fails the primary
// over to the replica. Without WithReplicaAcks a claim that the primary
// acknowledged while its replica's link was down is lost on failover, and
// a second request acquires the key (the handler would run twice). With
// it that claim fails with ErrStoreUnavailable instead, and a claim or a
// completion it acknowledges is on the replica after the failover.
func TestReplicaAcks(t *testing.T) {
	ctx := context.Background()
	const ackTimeout = 300 * time.Millisecond

	t.Run("WithoutAcksLinkDown", func(t *testing.T) {
		primary, replica := replicated(t)
		prefix := uniquePrefix(t)
		s := New(primaryClient(t, primary.Addr()), WithPrefix(prefix))
		cutLink(t, primary, replica)
		key := newKey(t)
		if c := claim(t, s, key, fp(1), newToken(t), time.Minute); c.Status != core.ClaimAcquired {
			t.Fatalf("Claim on the primary = %v; want acquired", c.Status)
		}
		promoted, _ := failover(t, primary, replica, prefix)
		second := claim(t, promoted, key, fp(1), newToken(t), time.Minute)
		t.Logf("without replica acks: a claim acknowledged while the link was down, after failover a second Claim is %v", second.Status)
		if second.Status != core.ClaimAcquired {
			t.Errorf("second Claim after failover = %v; this test expected the asynchronous loss (acquired)", second.Status)
		}
	})

	t.Run("WithAcksLinkDown", func(t *testing.T) {
		primary, replica := replicated(t)
		s := New(primaryClient(t, primary.Addr()), WithPrefix(uniquePrefix(t)), WithReplicaAcks(1, ackTimeout))
		cutLink(t, primary, replica)
		start := time.Now()
		_, err := s.Claim(ctx, core.ClaimRequest{Key: newKey(t), Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
		took := time.Since(start)
		t.Logf("with replica acks, link down: %v after %v", err, took.Round(time.Millisecond))
		if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, ErrReplicaAcks) {
			t.Errorf("Claim with no replica acknowledging = %v; want ErrStoreUnavailable and ErrReplicaAcks", err)
		}
		if took > ackTimeout+2*time.Second {
			t.Errorf("Claim with no replica acknowledging took %v; want about the WAIT timeout %v", took, ackTimeout)
		}
	})

	t.Run("WithAcksReplicaPaused", func(t *testing.T) {
		primary, replica := replicated(t)
		key, tok := newKey(t), newToken(t)
		s := New(primaryClient(t, primary.Addr()), WithPrefix(uniquePrefix(t)), WithReplicaAcks(1, ackTimeout))
		claim(t, s, key, fp(1), tok, time.Minute)
		replica.Pause()
		defer replica.Resume()
		_, err := s.Claim(ctx, core.ClaimRequest{Key: newKey(t), Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
		if !errors.Is(err, ErrReplicaAcks) {
			t.Errorf("Claim while the replica is frozen = %v; want ErrReplicaAcks", err)
		}
		if err := s.Complete(ctx, key, tok, sampleResponse(), time.Hour); !errors.Is(err, ErrReplicaAcks) || !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("Complete while the replica is frozen = %v; want ErrStoreUnavailable and ErrReplicaAcks (the engine retries it)", err)
		}
		replica.Resume()
		// The retried Complete finds the record completed with its token,
		// rewrites it and waits again: acknowledged now.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := s.Complete(ctx, key, tok, sampleResponse(), time.Hour)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Complete retried after the replica resumed: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("WithAcksFailover", func(t *testing.T) {
		primary, replica := replicated(t)
		prefix := uniquePrefix(t)
		s := New(primaryClient(t, primary.Addr()), WithPrefix(prefix), WithReplicaAcks(1, ackTimeout))
		pending, pendTok := newKey(t), newToken(t)
		done, doneTok := newKey(t), newToken(t)
		for _, k := range []struct {
			key string
			tok core.Token
		}{{pending, pendTok}, {done, doneTok}} {
			if c := claim(t, s, k.key, fp(1), k.tok, time.Minute); c.Status != core.ClaimAcquired {
				t.Fatalf("Claim = %v; want acquired", c.Status)
			}
		}
		if err := s.Complete(ctx, done, doneTok, sampleResponse(), time.Hour); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		// Kill the primary at once, no chance to catch the replica up.
		primary.Pause()
		promoted, _ := failover(t, primary, replica, prefix)
		if c := claim(t, promoted, pending, fp(1), newToken(t), time.Minute); c.Status != core.ClaimInFlight {
			t.Errorf("Claim of the acknowledged pending key after failover = %v; want in flight: the claim is on the replica", c.Status)
		}
		if c := claim(t, promoted, done, fp(1), newToken(t), time.Minute); c.Status != core.ClaimReplay {
			t.Errorf("Claim of the acknowledged completed key after failover = %v; want replay", c.Status)
		}
	})
}

// TestClusterReplicaAcks checks that WithReplicaAcks sends WAIT to the
// master of the key's slot in a Cluster: in a cluster without replicas
// the claim runs there (no redirect) and is refused for want of
// acknowledgements.
func TestClusterReplicaAcks(t *testing.T) {
	client, _ := privateCluster(t)
	s := New(client, WithPrefix(uniquePrefix(t)), WithReplicaAcks(1, 50*time.Millisecond))
	for i := 0; i < 10; i++ {
		_, err := s.Claim(context.Background(), core.ClaimRequest{Key: newKey(t), Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
		if !errors.Is(err, ErrReplicaAcks) {
			t.Fatalf("Claim on a cluster without replicas, WithReplicaAcks(1) = %v; want ErrReplicaAcks", err)
		}
	}
	plain := New(client, WithPrefix(uniquePrefix(t)))
	if c := claim(t, plain, newKey(t), fp(1), newToken(t), time.Minute); c.Status != core.ClaimAcquired {
		t.Errorf("Claim without replica acks = %v; want acquired", c.Status)
	}
}
