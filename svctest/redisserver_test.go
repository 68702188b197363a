package svctest

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestStartRedis(t *testing.T) {
	s := StartRedis(t)
	if _, err := RedisDo(s.Addr(), time.Second, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Stop()
	if _, err := RedisDo(s.Addr(), 200*time.Millisecond, "PING"); err == nil {
		t.Fatalf("PING after Stop succeeded; want an error")
	}
	s.Start()
	v, err := RedisDo(s.Addr(), time.Second, "GET", "k")
	if err != nil || v != "v" {
		t.Fatalf("GET after restart = %v, %v; want v (data survives a restart)", v, err)
	}
}

func TestStartRedisCluster(t *testing.T) {
	c := StartRedisCluster(t, 3)
	if got := len(c.Addrs()); got != 3 {
		t.Fatalf("Addrs() has %d entries, want 3", got)
	}
	for _, a := range c.Addrs() {
		v, err := RedisDo(a, time.Second, "CLUSTER", "INFO")
		if s, _ := v.(string); err != nil || !strings.Contains(s, "cluster_state:ok") {
			t.Errorf("CLUSTER INFO on %s = %q, %v; want cluster_state:ok", a, s, err)
		}
	}
}

// TestRedisKill: Kill ends the server at once (SIGKILL: a write the
// append-only file holds survives, fsync always), and Start brings it back.
func TestRedisKill(t *testing.T) {
	s := StartRedis(t)
	if _, err := RedisDo(s.Addr(), time.Second, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	start := time.Now()
	s.Kill()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Kill took %v; want at once", took)
	}
	if _, err := RedisDo(s.Addr(), 200*time.Millisecond, "PING"); err == nil {
		t.Fatalf("PING after Kill succeeded; want an error")
	}
	s.Kill() // a killed server: nothing to do
	s.Start()
	if v, err := RedisDo(s.Addr(), time.Second, "GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET after Kill and Start = %v, %v; want v", v, err)
	}
}

// TestRedisSentinel: three sentinels (quorum 2) over a primary and its
// replica name the primary; once the primary is killed they promote the
// replica and name it, within seconds (down-after 500 ms).
func TestRedisSentinel(t *testing.T) {
	primary := StartRedis(t)
	host, port, _ := net.SplitHostPort(primary.Addr())
	replica := StartRedis(t, "--replicaof", host, port)
	var sentinels []*RedisSentinel
	for range 3 {
		sentinels = append(sentinels, StartRedisSentinel(t, "idem", primary.Addr(), 2))
	}
	for _, s := range sentinels {
		if err := s.WaitReady(3, 1, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if got, err := s.MasterAddr(); err != nil || got != primary.Addr() {
			t.Fatalf("sentinel %s names %q, %v as the primary; want %s", s.Addr(), got, err, primary.Addr())
		}
	}
	start := time.Now()
	primary.Kill()
	for _, s := range sentinels {
		for {
			got, err := s.MasterAddr()
			if err == nil && got == replica.Addr() {
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("sentinel %s names %q, %v as the primary 20 s after the kill; want the replica %s", s.Addr(), got, err, replica.Addr())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("the sentinels named the promoted replica %s after the primary was killed", time.Since(start).Round(time.Millisecond))
	v, err := RedisDo(replica.Addr(), time.Second, "ROLE")
	if a, _ := v.([]any); err != nil || len(a) == 0 || a[0] != "master" {
		t.Errorf("ROLE on the replica after the failover = %v, %v; want master", v, err)
	}
}
