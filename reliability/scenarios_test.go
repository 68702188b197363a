package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/svctest"
	"github.com/jackc/pgx/v5"
)

// baseLoad is the load of the exactly-once scenarios: a third of the
// requests watch their context while they wait, a fifth hold past their
// client's timeout (the handler finishes after the client gave up), and
// every logical request is delivered three times at once, to three
// instances, each delivery retried by go-retryablehttp round the instances.
func baseLoad() load {
	l := load{
		Keys: 150, Rate: 60, Deliveries: 3, Timeout: 300 * time.Millisecond, RetryMax: 30,
		HoldFrac: 0.2, DelayFrac: 0.4, MaxHold: 700 * time.Millisecond, MaxDelay: 200 * time.Millisecond,
		Settle: 45 * time.Second,
	}
	if full {
		l.Keys, l.Rate = 2000, 120
	}
	return l
}

// faultLoad is baseLoad lasting about window.
func faultLoad(window time.Duration) load {
	l := baseLoad()
	l.Keys = int(l.Rate * window.Seconds())
	return l
}

// needMode skips t unless the suite was asked for (see mode).
func needMode(t *testing.T) {
	t.Helper()
	if binDir == "" {
		t.Skip("RELIABILITY is neither bounded nor full: run make reliability")
	}
}

// servers are the private store servers of one test.
type servers struct {
	redis *svctest.RedisServer
	pg    *svctest.PostgresServer
	env   []string
}

// startServers starts what store needs: nothing for memory, a private
// redis-server, a private PostgreSQL, or both (tiered: Redis over
// Postgres). Faults never touch a shared server.
func startServers(t *testing.T, store string) *servers {
	t.Helper()
	s := &servers{}
	if store == "redis" || store == "tiered" {
		s.redis = svctest.StartRedis(t)
		s.env = append(s.env, "IDEMKIT_REDIS_URL="+s.redis.URL())
	}
	if store == "postgres" || store == "tiered" {
		s.pg = svctest.StartPostgres(t)
		s.env = append(s.env, "IDEMKIT_POSTGRES_URL="+s.pg.URL())
	}
	return s
}

// pick returns every adapter in a full run, else the one at i (so that a
// bounded run still spreads its scenarios over the adapters).
func pick(i int) []string {
	if full {
		return adapters
	}
	return []string{adapters[i%len(adapters)]}
}

func instancesFor(store string) int {
	if store == "memory" {
		return 1
	}
	return 3
}

