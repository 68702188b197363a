package svctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timings of the sentinels [StartRedisSentinel] starts, short so that a
// test sees a failover within seconds: a primary that does not answer for
// SentinelDownAfter is down for a sentinel (and, once a quorum agrees,
// failed over); a failover not done within SentinelFailoverTimeout is
// abandoned, and tried again after twice that.
const (
	SentinelDownAfter       = 500 * time.Millisecond
	SentinelFailoverTimeout = 3 * time.Second
)

// RedisSentinel is a private redis-server in sentinel mode started by
// [StartRedisSentinel], on a free loopback port, with its configuration
// file (which Sentinel rewrites) in t.TempDir(). It is stopped by PID when
// the test ends.
type RedisSentinel struct {
	master string
	port   int
}

// StartRedisSentinel starts a sentinel monitoring the primary at
// primaryAddr (host:port) under the name master, with quorum, and returns
// it answering PING. Sentinels of the same master find each other and the
// primary's replicas through the primary (see
// [RedisSentinel.WaitReady]). If redis-server is not on PATH, the test
// ends through [Unavailable].
func StartRedisSentinel(t testing.TB, master, primaryAddr string, quorum int) *RedisSentinel {
	t.Helper()
	bin := lookRedis(t, "redis-server")
	host, port, err := net.SplitHostPort(primaryAddr)
	if err != nil {
		t.Fatalf("svctest: primary address %q: %v", primaryAddr, err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		sport, err := freePort(false)
		if err != nil {
			t.Fatalf("svctest: no free loopback port: %v", err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		logfile := filepath.Join(dir, "sentinel.log")
		text := strings.Join([]string{
			"port " + strconv.Itoa(sport),
			"bind 127.0.0.1",
			"protected-mode no",
			"daemonize no",
			"dir " + dir,
			"logfile " + logfile,
			fmt.Sprintf("sentinel monitor %s %s %s %d", master, host, port, quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", master, SentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", master, SentinelFailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", master),
		}, "\n") + "\n"
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd, done, err := runUntilPing(exec.Command(bin, conf, "--sentinel"), dir, logfile, sport)
		if lastErr = err; err == nil {
			t.Cleanup(func() { stopProcess(cmd, done) })
			return &RedisSentinel{master: master, port: sport}
		}
	}
	t.Fatalf("svctest: redis-server --sentinel did not start: %v", lastErr)
	return nil
}

// Addr returns the sentinel's host:port.
func (s *RedisSentinel) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// MasterAddr returns the host:port the sentinel names as the primary
// (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (s *RedisSentinel) MasterAddr() (string, error) {
	v, err := RedisDo(s.Addr(), time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.master)
	if err != nil {
		return "", err
	}
	a, _ := v.([]any)
	if len(a) != 2 {
		return "", fmt.Errorf("svctest: sentinel on %s knows no master %q (%v)", s.Addr(), s.master, v)
	}
	host, _ := a[0].(string)
	port, _ := a[1].(string)
	return net.JoinHostPort(host, port), nil
}

// WaitReady waits until the sentinel knows sentinels-1 other sentinels and
// replicas replicas of the primary, and reports that its quorum can
// authorise a failover (SENTINEL CKQUORUM): only then does killing the
// primary lead to a failover. Sentinels announce themselves every 2 s.
func (s *RedisSentinel) WaitReady(sentinels, replicas int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		v, err := RedisDo(s.Addr(), time.Second, "SENTINEL", "MASTER", s.master)
		fields := map[string]string{}
		if a, ok := v.([]any); ok {
			for i := 0; i+1 < len(a); i += 2 {
				k, _ := a[i].(string)
				fields[k], _ = a[i+1].(string)
			}
		}
		others, _ := strconv.Atoi(fields["num-other-sentinels"])
		slaves, _ := strconv.Atoi(fields["num-slaves"])
		if err == nil && others >= sentinels-1 && slaves >= replicas {
			if _, err = RedisDo(s.Addr(), time.Second, "SENTINEL", "CKQUORUM", s.master); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("svctest: sentinel on %s not ready within %s: %d other sentinels (want %d), %d replicas (want %d), last error %v",
				s.Addr(), within, others, sentinels-1, slaves, replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
