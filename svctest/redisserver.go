package svctest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a private redis-server process started by [StartRedis]:
// one per test, on a free loopback port, with its files in t.TempDir(). It
// can be stopped and started again on the same port, to test what a store
// does while Redis is down. It is stopped by PID when the test ends.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts a private redis-server for t and returns it running.
// Data survives [RedisServer.Stop] and [RedisServer.Start] (append-only
// file, fsync on every write). Extra arguments are passed to redis-server
// (for example "--maxmemory", "1mb"). If redis-server is not on PATH, the
// test ends through [Unavailable].
func StartRedis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	bin := lookRedis(t, "redis-server")
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort(false)
		if err != nil {
			t.Fatalf("svctest: no free loopback port: %v", err)
		}
		s := &RedisServer{t: t, bin: bin, dir: dir, port: port, args: append([]string{
			"--appendonly", "yes", "--appendfsync", "always",
		}, args...)}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.kill)
			return s
		}
	}
	t.Fatalf("svctest: redis-server did not start: %v", lastErr)
	return nil
}

// Addr returns the server's host:port.
func (s *RedisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL of the server's database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop shuts the server down (SIGTERM, then SIGKILL after 5 s) and waits
// until its process has exited. Stopping a stopped server does nothing.
func (s *RedisServer) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	stopProcess(s.cmd, s.done)
	s.cmd, s.done = nil, nil
}

// Kill ends the server with SIGKILL, as a crash would (no shutdown, no
// last write to its replicas), and waits until its process has exited.
// [RedisServer.Start] starts it again. Killing a stopped server does
// nothing.
func (s *RedisServer) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Pause freezes the server process (SIGSTOP): connections stay open and
// new ones are accepted by the kernel, but nothing answers, as with a hung
// or overloaded server. [RedisServer.Resume] lets it run again.
func (s *RedisServer) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a server frozen by [RedisServer.Pause].
func (s *RedisServer) Resume() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("svctest: signal %v to a stopped redis-server", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("svctest: signal %v to redis-server: %v", sig, err)
	}
}

// Start starts a stopped server again on the same port and waits until it
// answers PING. Starting a running server does nothing.
func (s *RedisServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("svctest: restarting redis-server on %s: %v", s.Addr(), err)
	}
}

func (s *RedisServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd, done, err := startRedisProcess(s.bin, s.dir, s.port, s.args)
	if err != nil {
		return err
	}
	s.cmd, s.done = cmd, done
	return nil
}

// kill stops the process by PID at cleanup.
func (s *RedisServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		stopProcess(s.cmd, s.done)
		s.cmd, s.done = nil, nil
	}
}

// RedisCluster is a Redis Cluster of private redis-server processes
// started by [StartRedisCluster], masters only, on free loopback ports.
type RedisCluster struct {
	addrs []string
	nodes []*exec.Cmd
	dones []chan struct{}
}

// StartRedisCluster starts masters redis-server processes with
// cluster-enabled, joins them with redis-cli --cluster create (no
// replicas), and waits until every node reports cluster_state:ok and knows
// every other node. The processes are stopped by PID when the test ends.
// If redis-server or redis-cli is not on PATH, the test ends through
// [Unavailable].
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("svctest: a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	bin := lookRedis(t, "redis-server")
	cli := lookRedis(t, "redis-cli")
	c := &RedisCluster{}
	t.Cleanup(c.stop)
	root := t.TempDir()
	for i := 0; i < masters; i++ {
		dir := filepath.Join(root, fmt.Sprintf("node%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var (
			cmd  *exec.Cmd
			done chan struct{}
			port int
			err  error
		)
		for attempt := 0; attempt < 5; attempt++ {
			if port, err = freePort(true); err != nil {
				continue
			}
			cmd, done, err = startRedisProcess(bin, dir, port, []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "5000",
				"--appendonly", "no",
			})
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("svctest: cluster node %d did not start: %v", i, err)
		}
		c.nodes = append(c.nodes, cmd)
		c.dones = append(c.dones, done)
		c.addrs = append(c.addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("svctest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := waitClusterOK(c.addrs, 30*time.Second); err != nil {
		t.Fatalf("svctest: cluster not ready: %v", err)
	}
	return c
}

// Addrs returns the host:port of every master.
func (c *RedisCluster) Addrs() []string { return append([]string(nil), c.addrs...) }

func (c *RedisCluster) stop() {
	for i, cmd := range c.nodes {
		stopProcess(cmd, c.dones[i])
	}
	c.nodes, c.dones = nil, nil
}

// RedisDo sends one command to the Redis server at addr over a fresh
// connection and returns its reply: a string for simple and bulk strings,
// int64 for integers, []any for arrays, nil for a nil reply, and an error
// for an error reply. It needs no client library, so svctest stays
// dependency-free for Redis.
func RedisDo(addr string, timeout time.Duration, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("svctest: empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("svctest: unexpected reply %q", line)
}

func lookRedis(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not on PATH: %v", name, err)
	}
	return p
}

// freePort returns a loopback TCP port that was free a moment ago. With
// bus set, port+10000 (the cluster bus port) was free as well.
func freePort(bus bool) (int, error) {
	if !bus {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	for attempt := 0; attempt < 100; attempt++ {
		port := 20000 + rand.IntN(25000)
		l1, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return port, nil
	}
	return 0, errors.New("svctest: no free port pair for a cluster node")
}

// startRedisProcess runs redis-server in the foreground on port with its
// files in dir and waits until it answers PING. The returned channel is
// closed when the process has exited.
func startRedisProcess(bin, dir string, port int, extra []string) (*exec.Cmd, chan struct{}, error) {
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}, extra...)
	return runUntilPing(exec.Command(bin, args...), dir, filepath.Join(dir, "redis.log"), port)
}

// runUntilPing starts cmd in dir and waits until the server it runs
// answers PING on port; logfile is where it logs, quoted when it exits.
// The returned channel is closed when the process has exited.
func runUntilPing(cmd *exec.Cmd, dir, logfile string, port int) (*exec.Cmd, chan struct{}, error) {
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			log, _ := os.ReadFile(logfile)
			return nil, nil, fmt.Errorf("redis-server on %s exited: %s", addr, tail(log))
		default:
		}
		if v, err := RedisDo(addr, time.Second, "PING"); err == nil && v == "PONG" {
			return cmd, done, nil
		}
		if time.Now().After(deadline) {
			stopProcess(cmd, done)
			return nil, nil, fmt.Errorf("redis-server on %s did not answer PING within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopProcess sends SIGTERM to the process (by PID), waits up to 5 s, then
// SIGKILLs it, and waits for it to exit.
func stopProcess(cmd *exec.Cmd, done chan struct{}) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = cmd.Process.Kill()
	<-done
}

func waitClusterOK(addrs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := "cluster_known_nodes:" + strconv.Itoa(len(addrs))
	for {
		var notReady string
		for _, a := range addrs {
			v, err := RedisDo(a, time.Second, "CLUSTER", "INFO")
			info, _ := v.(string)
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) ||
				!strings.Contains(info, "cluster_slots_ok:16384") {
				notReady = fmt.Sprintf("%s: %v %q", a, err, info)
				break
			}
		}
		if notReady == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", timeout, notReady)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