// after waits d or until ctx ends; it reports whether d passed.
func after(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// TestExactlyOnce: several instances sharing one store, no fault.
func TestExactlyOnce(t *testing.T) {
	needMode(t)
	for si, store := range []string{"memory", "redis", "postgres", "tiered"} {
		t.Run(store, func(t *testing.T) {
			srv := startServers(t, store)
			as := pick(si)
			if store == "memory" {
				as = adapters
			}
			for _, a := range as {
				t.Run(a, func(t *testing.T) {
					c := startCluster(t, a, store, instancesFor(store), srv.env)
					scenario{name: "exactly-once", load: baseLoad()}.run(t, c)
				})
			}
		})
	}
}

// outage is a fault of one store outage: a second into the load, down,
// then d later, up.
func outage(down func(), d time.Duration, up func()) func(context.Context, *cluster) int {
	return func(ctx context.Context, c *cluster) int {
		if !after(ctx, time.Second) {
			return 0
		}
		down()
		after(ctx, d)
		up()
		return 1
	}
}

// TestRedisRestart: Redis is stopped and started again during the load
// (its data survives: append-only file).
func TestRedisRestart(t *testing.T) {
	needMode(t)
	for _, a := range pick(0) {
		t.Run(a, func(t *testing.T) {
			srv := startServers(t, "redis")
			c := startCluster(t, a, "redis", 3, srv.env)
			scenario{name: "redis killed and restarted", load: faultLoad(5 * time.Second), maxSettle: 15 * time.Second, maxWait: 20 * time.Second,
				fault: outage(func() { srv.redis.Stop() }, 1500*time.Millisecond, func() { srv.redis.Start() })}.run(t, c)
		})
	}
}

// TestRedisPause: Redis is frozen (SIGSTOP) for longer than go-redis's
// 3 s socket timeout, then resumed.
func TestRedisPause(t *testing.T) {
	needMode(t)
	for _, a := range pick(1) {
		t.Run(a, func(t *testing.T) {
			srv := startServers(t, "redis")
			c := startCluster(t, a, "redis", 3, srv.env)
			scenario{name: "redis paused 4s (SIGSTOP)", load: faultLoad(7 * time.Second), maxSettle: 15 * time.Second, maxWait: 20 * time.Second,
				fault: outage(func() { srv.redis.Pause() }, 4*time.Second, func() { srv.redis.Resume() })}.run(t, c)
		})
	}
}

// TestTieredRedisRestart: the tiered store's Redis is stopped and started
// again during the load. Postgres alone serves meanwhile; afterwards the
// hot tier must be used again (a breaker whose half-open probe was lost
// would keep it off until restart): new records reach Redis.
func TestTieredRedisRestart(t *testing.T) {
	needMode(t)
	for _, a := range pick(1) {
		t.Run(a, func(t *testing.T) {
			srv := startServers(t, "tiered")
			c := startCluster(t, a, "tiered", 3, srv.env)
			var hotAfterRestart int64
			scenario{name: "tiered: redis killed and restarted", load: faultLoad(5 * time.Second), maxSettle: 15 * time.Second, maxWait: 20 * time.Second,
				fault: outage(func() { srv.redis.Stop() }, 1500*time.Millisecond, func() {
					srv.redis.Start()
					v, _ := svctest.RedisDo(srv.redis.Addr(), time.Second, "DBSIZE")
					hotAfterRestart, _ = v.(int64)
				})}.run(t, c)
			// The breaker's cooldown passes, then fresh keys go through the hot tier again.
			time.Sleep(2 * time.Second)
			l := baseLoad()
			l.Keys, l.Rate = 30, 30
			res := l.run(context.Background(), c.urls(), fmt.Sprintf("tiered-after-%d", time.Now().UnixNano()))
			for _, kr := range res.keys {
				if kr.final == nil {
					t.Errorf("after the restart, key %s never answered 2xx", kr.key)
				}
			}
			v, _ := svctest.RedisDo(srv.redis.Addr(), time.Second, "DBSIZE")
			hot, _ := v.(int64)
			if hot <= hotAfterRestart {
				t.Errorf("the hot tier held %d keys right after Redis restarted and %d after 30 more requests; want more: the tiered store must use Redis again once it is back", hotAfterRestart, hot)
			}
			t.Logf("tiered: hot tier %d keys after the restart, %d after 30 more requests", hotAfterRestart, hot)
		})
	}
}

// TestPostgresRestart: Postgres is stopped (fast: clients disconnected)
// and started again during the load, on the postgres and tiered stores.
func TestPostgresRestart(t *testing.T) {
	needMode(t)
	for _, store := range []string{"postgres", "tiered"} {
		t.Run(store, func(t *testing.T) {
			for _, a := range pick(2) {
				t.Run(a, func(t *testing.T) {
					srv := startServers(t, store)
					c := startCluster(t, a, store, 3, srv.env)
					scenario{name: "postgres restarted", load: faultLoad(5 * time.Second), maxWait: 20 * time.Second,
						fault: outage(func() { srv.pg.Stop() }, 1500*time.Millisecond, func() { srv.pg.Start() })}.run(t, c)
				})
			}
		})
	}
}

// TestPostgresTerminate: every client backend is killed with
// pg_terminate_backend every 250 ms for 2.5 s during the load.
func TestPostgresTerminate(t *testing.T) {
	needMode(t)
	for _, a := range pick(0) {
		t.Run(a, func(t *testing.T) {
			srv := startServers(t, "postgres")
			c := startCluster(t, a, "postgres", 3, srv.env)
			scenario{name: "postgres connections killed", load: faultLoad(5 * time.Second), maxWait: 20 * time.Second,
				fault: func(ctx context.Context, c *cluster) int {
					if !after(ctx, time.Second) {
						return 0
					}
					killed := 0
					for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
						n, err := terminateBackends(ctx, srv.pg.URL())
						if err != nil {
							t.Logf("pg_terminate_backend: %v", err)
						}
						killed += n
						if !after(ctx, 250*time.Millisecond) {
							break
						}
					}
					return killed
				}}.run(t, c)
		})
	}
}

