package reliability

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// mode is RELIABILITY: "bounded" (what CI runs: the whole suite within
// about two minutes on two cores), "full" (more keys, every adapter in
// every scenario) or unset, when every test skips: make test and go test
// across the workspace leave the suite to make reliability.
var (
	mode = os.Getenv("RELIABILITY")
	full = mode == "full"
)

// adapters are the example services the suite runs.
var adapters = []string{"chi", "gin", "fiber"}

func TestMain(m *testing.M) {
	if mode != "bounded" && mode != "full" {
		fmt.Println("reliability: RELIABILITY is neither bounded nor full; the suite skips (run make reliability)")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "idemkit-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	start := time.Now()
	if err := buildExamples(dir, adapters); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: building the examples:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Printf("reliability: built %s in %s\n", strings.Join(adapters, ", "), time.Since(start).Round(time.Millisecond))
	code := m.Run()
	printTable(os.Stdout)
	if path := os.Getenv("RELIABILITY_TABLE"); path != "" {
		if f, err := os.Create(path); err == nil {
			printTable(f)
			f.Close()
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// figures is one scenario's line of the table.
type figures struct {
	Scenario   string
	Store      string
	Adapter    string
	Instances  int
	Keys       int
	Deliveries int64 // HTTP requests sent
	Faults     int   // faults injected
	verdict
	S5xx   int64
	Errors int64 // attempts without a response
	// Deferred counts store-deferred events (503 sent, storing went on in
	// the background); Unstored counts store-failed, completion-lost and
	// lease-lost events, which the ledger then judges.
	Deferred, Unstored int
	Panics             int
	Slowest            time.Duration // the longest a key took to answer 2xx
	Elapsed            time.Duration
}

var (
	tableMu sync.Mutex
	table   []figures
)

func record(f figures) {
	tableMu.Lock()
	table = append(table, f)
	tableMu.Unlock()
}

func printTable(w io.Writer) {
	tableMu.Lock()
	defer tableMu.Unlock()
	if len(table) == 0 {
		return
	}
	mode := "bounded"
	if full {
		mode = "full"
	}
	fmt.Fprintf(w, "\nreliability (%s run, %s)\n\n", mode, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(w, "| scenario | store | adapter | instances | logical requests | deliveries | faults | double executions | re-runs after SIGKILL | re-runs expected | lost completions | stuck keys | 5xx seen | no response | store deferred | unstored events | panics | slowest key | time |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	var tot figures
	for _, f := range table {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1fs | %.1fs |\n",
			f.Scenario, f.Store, f.Adapter, f.Instances, f.Keys, f.Deliveries, f.Faults, f.Double, f.CrashReruns, f.Expected,
			f.Lost, f.Stuck, f.S5xx, f.Errors, f.Deferred, f.Unstored, f.Panics, f.Slowest.Seconds(), f.Elapsed.Seconds())
		tot.Keys += f.Keys
		tot.Deliveries += f.Deliveries
		tot.Faults += f.Faults
		tot.Double += f.Double
		tot.CrashReruns += f.CrashReruns
		tot.Expected += f.Expected
		tot.Lost += f.Lost
		tot.Stuck += f.Stuck
		tot.S5xx += f.S5xx
		tot.Errors += f.Errors
		tot.Deferred += f.Deferred
		tot.Unstored += f.Unstored
		tot.Panics += f.Panics
		tot.Elapsed += f.Elapsed
		tot.Slowest = max(tot.Slowest, f.Slowest)
	}
	fmt.Fprintf(w, "| **total** (%d scenarios) | | | | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1fs | %.1fs |\n\n",
		len(table), tot.Keys, tot.Deliveries, tot.Faults, tot.Double, tot.CrashReruns, tot.Expected, tot.Lost, tot.Stuck,
		tot.S5xx, tot.Errors, tot.Deferred, tot.Unstored, tot.Panics, tot.Slowest.Seconds(), tot.Elapsed.Seconds())
}

// keepLogs copies the instances' logs and ledgers to RELIABILITY_KEEP/<test>
// when that is set, for a scenario that failed.
func keepLogs(t *testing.T, c *cluster) {
	dir := os.Getenv("RELIABILITY_KEEP")
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	for _, in := range c.inst {
		for _, f := range []string{in.log, in.ledger} {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
			}
		}
	}
	t.Logf("logs and ledgers kept in %s", dst)
}

// scenario is one run of load against a cluster, with faults injected by
// fault (run concurrently with the load; it returns how many it injected).
type scenario struct {
	name  string
	load  load
	fault func(ctx context.Context, c *cluster) int
	// countFaults, when set, counts the faults once the load has ended
	// (those the servers inflict themselves, such as evictions).
	countFaults func() int
	crashed     []int // instances the fault kills
	// expectReruns, when set, names the documented case (an evicting
	// Redis, a failover without replica acknowledgements) under which a
	// key may run more than once: such keys, and the differing bodies
	// their re-runs answered, are counted as "re-runs expected", not
	// failed.
	expectReruns string
	// urls, when set, are where the clients send the load (fault proxies
	// in front of the instances) instead of the instances themselves.
	urls []string
	// maxSettle, when set, bounds the final check: once the load and the
	// faults have ended, every key must answer 2xx within it (no key locked
	// for a whole lease by a claim its engine gave up on).
	maxSettle time.Duration
	// maxWait, when set, bounds how long any key may take, from its first
	// delivery to the first 2xx a client saw.
	maxWait time.Duration
	// knownWait, when set, names the known bug (docs/reliability.md,
	// "Known failures") that makes keys wait past maxWait in this scenario:
	// the wait is reported, not failed.
	knownWait string
}

// run runs s against c, records its figures and fails t on a double
// execution (outside a crash), a lost completion, a stuck key or a panic.
func (s scenario) run(t *testing.T, c *cluster) figures {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	faults := 0
	var fwg sync.WaitGroup
	if s.fault != nil {
		fwg.Go(func() { faults = s.fault(ctx, c) })
	}
	urls := s.urls
	if urls == nil {
		urls = c.urls()
	}
	res := s.load.run(ctx, urls, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), start.UnixNano()))
	fwg.Wait()
	if s.countFaults != nil {
		faults += s.countFaults()
	}
	if s.maxSettle > 0 && res.settle > s.maxSettle {
		t.Errorf("%s on %s/%s: the keys took %s to answer 2xx after the load; want within %s (a key locked by a claim nobody holds?)",
			s.name, c.store, c.adapter, res.settle.Round(time.Millisecond), s.maxSettle)
	}
	var slowest *keyResult
	for _, kr := range res.keys {
		if slowest == nil || kr.wait > slowest.wait {
			slowest = kr
		}
	}
	if s.maxWait > 0 && slowest != nil && slowest.wait > s.maxWait {
		n := 0
		for _, kr := range res.keys {
			if kr.wait > s.maxWait {
				n++
			}
		}
		report := t.Errorf
		if s.knownWait != "" {
			report = t.Logf
			t.Logf("EXPECTED FAILURE (%s, see docs/reliability.md):", s.knownWait)
		}
		report("%s on %s/%s: %d keys took longer than %s to answer 2xx, the slowest %s (key %s, amount %d, %d handler starts): a key locked for a lease?",
			s.name, c.store, c.adapter, n, s.maxWait, slowest.wait.Round(time.Millisecond), slowest.key, slowest.amount, c.readLedger().runs[slowest.amount])
		keepLogs(t, c)
	}
	ev := c.events("store-deferred", "store-failed", "completion-lost", "lease-lost")
	f := figures{
		Scenario:   s.name,
		Store:      c.store,
		Adapter:    c.adapter,
		Instances:  len(c.inst),
		Keys:       len(res.keys),
		Deliveries: res.attempts.Load(),
		Faults:     faults,
		verdict:    judge(res, c.readLedger(), s.expectReruns != "", s.crashed...),
		S5xx:       res.status[5].Load(),
		Errors:     res.errors.Load(),
		Panics:     c.panics(),
		Slowest:    slowest.wait,
		Deferred:   ev["store-deferred"],
		Unstored:   ev["store-failed"] + ev["completion-lost"] + ev["lease-lost"],
		Elapsed:    time.Since(start),
	}
	record(f)
	t.Logf("%s on %s/%s: %d instances, %d logical requests, %d deliveries (%d 2xx, %d 4xx, %d 5xx, %d without response), %d faults: %d double executions, %d re-runs after SIGKILL, %d re-runs expected, %d lost completions, %d stuck, %d panics, %s (final check %s); events %v",
		s.name, c.store, c.adapter, f.Instances, f.Keys, f.Deliveries, res.status[2].Load(), res.status[4].Load(), f.S5xx, f.Errors,
		f.Faults, f.Double, f.CrashReruns, f.Expected, f.Lost, f.Stuck, f.Panics, f.Elapsed.Round(time.Millisecond), res.settle.Round(time.Millisecond), ev)
	if f.Expected > 0 {
		t.Logf("%s on %s/%s: %d keys ran more than once, as docs/contract.md documents for %s: not failed",
			s.name, c.store, c.adapter, f.Expected, s.expectReruns)
	}
	if f.Double > 0 || f.Lost > 0 || f.Stuck > 0 || f.Panics > 0 {
		keepLogs(t, c)
		for _, e := range f.examples {
			t.Errorf("%s on %s/%s: %s", s.name, c.store, c.adapter, e)
		}
		if f.Panics > 0 {
			t.Errorf("%s on %s/%s: %d log lines report a panic", s.name, c.store, c.adapter, f.Panics)
		}
		for _, line := range c.logLines(20, "level=ERROR", "level=WARN", "panic") {
			t.Log(line)
		}
	}
	return f
}
