package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
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

// binDir holds the example binaries, built once by TestMain.
var binDir string

// buildExamples builds every adapter's example service into dir.
func buildExamples(dir string, adapters []string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, a := range adapters {
		args = append(args, "./examples/"+a)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// instance is one example service process.
type instance struct {
	idx    int
	addr   string
	ledger string
	log    string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	killed bool
}

func (in *instance) url() string { return "http://" + in.addr }

// cluster is several instances of one example service sharing one store.
type cluster struct {
	t       testing.TB
	adapter string
	store   string
	env     []string
	args    []string
	dir     string
	inst    []*instance
}

// startCluster starts n instances of adapter's example over store, with
// env (the store's URLs) and extra flags, and registers their shutdown by
// PID with t.Cleanup. The first instance starts alone (it applies the
// schema), the others together.
func startCluster(t testing.TB, adapter, store string, n int, env []string, args ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, adapter: adapter, store: store, env: env, args: args, dir: t.TempDir()}
	t.Cleanup(c.stop)
	for i := 0; i < n; i++ {
		c.inst = append(c.inst, &instance{
			idx:    i,
			ledger: filepath.Join(c.dir, fmt.Sprintf("ledger-%d.txt", i)),
			log:    filepath.Join(c.dir, fmt.Sprintf("instance-%d.log", i)),
		})
	}
	if err := c.start(c.inst[0]); err != nil {
		t.Fatalf("%s/%s instance 0: %v", adapter, store, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for _, in := range c.inst[1:] {
		wg.Go(func() { errs[in.idx] = c.start(in) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s/%s instance %d: %v", adapter, store, i, err)
		}
	}
	return c
}

func (c *cluster) urls() []string {
	var u []string
	for _, in := range c.inst {
		u = append(u, in.url())
	}
	return u
}

// start runs in on a free loopback port (tried up to three times) and
// waits until its /healthz answers 200.
func (c *cluster) start(in *instance) error {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		in.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		logf, err := os.OpenFile(in.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		args := append([]string{"-addr", in.addr, "-store", c.store, "-ledger", in.ledger}, c.args...)
		cmd := exec.Command(filepath.Join(binDir, c.adapter), args...)
		cmd.Env = append(os.Environ(), c.env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return err
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(done) }()
		in.mu.Lock()
		in.cmd, in.done, in.killed = cmd, done, false
		in.mu.Unlock()
		if last = waitHealthy(in.url(), done, 30*time.Second); last == nil {
			return nil
		}
		c.signal(in, syscall.SIGKILL)
		<-done
	}
	return fmt.Errorf("did not become healthy: %v\n%s", last, tailFile(in.log, 2000))
}

func waitHealthy(base string, done chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("process exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("healthz %d", resp.StatusCode)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

func (c *cluster) signal(in *instance, sig syscall.Signal) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd != nil && in.cmd.Process != nil {
		in.cmd.Process.Signal(sig)
	}
}

// kill ends instance i with SIGKILL, as a crash would, and waits for it.
func (c *cluster) kill(i int) {
	in := c.inst[i]
	in.mu.Lock()
	in.killed = true
	done := in.done
	in.mu.Unlock()
	c.signal(in, syscall.SIGKILL)
	if done != nil {
		<-done
	}
}

// stop ends every instance: SIGTERM (a graceful shutdown, which waits for
// the engine's background storing), then SIGKILL after 15 s.
func (c *cluster) stop() {
	for _, in := range c.inst {
		c.signal(in, syscall.SIGTERM)
	}
	for _, in := range c.inst {
		in.mu.Lock()
		done := in.done
		in.mu.Unlock()
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			c.signal(in, syscall.SIGKILL)
			<-done
		}
	}
}

// events counts the observer events of the instances' logs (the
// examples log warnings and errors) by outcome.
func (c *cluster) events(outcomes ...string) map[string]int {
	n := map[string]int{}
	for _, in := range c.inst {
		f, err := os.Open(in.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			for _, o := range outcomes {
				if strings.Contains(sc.Text(), "outcome="+o+" ") {
					n[o]++
				}
			}
		}
		f.Close()
	}
	return n
}

// panics counts the lines of the instances' logs that report a panic.
func (c *cluster) panics() int {
	n := 0
	for _, in := range c.inst {
		f, err := os.Open(in.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(strings.ToLower(sc.Text()), "panic") {
				n++
			}
		}
		f.Close()
	}
	return n
}

// logLines returns the lines of the instances' logs that contain any of
// words, prefixed by the instance, up to max.
func (c *cluster) logLines(max int, words ...string) []string {
	var out []string
	for _, in := range c.inst {
		f, err := os.Open(in.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() && len(out) < max {
			for _, w := range words {
				if strings.Contains(sc.Text(), w) {
					out = append(out, fmt.Sprintf("instance %d: %s", in.idx, sc.Text()))
					break
				}
			}
		}
		f.Close()
	}
	return out
}

// ledger is what the instances' ledgers say about each payment (by amount).
type ledger struct {
	runs map[int64]int      // handler starts, all instances
	pays map[int64][]string // payment ids created, all instances
	// runsOn[i] are the amounts whose handler started on instance i.
	runsOn []map[int64]int
}

func (c *cluster) readLedger() ledger {
	l := ledger{runs: map[int64]int{}, pays: map[int64][]string{}}
	for _, in := range c.inst {
		on := map[int64]int{}
		l.runsOn = append(l.runsOn, on)
		b, err := os.ReadFile(in.ledger)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			amount, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				continue
			}
			switch {
			case f[0] == "run":
				l.runs[amount]++
				on[amount]++
			case f[0] == "pay" && len(f) >= 4:
				l.pays[amount] = append(l.pays[amount], f[3])
			}
		}
	}
	return l
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