// terminateBackends kills every other client backend of the server and
// returns how many.
func terminateBackends(ctx context.Context, url string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(cctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n)
	return n, err
}

// TestSlowHandlerLease: every handler holds 1.5 s, past a 600 ms lease and
// past its clients' 300 ms timeout; renewal keeps the lease, so the
// concurrent duplicates get 409 and never run the handler.
func TestSlowHandlerLease(t *testing.T) {
	needMode(t)
	stores := []string{"redis"}
	if full {
		stores = []string{"redis", "postgres", "tiered"}
	}
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			for _, a := range pick(1) {
				t.Run(a, func(t *testing.T) {
					srv := startServers(t, store)
					c := startCluster(t, a, store, 3, srv.env, "-lease", "600ms")
					l := baseLoad()
					l.Keys, l.Rate, l.Hold = 60, 30, 1500*time.Millisecond
					if full {
						l.Keys = 300
					}
					scenario{name: "handler 1.5s > lease 600ms", load: l}.run(t, c)
				})
			}
		})
	}
}

// TestInstanceKilled: one of three instances is killed with SIGKILL while
// its handlers hold (lease 1 s). The keys it held are free again once
// their lease lapses, and a retry runs the handler once more: the
// documented at-least-once case across crashes, counted apart. No key
// stays stuck, and every other key runs once.
func TestInstanceKilled(t *testing.T) {
	needMode(t)
	for _, a := range pick(2) {
		t.Run(a, func(t *testing.T) {
			srv := startServers(t, "redis")
			c := startCluster(t, a, "redis", 3, srv.env, "-lease", "1s")
			l := faultLoad(4 * time.Second)
			l.HoldFrac, l.MaxHold = 0.5, 800*time.Millisecond
			scenario{name: "instance SIGKILLed mid-handler", load: l, crashed: []int{0},
				fault: func(ctx context.Context, c *cluster) int {
					if !after(ctx, 1500*time.Millisecond) {
						return 0
					}
					c.kill(0)
					return 1
				}}.run(t, c)
		})
	}
}

