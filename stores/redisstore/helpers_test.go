package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/redis/go-redis/v9"
)

// This module's own tests take Redis from IDEMKIT_REDIS_URL only, so that
// the module requires nothing but core and go-redis. The tests that start
// containers or private servers live in the test-only module in test/.
const (
	envRedisURL        = "IDEMKIT_REDIS_URL"
	envRequireServices = "IDEMKIT_REQUIRE_SERVICES"
)

// serviceUnavailable ends the test because a server it needs is missing: a skip
// with the reason, or a failure when IDEMKIT_REQUIRE_SERVICES is set.
func serviceUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if v := os.Getenv(envRequireServices); v != "" && v != "0" && v != "false" {
		t.Fatalf("required service unavailable ("+envRequireServices+" is set): "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// singleClient returns a client of the Redis at IDEMKIT_REDIS_URL, closed
// at cleanup.
func singleClient(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv(envRedisURL)
	if url == "" {
		serviceUnavailable(t, "%s is unset", envRedisURL)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis.ParseURL(%s): %v", envRedisURL, err)
	}
	opt.ContextTimeoutEnabled = true
	opt.PoolSize = 32
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		serviceUnavailable(t, "Redis at %s does not answer PING: %v", opt.Addr, err)
	}
	return c
}

// clusterClient starts a private 3-master Redis Cluster with the
// repository's scripts/redis-cluster.sh and returns a client of it and the
// masters' addresses; the cluster is stopped at cleanup.
func clusterClient(t testing.TB) (*redis.ClusterClient, []string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "redis-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		serviceUnavailable(t, "no %s to start a Redis Cluster: %v", script, err)
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			serviceUnavailable(t, "a Redis Cluster needs %s: %v", bin, err)
		}
	}
	// A start can lose a free port to another test's server between the
	// script's check and the bind: try a few times, each in a fresh
	// directory, and say what the script said.
	var out []byte
	var failures []string
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		t.Cleanup(func() {
			if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
				t.Errorf("redis-cluster.sh stop: %v\n%s", err, out)
			}
		})
		var stderr strings.Builder
		cmd := exec.Command("bash", script, "start", dir)
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err == nil {
			break
		}
		failures = append(failures, fmt.Sprintf("attempt %d: %v\n%s%s", attempt, err, out, stderr.String()))
		if attempt == 3 {
			t.Fatalf("redis-cluster.sh start failed 3 times:\n%s", strings.Join(failures, "\n"))
		}
	}
	if len(failures) > 0 {
		t.Logf("redis-cluster.sh start needed %d attempts:\n%s", len(failures)+1, strings.Join(failures, "\n"))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	addrs := strings.Split(lines[len(lines)-1], ",")
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 addrs,
		ContextTimeoutEnabled: true,
		PoolSize:              32,
	})
	t.Cleanup(func() { c.Close() })
	return c, addrs
}

// uniquePrefix returns a key prefix no other test uses.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	return "idemtest:" + randHex(t, 8) + ":"
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newKey(t testing.TB) string { return randHex(t, 32) }

func newToken(t testing.TB) core.Token { return core.Token(randHex(t, 16)) }

func fp(b byte) core.Fingerprint {
	var f core.Fingerprint
	for i := range f {
		f[i] = b + byte(i)
	}
	return f
}
