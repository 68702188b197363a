package svctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PostgresServer is a private PostgreSQL server that a test starts, stops
// and restarts at will, to see what a client does while its database is
// down. Create it with [StartPostgres].
type PostgresServer struct {
	t       testing.TB
	bin     string // directory holding initdb, pg_ctl and postgres
	dir     string // temporary directory: data, socket and log
	port    int
	mu      sync.Mutex
	running bool
}

// StartPostgres initialises a fresh cluster in a temporary directory with
// initdb (trust authentication, user postgres), starts it with pg_ctl on a
// free loopback port and registers its shutdown and removal with t.Cleanup.
// The binaries come from PATH (pg_ctl) or /usr/lib/postgresql/*/bin; when
// there are none, the test is skipped (or fails, see [Unavailable]). Run as
// root, the server runs as the "postgres" system user.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin, err := findPostgresBin()
	if err != nil {
		Unavailable(t, "no PostgreSQL server binaries to start a private server: %v", err)
	}
	dir, err := os.MkdirTemp("", "idemkit-pg-")
	if err != nil {
		t.Fatalf("svctest: %v", err)
	}
	s := &PostgresServer{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		s.mu.Lock()
		running := s.running
		s.mu.Unlock()
		if running {
			_ = s.pgCtl("stop", "-m", "immediate", "-w")
		}
		_ = os.RemoveAll(dir)
	})
	if err := prepareDir(dir); err != nil {
		t.Fatalf("svctest: prepare %s: %v", dir, err)
	}
	if out, err := s.command("initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("svctest: initdb: %v\n%s", err, out)
	}
	if s.port, err = pgFreePort(); err != nil {
		t.Fatalf("svctest: %v", err)
	}
	s.Start()
	return s
}

// URL returns the server's connection URL (database postgres, user
// postgres, no password, sslmode=disable). It stays the same across
// [PostgresServer.Stop] and [PostgresServer.Start].
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Start starts the stopped server on its port and waits until it accepts
// connections. It fails the test if the server does not come up.
func (s *PostgresServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", s.port, s.dir)
	// While the server was stopped, its port was free: another test's
	// free-port probe may hold it for a moment. Try again a few times
	// when the bind is what failed.
	for attempt := 1; ; attempt++ {
		err := s.pgCtl("start", "-w", "-t", "60", "-l", s.logFile(), "-o", opts)
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(s.logTail(), "Address already in use") {
			s.t.Fatalf("svctest: pg_ctl start: %v\n%s", err, s.logTail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.running = true
}

// Stop shuts the server down the fast way (clients are disconnected, a
// checkpoint is written) and waits until it is gone.
func (s *PostgresServer) Stop() { s.stop("fast") }

// Crash stops the server the immediate way, as a crash would: no
// checkpoint, so the next start recovers from the write-ahead log.
func (s *PostgresServer) Crash() { s.stop("immediate") }

func (s *PostgresServer) stop(mode string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	if err := s.pgCtl("stop", "-m", mode, "-w", "-t", "60"); err != nil {
		s.t.Fatalf("svctest: pg_ctl stop: %v\n%s", err, s.logTail())
	}
	s.running = false
}

func (s *PostgresServer) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *PostgresServer) logFile() string { return filepath.Join(s.dir, "postgres.log") }

func (s *PostgresServer) pgCtl(args ...string) error {
	args = append([]string{"-D", s.dataDir()}, args...)
	out, err := s.command("pg_ctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func (s *PostgresServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	runAsPostgres(cmd)
	return cmd
}

func (s *PostgresServer) logTail() string {
	b, _ := os.ReadFile(s.logFile())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// findPostgresBin returns the directory of pg_ctl: the one on PATH (symlinks
// resolved, so initdb and postgres sit next to it), else the newest
// /usr/lib/postgresql/<version>/bin.
func findPostgresBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("pg_ctl and initdb found neither on PATH nor in /usr/lib/postgresql/*/bin")
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(strings.TrimSuffix(filepath.Base(filepath.Dir(binDir)), "/"), 64)
	return v
}

func pgFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