// TestStoreClock: an instance whose clock is off cannot be staged here
// (a Go binary reads the clock through the vDSO, so a preloaded fake clock
// does not reach it, and changing the machine's clock would touch every
// process). What matters is that no instance's clock judges a lease or an
// expiry: the test shows that the service sends the stores durations only,
// never an instant of its own clock (every argument of every Redis command
// it sends, seen through MONITOR), and that the deadlines the stores hold
// are their own clock plus the lease (Redis PTTL, Postgres
// lease_expires_at - now()).
func TestStoreClock(t *testing.T) {
	needMode(t)
	t.Run("redis", func(t *testing.T) {
		srv := startServers(t, "redis")
		c := startCluster(t, "chi", "redis", 1, srv.env, "-lease", "5s")
		stop, lines := monitor(t, srv.redis.Addr())
		done := holdOne(t, c)
		deadline := time.Now().Add(5 * time.Second)
		var pttl int64 = -3
		for time.Now().Before(deadline) && pttl < 0 {
			keys, _ := svctest.RedisDo(srv.redis.Addr(), time.Second, "KEYS", "idem:*")
			if ks, ok := keys.([]any); ok && len(ks) > 0 {
				v, _ := svctest.RedisDo(srv.redis.Addr(), time.Second, "PTTL", fmt.Sprint(ks[0]))
				pttl, _ = v.(int64)
			}
			time.Sleep(20 * time.Millisecond)
		}
		<-done
		if pttl <= 0 || pttl > 5000 {
			t.Errorf("PTTL of the pending claim = %d ms; want in (0, 5000]: Redis holds the lease by its own clock", pttl)
		}
		cmds := stop()
		now := time.Now()
		checked := 0
		for _, line := range cmds {
			for _, arg := range monitorArgs(line) {
				checked++
				if looksLikeInstant(arg, now) {
					t.Errorf("the service sent Redis an instant of its own clock (%s) in %s", arg, line)
				}
			}
		}
		if checked == 0 {
			t.Errorf("MONITOR saw no command arguments; lines: %v", cmds)
		}
		t.Logf("redis: pending claim PTTL %d ms for a 5 s lease; %d command arguments seen by MONITOR, none an instant", pttl, checked)
		_ = lines
	})
	t.Run("postgres", func(t *testing.T) {
		srv := startServers(t, "postgres")
		c := startCluster(t, "chi", "postgres", 1, srv.env, "-lease", "5s")
		done := holdOne(t, c)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, srv.pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var left time.Duration = -1
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && left < 0; {
			var ms float64
			err := conn.QueryRow(ctx, `SELECT extract(epoch FROM lease_expires_at - now()) * 1000 FROM idempotency_keys WHERE state = 'pending' LIMIT 1`).Scan(&ms)
			if err == nil {
				left = time.Duration(ms * float64(time.Millisecond))
			}
			time.Sleep(20 * time.Millisecond)
		}
		<-done
		if left <= 0 || left > 5*time.Second {
			t.Errorf("lease_expires_at - now() of the pending claim = %s; want in (0, 5s]: Postgres holds the lease by its own now()", left)
		}
		t.Logf("postgres: pending claim expires %s after the server's now() for a 5 s lease", left.Round(time.Millisecond))
	})
}

// holdOne sends one request that holds its handler 1.5 s; the channel is
// closed when it has answered.
func holdOne(t *testing.T, c *cluster) chan struct{} {
	done := make(chan struct{})
	l := load{Keys: 1, Rate: 1, Deliveries: 1, Timeout: 10 * time.Second, Hold: 1500 * time.Millisecond, Settle: 10 * time.Second}
	go func() {
		defer close(done)
		res := l.run(context.Background(), c.urls(), fmt.Sprintf("clock-%d", time.Now().UnixNano()))
		if res.keys[0].final == nil {
			t.Errorf("the held request never answered 2xx")
		}
	}()
	return done
}

// monitor runs MONITOR on a Redis server; stop ends it and returns the
// lines seen.
func monitor(t *testing.T, addr string) (stop func() []string, _ *[]string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	conn.Write([]byte("MONITOR\r\n"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			mu.Lock()
			lines = append(lines, strings.TrimSpace(line))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return func() []string {
		conn.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}, &lines
}

// monitorArgs returns the quoted arguments of a MONITOR line.
func monitorArgs(line string) []string {
	i := strings.Index(line, "] ")
	if i < 0 {
		return nil
	}
	var args []string
	for _, f := range strings.Split(line[i+2:], `" "`) {
		args = append(args, strings.Trim(f, `"`))
	}
	return args
}

// looksLikeInstant reports whether arg is a number within ten days of now
// in seconds, milliseconds, microseconds or nanoseconds since the epoch.
func looksLikeInstant(arg string, now time.Time) bool {
	v, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(arg, 64)
		if ferr != nil {
			return false
		}
		v = int64(f)
	}
	const window = 10 * 24 * time.Hour
	for _, unit := range []time.Duration{time.Second, time.Millisecond, time.Microsecond, time.Nanosecond} {
		n := now.UnixNano() / int64(unit)
		w := int64(window / unit)
		if v > n-w && v < n+w {
			return true
		}
	}
	return false
}
