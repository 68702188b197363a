// Command report turns the outputs of idemkit's benchmark runs into
// docs/benchmarks.md and the store throughput chart. It runs nothing: it
// reads `go test -bench` output files (one file per round, or -count N
// rounds in one file) and the JSON lines of cmd/loadrun, takes medians
// over the rounds, and writes one table per area, every ratio to its
// baseline and the budget of issue 7, each line MET or NOT MET.
//
//	go run ./cmd/report -o ../docs/benchmarks.md -svg ../docs/benchmarks-throughput.svg \
//		-load out/load.jsonl out/round-*.txt
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("report: ")
	out := flag.String("o", "docs/benchmarks.md", "markdown report to write")
	svg := flag.String("svg", "docs/benchmarks-throughput.svg", "throughput chart to write")
	load := flag.String("load", "", "JSON lines of cmd/loadrun (optional)")
	how := flag.String("how", "make bench", "the command that produced the inputs, for the header")
	flag.Parse()
	if flag.NArg() == 0 {
		log.Fatal("usage: report [flags] bench-output-file...")
	}
	d := newData()
	for _, f := range flag.Args() {
		if err := d.read(f); err != nil {
			log.Fatal(err)
		}
	}
	var loads []loadResult
	if *load != "" {
		var err error
		if loads, err = readLoad(*load); err != nil {
			log.Fatal(err)
		}
	}
	var md bytes.Buffer
	svgName := filepath.Base(*svg)
	writeReport(&md, d, loads, *how, svgName)
	if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	var chart bytes.Buffer
	writeChart(&chart, d)
	if err := os.WriteFile(*svg, chart.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s and %s from %d file(s), %d rounds", *out, *svg, flag.NArg(), d.rounds)
}

// data holds every measurement: name (without the GOMAXPROCS suffix) →
// unit → values in round order (the k-th occurrence of a name is round k).
type data struct {
	vals   map[string]map[string][]float64
	config map[string]string
	rounds int
}

func newData() *data {
	return &data{vals: map[string]map[string][]float64{}, config: map[string]string{}}
}

func (d *data) read(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r := benchfmt.NewReader(f, file)
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		for _, k := range []string{"cpu", "goos", "goarch", "pkg"} {
			if v := res.GetConfig(k); v != "" {
				d.config[k] = v
			}
		}
		base, parts := res.Name.Parts() // benchfmt drops the "Benchmark" prefix
		name := "Benchmark" + string(base)
		for _, p := range parts {
			if p[0] == '/' {
				name += string(p)
			}
		}
		m := d.vals[name]
		if m == nil {
			m = map[string][]float64{}
			d.vals[name] = m
		}
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if unit == "sec/op" {
				unit, val = "ns/op", val*1e9
			}
			m[unit] = append(m[unit], val)
			d.rounds = max(d.rounds, len(m[unit]))
		}
	}
	return r.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// med is the median of name's unit over the rounds (NaN when absent).
func (d *data) med(name, unit string) float64 { return median(d.vals[name][unit]) }

// spread is the largest distance of a round from the median, relative.
func (d *data) spread(name, unit string) float64 {
	v := d.vals[name][unit]
	m := median(v)
	var s float64
	for _, x := range v {
		s = max(s, math.Abs(x-m))
	}
	return s / m
}

// span is the lowest and the highest of name's unit over the rounds.
func (d *data) span(name, unit string) (lo, hi float64) {
	v := d.vals[name][unit]
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(v), slices.Max(v)
}

// fSpan shows a ratio's rounds: "rounds 0.98–1.03×".
func fSpan(lo, hi float64) string {
	if math.IsNaN(lo) {
		return ""
	}
	return fmt.Sprintf("rounds %.2f–%.2f×", lo, hi)
}

// ratio is the median over the rounds of a/b measured in the same round:
// rounds are interleaved, so a noisy round slows both alike.
func (d *data) ratio(a, b, unit string) float64 {
	va, vb := d.vals[a][unit], d.vals[b][unit]
	n := min(len(va), len(vb))
	if n == 0 {
		return math.NaN()
	}
	r := make([]float64, n)
	for i := range n {
		r[i] = va[i] / vb[i]
	}
	return median(r)
}

