package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/redis/go-redis/v9"
)

// startRedis starts a private redis-server on a free loopback port with
// extra arguments and returns its URL; it is killed by PID at cleanup.
// (svctest does this for the store modules; the examples module keeps its
// requirements to what the services use.)
func startRedis(t *testing.T, args ...string) string {
	t.Helper()
	url, _ := startRedisProc(t, args...)
	return url
}

// startRedisProc is startRedis that also returns a function killing the
// server (at once, as a crash would) before the test ends.
func startRedisProc(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if v := os.Getenv("IDEMKIT_REQUIRE_SERVICES"); v != "" && v != "0" && v != "false" {
			t.Fatalf("required service unavailable: redis-server is not on PATH: %v", err)
		}
		t.Skipf("skipped: redis-server is not on PATH: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", dir + "/redis.log"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(kill)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "redis://" + addr + "/0", kill
}

// TestOpenStoreRefusesEvictingRedis starts private Redis servers: the
// example services refuse -store redis on one whose maxmemory-policy may
// evict live claims, unless -allow-evicting-redis overrides, and start on
// one that runs noeviction.
func TestOpenStoreRefusesEvictingRedis(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		policy   string
		allow    bool
		wantOpen bool
	}{
		{"allkeys-lru", false, false},
		{"volatile-lru", false, false},
		{"allkeys-lru", true, true},
		{"noeviction", false, true},
	}
	for _, c := range cases {
		name := c.policy
		if c.allow {
			name += "/allowed"
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv("IDEMKIT_REDIS_URL", startRedis(t, "--maxmemory", "2mb", "--maxmemory-policy", c.policy))
			store, closeStore, err := OpenStoreFlags(ctx, Flags{Store: "redis", AllowEvictingRedis: c.allow}, nil, nil)
			if err == nil {
				closeStore()
			}
			switch {
			case c.wantOpen && (err != nil || store == nil):
				t.Errorf("OpenStoreFlags(redis, allow %v) on a %s Redis = %v; want the store", c.allow, c.policy, err)
			case !c.wantOpen && !errors.Is(err, redisstore.ErrEvictionPolicy):
				t.Errorf("OpenStoreFlags(redis, allow %v) on a %s Redis = %v; want an error wrapping redisstore.ErrEvictionPolicy", c.allow, c.policy, err)
			case !c.wantOpen && !strings.Contains(err.Error(), "-allow-evicting-redis"):
				t.Errorf("refusal %q does not name the -allow-evicting-redis override", err)
			}
			if !c.allow {
				if _, closeStore, err2 := OpenStore(ctx, "redis", nil); (err2 == nil) != c.wantOpen {
					t.Errorf("OpenStore(redis) on a %s Redis = %v; want the same answer as OpenStoreFlags", c.policy, err2)
				} else if err2 == nil {
					closeStore()
				}
			}
		})
	}
}

// TestOpenStoreReplicaAcks: -redis-replica-acks n makes the redis store
// wait for n replicas after each claim and complete
// (redisstore.WithReplicaAcks, within -redis-replica-ack-timeout): on a
// private Redis without replicas a claim is then refused with
// redisstore.ErrReplicaAcks, where without the flag it is acquired.
func TestOpenStoreReplicaAcks(t *testing.T) {
	ctx := context.Background()
	flags, err := ParseArgs([]string{"-store", "redis", "-redis-replica-acks", "1", "-redis-replica-ack-timeout", "100ms"})
	if err != nil {
		t.Fatalf("ParseArgs: %v", err)
	}
	if flags.RedisReplicaAcks != 1 || flags.RedisReplicaAckTimeout != 100*time.Millisecond {
		t.Fatalf("ParseArgs: replica acks %d within %v; want 1 within 100ms", flags.RedisReplicaAcks, flags.RedisReplicaAckTimeout)
	}
	t.Setenv("IDEMKIT_REDIS_URL", startRedis(t))
	for _, c := range []struct {
		acks int
		want error
	}{{0, nil}, {1, redisstore.ErrReplicaAcks}} {
		flags.RedisReplicaAcks = c.acks
		store, closeStore, err := OpenStoreFlags(ctx, flags, nil, nil)
		if err != nil {
			t.Fatalf("OpenStoreFlags(redis, replica acks %d): %v", c.acks, err)
		}
		_, err = store.Claim(ctx, core.ClaimRequest{Key: strings.Repeat("a", 63) + strconv.Itoa(c.acks), Token: core.Token("token-" + strconv.Itoa(c.acks)), Lease: time.Minute})
		closeStore()
		if !errors.Is(err, c.want) || (c.want != nil && !errors.Is(err, core.ErrStoreUnavailable)) {
			t.Errorf("Claim with -redis-replica-acks %d on a Redis without replicas = %v; want %v", c.acks, err, c.want)
		}
	}
}

