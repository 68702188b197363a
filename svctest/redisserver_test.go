package svctest

import (
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
