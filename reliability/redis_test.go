package reliability

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/idemkit/idemkit/svctest"
)

// replicatedRedis is a private primary with a replica, as an operator
// without Sentinel runs them: the replica (promoted at failover) reaches
// the primary through a fault proxy (link) adding 20 ms on the
// replication stream, as a replica in another zone would lag, and has a
// replica of its own (chained), which stays attached when it is promoted
// so that WAIT still finds a replica afterwards. The services reach Redis
// through front, a proxy whose upstream the failover switches from the
// primary to the promoted replica (what a DNS name or a virtual IP does).
type replicatedRedis struct {
	primary, replica, subReplica *svctest.RedisServer
	link, front                  *toxiproxy.Proxy
}

func startReplicated(t *testing.T) *replicatedRedis {
	t.Helper()
	r := startReplicas(t)
	r.front = startProxy(t, "redis", r.primary.Addr())
	return r
}

// startReplicas starts the servers of a replicatedRedis (the primary, the
// lagging link, the replica and its own replica), replicating and in
// sync, without the services' proxy.
func startReplicas(t *testing.T) *replicatedRedis {
	t.Helper()
	// Diskless full syncs start at once (the default waits 5 s for more
	// replicas).
	fast := []string{"--repl-diskless-sync-delay", "0"}
	r := &replicatedRedis{primary: svctest.StartRedis(t, fast...)}
	r.link = startProxy(t, "replication", r.primary.Addr())
	addToxic(t, r.link, `{"name":"lag","type":"latency","stream":"downstream","attributes":{"latency":20}}`)
	host, port, _ := net.SplitHostPort(r.link.Listen)
	r.replica = svctest.StartRedis(t, append([]string{"--replicaof", host, port}, fast...)...)
	host, port, _ = net.SplitHostPort(r.replica.Addr())
	r.subReplica = svctest.StartRedis(t, "--replicaof", host, port)
	if err := waitReplicaAck(r.primary.Addr(), 15*time.Second); err != nil {
		t.Fatalf("replication of the primary: %v", err)
	}
	// The replica is read-only: its own replica is in sync when it
	// reports it online at its own offset.
	for deadline := time.Now().Add(15 * time.Second); ; {
		v, _ := svctest.RedisDo(r.replica.Addr(), time.Second, "INFO", "replication")
		info, _ := v.(string)
		if strings.Contains(info, "master_link_status:up") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica's own replica is not online after 15 s:\n%s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// waitReplicaAck waits until a write on addr is acknowledged by one
// replica (WAIT 1): its replica is connected and in sync.
func waitReplicaAck(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if _, err := svctest.RedisDo(addr, time.Second, "SET", "replica-probe", "1"); err == nil {
			v, err := svctest.RedisDo(addr, 2*time.Second, "WAIT", "1", "500")
			if n, _ := v.(int64); err == nil && n >= 1 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			info, _ := svctest.RedisDo(addr, time.Second, "INFO", "replication")
			return fmt.Errorf("no replica acknowledged a write within %s:\n%v", within, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failover is what an operator without Sentinel does when a primary dies,
// staged so that the primary dies with writes its replica never received:
// the replication link is cut, 400 ms later the primary is killed
// (SIGKILL), the replica is promoted (REPLICAOF NO ONE) and the services'
// proxy is switched to it, cutting their connections.
func (r *replicatedRedis) failover(t *testing.T, ctx context.Context) {
	r.link.Stop()
	after(ctx, 400*time.Millisecond)
	r.primary.Kill()
	if _, err := svctest.RedisDo(r.replica.Addr(), time.Second, "REPLICAOF", "NO", "ONE"); err != nil {
		t.Errorf("REPLICAOF NO ONE: %v", err)
	}
	r.front.Stop()
	r.front.Lock()
	r.front.Upstream = r.replica.Addr()
	r.front.Unlock()
	if err := r.front.Start(); err != nil {
		t.Errorf("toxiproxy: switching to the promoted replica: %v", err)
	}
}

// redisFailover runs the failover scenario on adapter; acks is passed to
// the services as -redis-replica-acks (0: the control run).
func redisFailover(t *testing.T, adapter string, acks int) figures {
	r := startReplicated(t)
	args := []string{}
	name := "redis failover to a replica, replica acks 1"
	s := scenario{load: faultLoad(4 * time.Second), maxSettle: 15 * time.Second, maxWait: 20 * time.Second}
	if acks > 0 {
		args = append(args, "-redis-replica-acks", strconv.Itoa(acks), "-redis-replica-ack-timeout", "250ms")
	} else {
		name = "control: redis failover WITHOUT replica acks"
		s.expectReruns = "a failover without replica acknowledgements (C-REDIS-4; the control run)"
		// A claim that reached the replica and whose response did not
		// stays pending there, held by nobody, until its lease lapses.
		s.knownWait = "control run: a claim replicated, its response lost with the primary, the key locked for the lease"
	}
	if full {
		s.load = faultLoad(7 * time.Second)
	}
	s.name = name
	c := startCluster(t, adapter, "redis", 3, []string{"IDEMKIT_REDIS_URL=redis://" + r.front.Listen + "/0"}, args...)
	s.fault = func(ctx context.Context, c *cluster) int {
		if !after(ctx, 1500*time.Millisecond) {
			return 0
		}
		r.failover(t, ctx)
		return 1
	}
	return s.run(t, c)
}

// TestRedisFailover: a primary and its replica; under load, the
// replica's link is cut and the primary killed 400 ms later, the replica
// promoted and the services switched to it. With -redis-replica-acks 1
// (redisstore.WithReplicaAcks) no claim or response a client was
// answered on lives only on the dead primary: no key runs twice, no
// acknowledged response is lost, none stays locked.
// RELIABILITY_CONTROL=1 adds the control run without replica acks, whose
// re-runs show what the scenario guards (docs/contract.md C-REDIS-4:
// writes the primary acknowledged and never replicated are lost, and
// their keys run again).
func TestRedisFailover(t *testing.T) {
	needMode(t)
	for _, a := range pick(2) {
		t.Run(a, func(t *testing.T) { redisFailover(t, a, 1) })
	}
	if os.Getenv("RELIABILITY_CONTROL") == "" {
		return
	}
	for _, a := range pick(2) {
		t.Run("control/"+a, func(t *testing.T) {
			f := redisFailover(t, a, 0)
			if f.Expected == 0 {
				t.Errorf("without replica acks, no key ran twice after the failover: the control does not show the writes lost with the primary, and the scenario shows nothing")
			}
		})
	}
}

// sentinelMaxWait bounds how long a key may take in the Sentinel
// failover: the sentinels see the primary down after
// svctest.SentinelDownAfter (500 ms), agree, elect a leader and promote
// the replica about 1.7 s after the kill; the services find it at their
// next dial. A key whose Claim call failed at the kill (its claim may
// have landed and replicated) is released by the engine in the
// background, retried at most a second apart while no primary answers,
// and a client's retry (backoff up to 1 s) then runs it: 3.5–4.9 s
// measured. 10 s leaves room for a slower promotion; a key locked for its
// lease (30 s) by a claim nobody holds is far beyond.
const sentinelMaxWait = 10 * time.Second

// TestRedisSentinelFailover: a primary, its replica (20 ms behind on the
// replication stream) and the replica's own replica, under three Redis
// Sentinels (quorum 2, down-after 500 ms); the services find the primary
// through the sentinels (IDEMKIT_REDIS_SENTINELS, go-redis's failover
// client) with -redis-replica-acks 1. Under load the primary is killed
// (SIGKILL); the sentinels promote the replica, and the services must
// find it themselves: no proxy is switched. With one replica only, the
// one promoted is the one that acknowledged every write a client was
// answered on (two replicas of the primary and WAIT 1 could see the other
// promoted), and its own replica stays attached, so WAIT still finds a
// replica afterwards (docs/contract.md C-REDIS-4). No key runs twice, no
// acknowledged response is lost, none stays locked, none waits past
// sentinelMaxWait. Full mode only: it adds ten seconds per adapter.
func TestRedisSentinelFailover(t *testing.T) {
	needMode(t)
	if !full {
		t.Skip("full mode only (RELIABILITY=full): the bounded run keeps TestRedisFailover")
	}
	for _, a := range pick(3) {
		t.Run(a, func(t *testing.T) { sentinelFailover(t, a) })
	}
}

func sentinelFailover(t *testing.T, adapter string) figures {
	const master = "idem-primary"
	r := startReplicas(t)
	var sentinels []*svctest.RedisSentinel
	var addrs []string
	for range 3 {
		s := svctest.StartRedisSentinel(t, master, r.primary.Addr(), 2)
		sentinels = append(sentinels, s)
		addrs = append(addrs, s.Addr())
	}
	for _, s := range sentinels {
		if err := s.WaitReady(3, 1, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"IDEMKIT_REDIS_SENTINELS=" + strings.Join(addrs, ","), "IDEMKIT_REDIS_MASTER=" + master}
	c := startCluster(t, adapter, "redis", 3, env, "-redis-replica-acks", "1", "-redis-replica-ack-timeout", "250ms")
	s := scenario{name: "redis sentinel failover, replica acks 1", load: faultLoad(7 * time.Second),
		maxSettle: 15 * time.Second, maxWait: sentinelMaxWait}
	s.fault = func(ctx context.Context, c *cluster) int {
		if !after(ctx, 1500*time.Millisecond) {
			return 0
		}
		killed := time.Now()
		r.primary.Kill()
		for ctx.Err() == nil {
			if got, err := sentinels[0].MasterAddr(); err == nil && got == r.replica.Addr() {
				t.Logf("the sentinels promoted the replica %s after the primary was killed", time.Since(killed).Round(time.Millisecond))
				break
			}
			if time.Since(killed) > 20*time.Second {
				t.Errorf("the sentinels did not promote the replica within 20 s of the primary's kill")
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return 1
	}
	return s.run(t, c)
}

// TestEvictingRedis: a Redis with maxmemory-policy allkeys-lru, shared
// with a cache that fills it (filler keys written through the load, as an
// application's cache would), so that Redis evicts all the time. The
// example services refuse to start on it (redisstore's Check reports
// ErrEvictionPolicy); with -allow-evicting-redis they start, and a key
// whose claim or response was evicted runs again: the documented failure
// (docs/contract.md C-REDIS-1), counted as re-runs
// expected, not failed. The faults column counts the keys Redis evicted.
// No key may stay stuck.
func TestEvictingRedis(t *testing.T) {
	needMode(t)
	for _, a := range pick(1) {
		t.Run(a, func(t *testing.T) {
			srv := svctest.StartRedis(t, "--maxmemory-policy", "allkeys-lru")
			env := []string{"IDEMKIT_REDIS_URL=" + srv.URL()}
			refusesToStart(t, a, env)
			c := startCluster(t, a, "redis", 3, env, "-allow-evicting-redis")
			// 1 MB above what the server uses with the instances connected:
			// room for the connections the load opens (Redis counts their
			// buffers, which it cannot evict), filled by the cache.
			used := redisInfoInt(t, srv.Addr(), "memory", "used_memory")
			maxmemory := used + 1<<20
			if _, err := svctest.RedisDo(srv.Addr(), time.Second, "CONFIG", "SET", "maxmemory", strconv.FormatInt(maxmemory, 10)); err != nil {
				t.Fatalf("CONFIG SET maxmemory: %v", err)
			}
			window := 3 * time.Second
			if full {
				window = 5 * time.Second
			}
			l := faultLoad(window)
			l.Settle = 15 * time.Second
			var evicted int64
			f := scenario{name: "evicting redis (allkeys-lru, -allow-evicting-redis)", load: l, maxSettle: 15 * time.Second,
				expectReruns: "an evicting Redis (C-REDIS-1; -allow-evicting-redis)",
				fault: func(ctx context.Context, c *cluster) int {
					if raised := fillCache(ctx, srv.Addr(), window, maxmemory); raised > 0 {
						t.Logf("Redis refused the cache's writes (OOM: its connections' buffers, which it cannot evict, filled it); maxmemory raised %d times by 512 KB", raised)
					}
					return 0
				},
				countFaults: func() int {
					evicted = redisInfoInt(t, srv.Addr(), "stats", "evicted_keys")
					return int(evicted)
				}}.run(t, c)
			t.Logf("evicting redis on %s: Redis evicted %d keys (maxmemory %d bytes); %d keys ran more than once", a, evicted, maxmemory, f.Expected)
			if f.Expected == 0 {
				t.Logf("no key ran twice: every evicted key was a cache key or a record no client asked for again")
			}
			if evicted == 0 {
				t.Errorf("Redis evicted no key: the scenario did not stage an evicting Redis")
			}
		})
	}
}

// fillCache writes 4 KB cache keys to addr at about 400 KB/s for d, on one
// connection. Redis counts its connections' buffers in its memory and
// cannot evict them: when they alone fill maxmemory, Redis refuses writes
// (OOM: 503, never a second run) instead of evicting. The scenario is
// about eviction, so when a cache write is refused, fillCache raises
// maxmemory by 512 KB; it returns how many times.
func fillCache(ctx context.Context, addr string, d time.Duration, maxmemory int64) int {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0
	}
	defer conn.Close()
	value := strings.Repeat("x", 4<<10)
	buf := make([]byte, 512)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	raised := 0
	for i, end := 0, time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; i++ {
		key := fmt.Sprintf("cache:%d", i)
		cmd := fmt.Sprintf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value)
		conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte(cmd)); err != nil {
			return raised
		}
		n, err := conn.Read(buf)
		if err != nil {
			return raised
		}
		if strings.HasPrefix(string(buf[:n]), "-OOM") {
			maxmemory += 512 << 10
			raised++
			svctest.RedisDo(addr, time.Second, "CONFIG", "SET", "maxmemory", strconv.FormatInt(maxmemory, 10))
		}
		<-tick.C
	}
	return raised
}

// refusesToStart checks that adapter's example, without
// -allow-evicting-redis, exits at start on the evicting Redis of env,
// naming the policy (redisstore.ErrEvictionPolicy) and the override.
func refusesToStart(t *testing.T, adapter string, env []string) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, adapter), "-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "-store", "redis")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s without -allow-evicting-redis on an allkeys-lru Redis did not exit within 20 s; want a refusal to start\n%s", adapter, out)
	case err == nil:
		t.Fatalf("%s without -allow-evicting-redis on an allkeys-lru Redis exited 0; want a refusal to start\n%s", adapter, out)
	case !strings.Contains(string(out), "maxmemory-policy is not noeviction") || !strings.Contains(string(out), "-allow-evicting-redis"):
		t.Fatalf("%s refused to start (%v) without naming the eviction policy (redisstore.ErrEvictionPolicy) and -allow-evicting-redis:\n%s", adapter, err, out)
	}
	t.Logf("%s without -allow-evicting-redis: %v, %s", adapter, err, strings.TrimSpace(lastLine(string(out))))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// redisInfoInt returns field of INFO section on addr.
func redisInfoInt(t *testing.T, addr, section, field string) int64 {
	t.Helper()
	v, err := svctest.RedisDo(addr, time.Second, "INFO", section)
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	s, _ := v.(string)
	for _, line := range strings.Split(s, "\n") {
		if val, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(val, 10, 64)
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}