// diff is the median over the rounds of (a1-b1)/(a2-b2), same round.
func (d *data) diffRatio(a1, b1, a2, b2, unit string) float64 {
	v := [4][]float64{d.vals[a1][unit], d.vals[b1][unit], d.vals[a2][unit], d.vals[b2][unit]}
	n := min(len(v[0]), len(v[1]), len(v[2]), len(v[3]))
	if n == 0 {
		return math.NaN()
	}
	r := make([]float64, n)
	for i := range n {
		r[i] = (v[0][i] - v[1][i]) / (v[2][i] - v[3][i])
	}
	return median(r)
}

type loadResult struct {
	Adapter    string  `json:"adapter"`
	Store      string  `json:"store"`
	Mode       string  `json:"mode"`
	Rate       int     `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Requests   uint64  `json:"requests"`
	Success    float64 `json:"success"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	Throughput float64 `json:"throughput"`
	Errors     int     `json:"errors"`
}

func readLoad(file string) ([]loadResult, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []loadResult
	dec := json.NewDecoder(f)
	for {
		var r loadResult
		if err := dec.Decode(&r); err == io.EOF {
			return rs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		rs = append(rs, r)
	}
}

// Formatting.

func fNs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case math.Abs(v) >= 1e3:
		return fmt.Sprintf("%.2f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

func fOps(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 1e5:
		return fmt.Sprintf("%.0f k/s", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k/s", v/1e3)
	}
	return fmt.Sprintf("%.0f /s", v)
}

func fNum(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// fJudged shows a ratio judged against line: with a third decimal when two
// would print it equal to the line ("0.90×" for 0.897 against 0.9), so
// that the figure never seems to contradict its status.
func fJudged(v, line float64) string {
	if !math.IsNaN(v) && v != line && fmt.Sprintf("%.2f", v) == fmt.Sprintf("%.2f", line) {
		return fmt.Sprintf("%.3f×", v)
	}
	return fRatio(v)
}

func fPct(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return fmt.Sprintf(" ±%.0f%%", 100*v)
}

// Machine.

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// The report.

// floorsFor returns the floors of im's op.
func floorsFor(op, im string) []struct{ name, what string } {
	if op == "Replay" {
		return replayFloorOf[im]
	}
	return floorOf[im]
}

var (
	frameworks = []string{"nethttp", "chi", "gin", "echo", "fiber"}
	cases      = []string{"Static", "Bare", "NewKey", "Replay", "InFlight409", "Mismatch422"}
	concs      = []int{1, 8, 32, 128}
	impls      = []string{"memstore", "redisstore", "raw-redis", "pgxstore", "raw-pgx", "tieredstore"}
	// baseline of each store per operation (the raw driver, or for the
	// tiered store the single store it is held to).
	baseline = map[string]map[string]string{
		"NewKey": {"redisstore": "raw-redis", "pgxstore": "raw-pgx", "tieredstore": "pgxstore"},
		"Replay": {"redisstore": "raw-redis", "pgxstore": "raw-pgx", "tieredstore": "redisstore"},
	}
	// floorOf names the floors (bench/floors_test.go) of each store's new
	// key, with what they leave out or add. The first is the floor of the
	// contract, which marks a line "floor below the line"; a second one
	// shows what giving up part of the contract would buy.
	floorOf = map[string][]struct{ name, what string }{
		"redisstore": {{"floor-redis", "claim script GET + SET, complete script GET + token compare + SET, pre-encoded response"}},
		"pgxstore": {
			{"floor-pgx-1rt", "the least claim statement that decides every claim in one round trip (as pgxstore does): read the live row, insert when there is none, a no-op DO UPDATE that returns a concurrently inserted row; no takeover, no fencing or mismatch columns; + UPDATE"},
			{"floor-pgx", "insert-first claim-or-return CTE + UPDATE: no takeover of expired rows and no decision on a concurrent insert in the same statement, so not a floor of the contract; it shows what a second round trip on races would buy"},
		},
		"tieredstore": {{"floor-tiered", "one Redis GET that misses, then pgxstore's claim and complete"}},
	}
	// replayFloorOf names the floors of a replay.
	replayFloorOf = map[string][]struct{ name, what string }{
		"redisstore": {{"floor-redis", "on a replay, its claim script on a completed key (the claim's arguments travel with it), the record returned undecoded"}},
	}
)

func adapter(fw, c string) string { return "BenchmarkAdapter/" + fw + "/" + c }

// floorB names fw's two BenchmarkAdapterFloor pairs: the floor against the
// peer, and our adapter against the floor.
func floorB(fw string) (vsPeer, vsFloor string) {
	return "BenchmarkAdapterFloor/" + fw + "-floor-vs-peer", "BenchmarkAdapterFloor/" + fw + "-vs-floor"
}

func storeB(op string, c int, im string) string {
	return fmt.Sprintf("BenchmarkStore/%s/c=%d/%s", op, c, im)
}
func pairB(op string, c int, im, base string) string {
	return fmt.Sprintf("BenchmarkStorePair/%s/c=%d/%s-vs-%s", op, c, im, base)
}

// budget is one line of issue 7's budget.
type budget struct {
	area, line, measured string
	met, known           bool
	// belowFloor: a floor measured in the same run (the least any
	// implementation doing the job needs) already misses the line.
	belowFloor bool
	// split: the median misses the line but some round met it.
	split bool
}

func (b budget) status() string {
	switch {
	case !b.known:
		return "NOT MEASURED"
	case b.met:
		return "MET"
	case b.belowFloor:
		return "NOT MET: floor below the line"
	case b.split:
		return "NOT MET: met in some rounds"
	}
	return "NOT MET"
}

func writeReport(w io.Writer, d *data, loads []loadResult, how, svgName string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Benchmarks\n\n")
	p("Generated by `bench/cmd/report` from `%s` on %s. Do not edit by hand: run `make bench` again.\n\n", how, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	cpu := cpuModel()
	if cpu == "" {
		cpu = d.config["cpu"]
	}
	p("**Machine:** %d CPUs (nproc), %s, %s %s/%s; load average at the end of the run %s. **Rounds:** %d (medians; ± is the largest distance of a round from the median; ratios are medians of per-round ratios, the rounds being interleaved).\n\n",
		runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH, loadAvg(), d.rounds)
	p("Absolute figures depend on the machine and its neighbours; the ratios to a baseline measured in the same run are what carries over. ")
	p("Sources: `bench/adapters_test.go`, `bench/stores_test.go`, `bench/cmd/loadrun`.\n\n")

	budgets := adapterBudgets(d)
	budgets = append(budgets, storeBudgets(d)...)
	p("## Budget (issue 7)\n\n")
	met, known, floored, split := 0, 0, 0, 0
	for _, b := range budgets {
		if b.known {
			known++
			switch {
			case b.met:
				met++
			case b.belowFloor:
				floored++
			case b.split:
				split++
			}
		}
	}
	p("%d of %d budget lines met (%d measured); on %d of the others a floor measured in the same run misses the line too. ", met, len(budgets), known, floored)
	p("Of the rest, %d met the line in some rounds but not in the median (the rounds' range is shown beside each paired ratio).\n\n", split)
	p("| area | budget line | measured | status |\n|---|---|---|---|\n")
	for _, b := range budgets {
		p("| %s | %s | %s | **%s** |\n", b.area, b.line, b.measured, b.status())
	}
	p("\n")

	// Adapters.
	p("## Adapters (memstore, in-process)\n\n")
	p("One JSON handler (`{\"amount\":1200,\"currency\":\"EUR\"}` in, a small receipt out) per framework: `Static` is a handler writing a constant without reading the body (the framework's floor), `Bare` the JSON handler without middleware, then the idemkit adapter over memstore for a new key per request, a replay, a key in flight (409) and a key reused with another body (422). The net/http frameworks run through `ServeHTTP` with an `httptest.ResponseRecorder` per request; fiber through `app.Handler()` on a reused `fasthttp.RequestCtx`. `fiber-peer` is fiber v2's built-in `middleware/idempotency` (memory storage) on the same fiber handler.\n\n")
	p("| framework | case | time/op | B/op | allocs/op | time vs Bare |\n|---|---|---:|---:|---:|---:|\n")
	for _, fw := range append(slices.Clone(frameworks), "fiber-peer") {
		for _, c := range cases {
			n := adapter(fw, c)
			if _, ok := d.vals[n]; !ok {
				continue
			}
			bare := adapter(fw, "Bare")
			if fw == "fiber-peer" {
				bare = adapter("fiber", "Bare")
			}
			p("| %s | %s | %s%s | %s | %s | %s |\n", fw, c, fNs(d.med(n, "ns/op")), fPct(d.spread(n, "ns/op")),
				fNum(d.med(n, "B/op")), fNum(d.med(n, "allocs/op")), fRatio(d.ratio(n, bare, "ns/op")))
		}
	}
	p("\nOverhead of the middleware, same run: a new key costs `NewKey − Bare` (the handler runs in both), a replay `Replay − Static` (the handler does not run); the peer's are measured against fiber's `Bare` and `Static`.\n\n")
	p("| framework | new-key overhead | allocs | B | vs peer | replay cost | allocs | B | vs peer |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, fw := range append(slices.Clone(frameworks), "fiber-peer") {
		bf := fw
		if fw == "fiber-peer" {
			bf = "fiber"
		}
		nk, bare, rp, st := adapter(fw, "NewKey"), adapter(bf, "Bare"), adapter(fw, "Replay"), adapter(bf, "Static")
		pnk, pbare, prp, pst := adapter("fiber-peer", "NewKey"), adapter("fiber", "Bare"), adapter("fiber-peer", "Replay"), adapter("fiber", "Static")
		sub := func(a, b, u string) float64 { return d.med(a, u) - d.med(b, u) }
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", fw,
			fNs(sub(nk, bare, "ns/op")), fNum(sub(nk, bare, "allocs/op")), fNum(sub(nk, bare, "B/op")),
			fRatio(d.diffRatio(nk, bare, pnk, pbare, "ns/op")),
			fNs(sub(rp, st, "ns/op")), fNum(sub(rp, st, "allocs/op")), fNum(sub(rp, st, "B/op")),
			fRatio(d.diffRatio(rp, st, prp, pst, "ns/op")))
	}
	p("\n")
	p("Paired (`BenchmarkAdapterPair`, which the budget lines are judged by): ours and the peer's in alternating 2–4 ms slices of one benchmark — our NewKey, the framework's Bare, our Replay, its Static, the peer's NewKey, fiber's Bare, the peer's Replay, fiber's Static — both stores empty at the start; per cycle our overhead and the peer's, and the ratio of their medians over cycles; then the median over rounds. The separate runs above are seconds apart, and on a shared host their differences of differences drift by tens of per cent.\n\n")
	p("| framework | new-key overhead vs peer | rounds: min–max | replay cost vs peer | rounds: min–max |\n|---|---:|---:|---:|---:|\n")
	pairRow := func(what, name, nunit, runit string) {
		nv, rv := d.vals[name][nunit], d.vals[name][runit]
		if len(nv) == 0 || len(rv) == 0 {
			return
		}
		p("| %s | %s | %s–%s | %s | %s–%s |\n", what, fRatio(median(nv)), fRatio(slices.Min(nv)), fRatio(slices.Max(nv)),
			fRatio(median(rv)), fRatio(slices.Min(rv)), fRatio(slices.Max(rv)))
	}
	for _, fw := range frameworks {
		pairRow(fw, "BenchmarkAdapterPair/"+fw, "newkey-x-peer", "replay-x-peer")
		vsPeer, vsFloor := floorB(fw)
		pairRow(fw+" floor vs peer", vsPeer, "newkey-x", "replay-x")
		pairRow(fw+" vs floor", vsFloor, "newkey-x", "replay-x")
	}
	p("\n")
	p("`BenchmarkAdapterFloor` measures the same way a floor for each framework's lines, `bench/httpfloor_test.go`. On nethttp, chi, gin and echo it is the cheapest middleware that does what the contract asks of an in-memory one, in the framework's own middleware idiom: the key's grammar, the body read whole, SHA-256 of method, path, query and body and of the key, one map behind a read-write lock, 422 on another fingerprint, a pending record with a 128-bit fencing token and a 30 s lease renewed by a timer (409 while it holds, with Retry-After from the lease; both refusals prebuilt docs/contract.md C-ERR-1 problem responses, the engine's bytes), the response buffered and stored (without hop-by-hop fields and Set-Cookie) before it is sent, the replay marker. On fiber it is the built-in middleware itself behind the request-side part of that work (SHA-256 of the body and of the key, a 128-bit token). `floor vs peer` is the floor on the framework against the peer on fiber, each over its own framework's Bare and Static as the budget lines are; `vs floor` is our adapter against the floor on the same framework.\n\n")
	p("`BenchmarkAdapterRefusals` judges the 409 and 422 lines the same way, on one app per framework: a replay, a 409 (the key's first request held in the handler) and a 422 (the completed key with another body) in alternating 2–4 ms slices; per cycle the time of a 409 and of a 422 over the replay's, the median over cycles, then over rounds. `floor` rows measure the same on the floor of that framework, which writes its refusals and replays with the same function as our adapter (`WriteResponse` of internal/httpx, the net/http plumbing our adapters share); fiber has none (its floor is the peer, which has no contract refusals).\n\n")
	p("| framework | 409 vs replay | rounds: min–max | 422 vs replay | rounds: min–max |\n|---|---:|---:|---:|---:|\n")
	for _, fw := range frameworks {
		pairRow(fw, "BenchmarkAdapterRefusals/"+fw, "409-x-replay", "422-x-replay")
		pairRow(fw+" floor", "BenchmarkAdapterRefusals/"+fw+"-floor", "409-x-replay", "422-x-replay")
	}
	p("\n")

	// Stores.
	p("## Stores\n\n")
	p("Throughput of `Claim` + `Complete` on a fresh key (NewKey) and of `Claim` on a completed key, response decoded (Replay), 1 KiB response body, from an explicit pool of c goroutines sharing the operations. Baselines in the same run: `raw-redis` is go-redis EVALSHA of trivial scripts moving the same bytes in the same round trips (SET of fingerprint and token, SET of the encoded response; GET of it), `raw-pgx` raw pgx statements (`INSERT … ON CONFLICT DO NOTHING` claim + `UPDATE` complete; a one-statement claim-or-return CTE replay, as issue 7 defines it — see docs/performance.md for the bare-`SELECT` floor). The ratio is to the store's baseline: the raw driver for redisstore and pgxstore; for tieredstore, pgxstore on a new key and redisstore on a replay (its budget).\n\n")
	p("![store throughput against concurrency](%s)\n\n", svgName)
	for _, op := range []string{"NewKey", "Replay"} {
		p("### %s\n\n", op)
		p("| store |")
		for _, c := range concs {
			p(" c=%d | ratio |", c)
		}
		p(" pool |\n|---|")
		for range concs {
			p("---:|---:|")
		}
		p("---:|\n")
		for _, im := range impls {
			if _, ok := d.vals[storeB(op, 1, im)]; !ok {
				continue
			}
			base := baseline[op][im]
			p("| %s |", im)
			for _, c := range concs {
				n := storeB(op, c, im)
				r := "–"
				if base != "" {
					r = fRatio(d.ratio(n, storeB(op, c, base), "ops/s")) + " of " + base
				}
				p(" %s%s | %s |", fOps(d.med(n, "ops/s")), fPct(d.spread(n, "ops/s")), r)
			}
			pool := d.med(storeB(op, 128, im), "pool")
			ps := fNum(pool)
			if pool == 0 {
				ps = "–"
			}
			p(" %s |\n", ps)
		}
		p("\n")
	}
	p("### Paired: each store against its baseline\n\n")
	p("`BenchmarkStorePair` runs the store and its baseline in alternating slices of 20–40 ms (random length) from the same c goroutines; the ratio is the median over adjacent slices of store throughput to baseline throughput, then the median over rounds. Adjacent slices meet the same machine within a fraction of a second, so this is the ratio the budget is judged by; the tables above run each implementation on its own and drift with the host's load.\n\n")
	p("On a new key (and a Redis replay) it also runs each floor against the baseline and the store against the floor. A floor (`bench/floors_test.go`) is raw driver calls doing the least that the job needs, in the baselines' shape:\n\n")
	for _, im := range []string{"redisstore", "pgxstore", "tieredstore"} {
		for _, f := range append(floorOf[im], replayFloorOf[im]...) {
			p("- `%s`: %s.\n", f.name, f.what)
		}
	}
	p("\n")
	p("| operation | c | store | baseline | store ops/s | baseline ops/s | ratio (rounds: min–max) |\n|---|---:|---|---|---:|---:|---:|\n")
	for _, op := range []string{"NewKey", "Replay"} {
		for _, c := range []int{1, 32} {
			for _, im := range []string{"redisstore", "pgxstore", "tieredstore"} {
				base := baseline[op][im]
				pn := pairB(op, c, im, base)
				v := d.vals[pn]["x-baseline"]
				if len(v) == 0 {
					continue
				}
				p("| %s | %d | %s | %s | %s | %s | %s (%s–%s) |\n", op, c, im, base, fOps(d.med(pn, "store-ops/s")), fOps(d.med(pn, "base-ops/s")),
					fRatio(median(v)), fRatio(slices.Min(v)), fRatio(slices.Max(v)))
				for _, f := range floorsFor(op, im) {
					for _, pr := range [][2]string{{f.name, base}, {im, f.name}} {
						pn := pairB(op, c, pr[0], pr[1])
						if v := d.vals[pn]["x-baseline"]; len(v) > 0 {
							p("| %s | %d | %s | %s | %s | %s | %s (%s–%s) |\n", op, c, pr[0], pr[1], fOps(d.med(pn, "store-ops/s")), fOps(d.med(pn, "base-ops/s")),
								fRatio(median(v)), fRatio(slices.Min(v)), fRatio(slices.Max(v)))
						}
					}
				}
			}
		}
	}
	p("\n")
	p("Round trips of one operation (counted by a go-redis hook and a pgx tracer, at c=1):\n\n")
	p("| store | NewKey: Redis | NewKey: Postgres | Replay: Redis | Replay: Postgres |\n|---|---:|---:|---:|---:|\n")
	for _, im := range impls {
		a, b := storeB("NewKey", 1, im), storeB("Replay", 1, im)
		if _, ok := d.vals[a]; !ok {
			continue
		}
		p("| %s | %s | %s | %s | %s |\n", im, fNum(d.med(a, "redis-rt/op")), fNum(d.med(a, "pg-rt/op")), fNum(d.med(b, "redis-rt/op")), fNum(d.med(b, "pg-rt/op")))
	}
	p("\n")
	if _, ok := d.vals["BenchmarkRedisRecordMemory/redisstore"]; ok {
		p("Redis memory per completed record (`MEMORY USAGE key SAMPLES 0`, 1 KiB body):\n\n| layout | bytes/record | over the body |\n|---|---:|---:|\n")
		for _, im := range []string{"redisstore", "raw-redis"} {
			n := "BenchmarkRedisRecordMemory/" + im
			p("| %s | %s | %s |\n", im, fNum(d.med(n, "bytes/record")), fNum(d.med(n, "bytes/record")-d.med(n, "body-bytes")))
		}
		p("\n`raw-redis` is the encoded response alone in one string key: the floor of any layout holding the same bytes.\n\n")
	}

	// Load.
	if len(loads) > 0 {
		p("## Load over loopback (vegeta)\n\n")
		p("`bench/cmd/loadrun`: chi on 127.0.0.1 with the JSON handler mounted bare and behind idemchi on the same server, attacked by vegeta (as a library, keep-alive) at a fixed rate, in turn: `bare` without the middleware, `newkey` with a fresh key per request, `replay` over 64 completed keys. Client and server share the machine's CPUs.\n\n")
		p("| adapter/store | mode | rate | requests | success | p50 | p99 | max | throughput |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range loads {
			p("| %s/%s | %s | %d/s × %.0fs | %d | %.1f%% | %.3f ms | %.3f ms | %.1f ms | %.0f/s |\n",
				l.Adapter, l.Store, l.Mode, l.Rate, l.Seconds, l.Requests, 100*l.Success, l.P50, l.P99, l.Max, l.Throughput)
		}
		p("\n")
	}
}

func adapterBudgets(d *data) []budget {
	var bs []budget
	pnk, pbare, prp, pst := adapter("fiber-peer", "NewKey"), adapter("fiber", "Bare"), adapter("fiber-peer", "Replay"), adapter("fiber", "Static")
	for _, fw := range frameworks {
		nk, bare, rp, st := adapter(fw, "NewKey"), adapter(fw, "Bare"), adapter(fw, "Replay"), adapter(fw, "Static")
		area := "memstore · " + fw
		// Judged by the paired benchmark (short alternating slices of ours
		// and the peer's); the separate runs' figures are shown beside it.
		pn := "BenchmarkAdapterPair/" + fw
		// The floor on the same framework (BenchmarkAdapterFloor), when
		// the inputs have it.
		floor := func(metric string) (string, bool) {
			vsPeer, vsFloor := floorB(fw)
			f := d.med(vsPeer, metric)
			if math.IsNaN(f) {
				return "", false
			}
			return fmt.Sprintf("; floor = %s of the peer, %s = %s of the floor", fJudged(f, 1), fw, fRatio(d.med(vsFloor, metric))), f > 1
		}
		r := d.med(pn, "newkey-x-peer")
		lo, hi := d.span(pn, "newkey-x-peer")
		sep := d.diffRatio(nk, bare, pnk, pbare, "ns/op")
		ft, below := floor("newkey-x")
		bs = append(bs, budget{area, "new-key overhead ≤ the fiber peer's",
			fmt.Sprintf("paired = %s, %s (separate runs: %s vs %s = %s)%s", fJudged(r, 1), fSpan(lo, hi), fNs(d.med(nk, "ns/op")-d.med(bare, "ns/op")), fNs(d.med(pnk, "ns/op")-d.med(pbare, "ns/op")), fRatio(sep), ft),
			r <= 1, !math.IsNaN(r), below, r > 1 && lo <= 1})
		r = d.med(pn, "replay-x-peer")
		lo, hi = d.span(pn, "replay-x-peer")
		sep = d.diffRatio(rp, st, prp, pst, "ns/op")
		allocs := d.med(rp, "allocs/op") - d.med(st, "allocs/op")
		ft, below = floor("replay-x")
		bs = append(bs, budget{area, "replay cost ≤ the peer's, single-digit allocations",
			fmt.Sprintf("paired = %s, %s; %s allocs (separate runs: %s vs %s = %s)%s", fJudged(r, 1), fSpan(lo, hi), fNum(allocs), fNs(d.med(rp, "ns/op")-d.med(st, "ns/op")), fNs(d.med(prp, "ns/op")-d.med(pst, "ns/op")), fRatio(sep), ft),
			r <= 1 && allocs < 10, !math.IsNaN(r), below, r > 1 && lo <= 1 && allocs < 10})
		// Judged by BenchmarkAdapterRefusals (alternating slices of the
		// three on one app); the separate runs' figures are shown beside.
		for _, c := range []string{"InFlight409", "Mismatch422"} {
			code := c[len(c)-3:]
			r := d.med("BenchmarkAdapterRefusals/"+fw, code+"-x-replay")
			lo, hi := d.span("BenchmarkAdapterRefusals/"+fw, code+"-x-replay")
			sep := d.ratio(adapter(fw, c), rp, "ns/op")
			// The floor's own refusal over its own replay, where the
			// framework has a floor of ours (not fiber).
			ft, below := "", false
			if f := d.med("BenchmarkAdapterRefusals/"+fw+"-floor", code+"-x-replay"); !math.IsNaN(f) {
				ft, below = "; floor = "+fJudged(f, 1), f >= 1
			}
			bs = append(bs, budget{area, code + " cheaper than a replay",
				fmt.Sprintf("paired = %s, %s%s (separate runs: %s vs %s = %s)", fJudged(r, 1), fSpan(lo, hi), ft, fNs(d.med(adapter(fw, c), "ns/op")), fNs(d.med(rp, "ns/op")), fRatio(sep)),
				r < 1, !math.IsNaN(r), below, r >= 1 && lo < 1})
		}
	}
	return bs
}

func storeBudgets(d *data) []budget {
	var bs []budget
	rt := func(area, op, im, unit string, want float64, what string) {
		v := d.med(storeB(op, 1, im), unit)
		bs = append(bs, budget{area, fmt.Sprintf("%s = %s", what, fNum(want)), fNum(v), v == want, !math.IsNaN(v), false, false})
	}
	// A throughput line is judged by the paired benchmark (alternating
	// slices of the store and its baseline), the separate runs' ratio
	// being shown beside it.
	thr := func(area, op, im, base string, c int, floor float64, line string) {
		pn := pairB(op, c, im, base)
		r := d.med(pn, "x-baseline")
		lo, hi := d.span(pn, "x-baseline")
		sep := d.ratio(storeB(op, c, im), storeB(op, c, base), "ops/s")
		m := fmt.Sprintf("%s vs %s, paired = %s, %s (separate runs: %s)", fOps(d.med(pn, "store-ops/s")), fOps(d.med(pn, "base-ops/s")), fJudged(r, floor), fSpan(lo, hi), fRatio(sep))
		below := false
		for i, f := range floorsFor(op, im) {
			fr, of := d.med(pairB(op, c, f.name, base), "x-baseline"), d.med(pairB(op, c, im, f.name), "x-baseline")
			if !math.IsNaN(fr) {
				m += fmt.Sprintf("; %s = %s of %s, %s = %s of %s", f.name, fJudged(fr, floor), base, im, fRatio(of), f.name)
				if i == 0 { // the contract's floor
					below = fr < floor
				}
			}
		}
		bs = append(bs, budget{area, fmt.Sprintf(line, c), m, r >= floor, !math.IsNaN(r), below, r < floor && hi >= floor})
	}
	rt("redisstore", "NewKey", "redisstore", "redis-rt/op", 2, "new key: Redis round trips")
	rt("redisstore", "Replay", "redisstore", "redis-rt/op", 1, "replay: Redis round trips")
	for _, op := range []string{"NewKey", "Replay"} {
		for _, c := range []int{1, 32} {
			thr("redisstore", op, "redisstore", "raw-redis", c, 0.9, op+" ≥ 90 %% of raw EVALSHA at c=%d")
		}
	}
	n := "BenchmarkRedisRecordMemory/redisstore"
	v, body := d.med(n, "bytes/record"), d.med(n, "body-bytes")
	floor := d.med("BenchmarkRedisRecordMemory/raw-redis", "bytes/record")
	bs = append(bs, budget{"redisstore", "bytes per record ≤ body + 200 B",
		fmt.Sprintf("%s B = body + %s B (raw string floor: body + %s B)", fNum(v), fNum(v-body), fNum(floor-body)),
		v <= body+200, !math.IsNaN(v), floor > body+200, false})
	rt("pgxstore", "NewKey", "pgxstore", "pg-rt/op", 2, "new key: statements")
	rt("pgxstore", "Replay", "pgxstore", "pg-rt/op", 1, "replay: statements")
	for _, op := range []string{"NewKey", "Replay"} {
		for _, c := range []int{1, 32} {
			thr("pgxstore", op, "pgxstore", "raw-pgx", c, 0.9, op+" ≥ 90 %% of raw pgx at c=%d")
		}
	}
	for _, c := range []int{1, 32} {
		thr("tieredstore", "Replay", "tieredstore", "redisstore", c, 0.9, "Replay within 10 %% of redisstore at c=%d")
	}
	for _, c := range []int{1, 32} {
		thr("tieredstore", "NewKey", "tieredstore", "pgxstore", c, 0.9, "NewKey within 10 %% of pgxstore at c=%d")
	}
	return bs
}

// The chart: ops/s (log scale) against concurrency, one panel per
// operation, one line per store and baseline.

var colors = map[string]string{
	"memstore": "#555555", "redisstore": "#d62728", "raw-redis": "#ff9896",
	"pgxstore": "#1f77b4", "raw-pgx": "#9ecae1", "tieredstore": "#9467bd",
}

func writeChart(w io.Writer, d *data) {
	const (
		width, height = 960, 460
		panelW        = 400
		top, plotH    = 50, 300
		left0         = 80
		gap           = 70
	)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, op := range []string{"NewKey", "Replay"} {
		for _, im := range impls {
			for _, c := range concs {
				if v := d.med(storeB(op, c, im), "ops/s"); v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	y := func(v float64) float64 { return top + plotH - (math.Log10(v)-dlo)/(dhi-dlo)*plotH }
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="16" text-anchor="middle">idemkit store throughput against concurrency (ops/s, log scale; dashed: raw driver baselines)</text>`+"\n", width/2)
	for pi, op := range []string{"NewKey", "Replay"} {
		x0 := float64(left0 + pi*(panelW+gap))
		x := func(i int) float64 { return x0 + 30 + float64(i)*(panelW-60)/float64(len(concs)-1) }
		p(`<text x="%.0f" y="%d" font-size="14" text-anchor="middle">%s</text>`+"\n", x0+panelW/2, top-8, map[string]string{"NewKey": "new key (Claim + Complete)", "Replay": "replay (Claim of a completed key)"}[op])
		p(`<rect x="%.0f" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", x0, top, panelW, plotH)
		for e := dlo; e <= dhi; e++ {
			yy := y(math.Pow(10, e))
			p(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, yy, x0+panelW, yy)
			p(`<text x="%.0f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", x0-6, yy, fOps(math.Pow(10, e)))
		}
		for i, c := range concs {
			p(`<text x="%.1f" y="%d" text-anchor="middle">c=%d</text>`+"\n", x(i), top+plotH+18, c)
		}
		for _, im := range impls {
			var pts []string
			for i, c := range concs {
				if v := d.med(storeB(op, c, im), "ops/s"); v > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				}
			}
			if len(pts) == 0 {
				continue
			}
			dash := ""
			if strings.HasPrefix(im, "raw-") {
				dash = ` stroke-dasharray="6 4"`
			}
			p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), colors[im], dash)
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				p(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], colors[im])
			}
		}
	}
	for i, im := range impls {
		lx := float64(left0 + i*140)
		ly := float64(top + plotH + 55)
		dash := ""
		if strings.HasPrefix(im, "raw-") {
			dash = ` stroke-dasharray="6 4"`
		}
		p(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+24, ly, colors[im], dash)
		p(`<text x="%.0f" y="%.0f" dominant-baseline="middle">%s</text>`+"\n", lx+30, ly, im)
	}
	p("</svg>\n")
}