// TestAllowEvictingRedisHealthy: a service started with
// -allow-evicting-redis on an evicting Redis is healthy: its store's Check
// (what /healthz asks) no longer reports the policy the operator accepted
// at start, where a readiness probe answering 503 forever would take every
// instance out of its load balancer. An unreachable Redis still fails it.
func TestAllowEvictingRedisHealthy(t *testing.T) {
	ctx := context.Background()
	url, kill := startRedisProc(t, "--maxmemory-policy", "allkeys-lru")
	t.Setenv("IDEMKIT_REDIS_URL", url)
	store, closeStore, err := OpenStoreFlags(ctx, Flags{Store: "redis", AllowEvictingRedis: true}, nil, nil)
	if err != nil {
		t.Fatalf("OpenStoreFlags(redis, -allow-evicting-redis) on an allkeys-lru Redis: %v", err)
	}
	defer closeStore()
	checker, ok := store.(core.Checker)
	if !ok {
		t.Fatalf("the redis store (%T) is not a core.Checker", store)
	}
	if err := checker.Check(ctx); err != nil {
		t.Errorf("Check with -allow-evicting-redis on an allkeys-lru Redis = %v; want nil (the override was accepted at start)", err)
	}
	kill()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := checker.Check(cctx); !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("Check with -allow-evicting-redis on a stopped Redis = %v; want ErrStoreUnavailable", err)
	}
}

// startSentinel starts a private redis-server in sentinel mode on a free
// loopback port, monitoring the primary at primaryAddr as master (quorum
// 1), and returns its address; it is killed by PID at cleanup.
func startSentinel(t *testing.T, master, primaryAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("skipped: redis-server is not on PATH: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	host, pport, _ := net.SplitHostPort(primaryAddr)
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile %s/sentinel.log\nsentinel monitor %s %s %s 1\n",
		port, dir, dir, master, host, pport)
	if err := os.WriteFile(dir+"/sentinel.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, dir+"/sentinel.conf", "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err := c.GetMasterAddrByName(context.Background(), master).Result()
		if err == nil && net.JoinHostPort(got[0], got[1]) == primaryAddr {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel on %s does not name %s as %q within 10s: %v, %v", addr, primaryAddr, master, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOpenStoreSentinel: with IDEMKIT_REDIS_SENTINELS and
// IDEMKIT_REDIS_MASTER set, the redis store asks the sentinels for the
// primary (go-redis's failover client, which follows a failover by
// itself) and IDEMKIT_REDIS_URL is not read: the claim lands on the
// primary the sentinel names. The sentinels without a master name is a
// start error naming IDEMKIT_REDIS_MASTER.
func TestOpenStoreSentinel(t *testing.T) {
	ctx := context.Background()
	url := startRedis(t)
	primaryAddr := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	sentinel := startSentinel(t, "idem-primary", primaryAddr)
	t.Setenv("IDEMKIT_REDIS_URL", "redis://127.0.0.1:1/0") // nobody listens: must not be used
	t.Setenv("IDEMKIT_REDIS_SENTINELS", sentinel)

	t.Setenv("IDEMKIT_REDIS_MASTER", "")
	if _, closeStore, err := OpenStoreFlags(ctx, Flags{Store: "redis"}, nil, nil); err == nil {
		closeStore()
		t.Errorf("OpenStoreFlags(redis) with IDEMKIT_REDIS_SENTINELS and no IDEMKIT_REDIS_MASTER succeeded; want an error")
	} else if !strings.Contains(err.Error(), "IDEMKIT_REDIS_MASTER") {
		t.Errorf("OpenStoreFlags(redis) without a master name = %v; want an error naming IDEMKIT_REDIS_MASTER", err)
	}

	t.Setenv("IDEMKIT_REDIS_MASTER", "idem-primary")
	store, closeStore, err := OpenStoreFlags(ctx, Flags{Store: "redis"}, nil, nil)
	if err != nil {
		t.Fatalf("OpenStoreFlags(redis) through the sentinel at %s: %v", sentinel, err)
	}
	defer closeStore()
	key := strings.Repeat("s", 64)
	if _, err := store.Claim(ctx, core.ClaimRequest{Key: key, Token: "token-sentinel", Lease: time.Minute}); err != nil {
		t.Fatalf("Claim through the sentinel: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: primaryAddr})
	defer direct.Close()
	keys, err := direct.Keys(ctx, redisstore.DefaultPrefix+"*").Result()
	if err != nil || len(keys) != 1 || !strings.Contains(keys[0], key) {
		t.Errorf("keys on the primary the sentinel names = %v, %v; want the one claimed through the sentinel", keys, err)
	}
}
