package test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// request is one request of a case: key "" sends no Idempotency-Key.
type request struct {
	key, body string
	badBody   bool // the body fails to read
	want      int
}

type errBody struct{}

func (errBody) Read([]byte) (int, error) { return 0, errors.New("test: connection reset") }

// app answers 201 with the amount, or the status in the X-Status header.
func app(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	status := http.StatusCreated
	if r.Header.Get("X-Status") == "503" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"id":"pay_1"}`)
}

const (
	post     = "http.request.method=POST,idempotency.outcome="
	claimOp  = "idempotency.store.operation=claim"
	complOp  = "idempotency.store.operation=complete"
	relOp    = "idempotency.store.operation=release"
	downType = "error.type=store-unavailable,"
	event    = "idempotency.event="
)

// TestOutcomes drives each decision through otelhttp and idemhttp over
// memstore, and checks the counters, the store-step histogram, the spans
// under the request's server span, otelhttp's request duration metric and
// that no attribute carries a key or a body.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	const k1, k2 = "key-7c1f-first", "key-52aa-second"
	const b1, b2 = `{"amount":1200,"note":"body-one"}`, `{"amount":900,"note":"body-two"}`
	longKey := strings.Repeat("longkey", 40)
	cases := []struct {
		name      string
		opts      []core.Option
		fault     func() *faultyStore // nil: none
		store     func(h *harness) core.Store
		status503 bool
		reqs      []request
		requests  map[string]int64
		events    map[string]int64
		durations map[string]int64
		children  []string // of the last request's server span
	}{
		{
			name:      "Executed",
			reqs:      []request{{key: k1, body: b1, want: 201}},
			requests:  map[string]int64{post + "executed": 1},
			durations: map[string]int64{claimOp: 1, complOp: 1},
			children:  []string{"idempotency.claim", "idempotency.handler", "idempotency.complete"},
		},
		{
			name:      "Replayed",
			reqs:      []request{{key: k1, body: b1, want: 201}, {key: k1, body: b1, want: 201}},
			requests:  map[string]int64{post + "executed": 1, post + "replayed": 1},
			durations: map[string]int64{claimOp: 2, complOp: 1},
			children:  []string{"idempotency.claim"},
		},
		{
			name:      "FingerprintMismatch",
			reqs:      []request{{key: k1, body: b1, want: 201}, {key: k1, body: b2, want: 422}},
			requests:  map[string]int64{post + "executed": 1, post + "fingerprint-mismatch": 1},
			durations: map[string]int64{claimOp: 2, complOp: 1},
			children:  []string{"idempotency.claim"},
		},
		{
			name:     "MissingKey",
			reqs:     []request{{body: b1, want: 400}},
			requests: map[string]int64{post + "missing-key": 1},
		},
		{
			name:     "InvalidKey",
			reqs:     []request{{key: longKey, body: b1, want: 400}},
			requests: map[string]int64{post + "invalid-key": 1},
		},
		{
			name:     "BodyTooLarge",
			opts:     []core.Option{core.WithMaxBodyBytes(8)},
			reqs:     []request{{key: k1, body: b1, want: 413}},
			requests: map[string]int64{post + "body-too-large": 1},
		},
		{
			name:     "InvalidBody",
			reqs:     []request{{key: k1, badBody: true, want: 400}},
			requests: map[string]int64{post + "invalid-body": 1},
		},
		{
			name:     "PassThrough",
			opts:     []core.Option{core.WithKeyRequired(false)},
			reqs:     []request{{body: b1, want: 201}},
			requests: map[string]int64{post + "pass-through": 1},
		},
		{
			name:      "Released",
			status503: true,
			reqs:      []request{{key: k1, body: b1, want: 503}},
			requests:  map[string]int64{post + "released": 1},
			durations: map[string]int64{claimOp: 1, relOp: 1},
			children:  []string{"idempotency.claim", "idempotency.handler", "idempotency.release"},
		},
		{
			name:      "StoreUnavailable",
			fault:     func() *faultyStore { return &faultyStore{claimErr: errDown} },
			reqs:      []request{{key: k1, body: b1, want: 503}},
			requests:  map[string]int64{post + "store-unavailable": 1},
			durations: map[string]int64{downType + claimOp: 1},
			children:  []string{"idempotency.claim:error=store-unavailable"},
		},
		{
			name:      "OrphanReleased",
			fault:     func() *faultyStore { return &faultyStore{claimErr: errDown, claimLands: true} },
			reqs:      []request{{key: k1, body: b1, want: 503}},
			requests:  map[string]int64{post + "store-unavailable": 1},
			events:    map[string]int64{event + "orphan-released": 1},
			durations: map[string]int64{downType + claimOp: 1},
			children:  []string{"idempotency.claim:error=store-unavailable"},
		},
		{
			name:      "FailOpen",
			opts:      []core.Option{core.WithFailOpen(true)},
			fault:     func() *faultyStore { return &faultyStore{claimErr: errDown} },
			reqs:      []request{{key: k1, body: b1, want: 201}},
			requests:  map[string]int64{post + "fail-open": 1},
			durations: map[string]int64{downType + claimOp: 1},
			children:  []string{"idempotency.claim:error=store-unavailable"},
		},
		{
			name:      "StoreFailed",
			fault:     func() *faultyStore { return &faultyStore{completeErr: core.ErrLeaseLost, completeAlways: true} },
			reqs:      []request{{key: k1, body: b1, want: 201}},
			requests:  map[string]int64{post + "store-failed": 1},
			events:    map[string]int64{event + "lease-lost": 1},
			durations: map[string]int64{claimOp: 1, "error.type=lease-lost," + complOp: 1},
			children:  []string{"idempotency.claim", "idempotency.handler", "idempotency.complete:error=lease-lost"},
		},
		{
			name:      "StoreDeferredThenStoredLate",
			opts:      []core.Option{core.WithCompleteWait(0), core.WithLease(2 * time.Second)},
			fault:     func() *faultyStore { f := &faultyStore{completeErr: errDown}; f.completeFails.Store(2); return f },
			reqs:      []request{{key: k1, body: b1, want: 503}},
			requests:  map[string]int64{post + "store-deferred": 1},
			events:    map[string]int64{event + "stored-late": 1},
			durations: map[string]int64{claimOp: 1, downType + complOp: 2, complOp: 1},
			children: []string{"idempotency.claim", "idempotency.handler",
				"idempotency.complete:error=store-unavailable", "idempotency.complete:error=store-unavailable", "idempotency.complete"},
		},
		{
			name:      "StoreDeferredThenCompletionLost",
			opts:      []core.Option{core.WithCompleteWait(0), core.WithLease(400 * time.Millisecond)},
			fault:     func() *faultyStore { return &faultyStore{completeErr: errDown, completeAlways: true} },
			reqs:      []request{{key: k1, body: b1, want: 503}},
			requests:  map[string]int64{post + "store-deferred": 1},
			events:    map[string]int64{event + "completion-lost": 1},
			durations: map[string]int64{claimOp: 1, downType + complOp: 3},
			children: []string{"idempotency.claim", "idempotency.handler",
				"idempotency.complete:error=store-unavailable", "idempotency.complete:error=store-unavailable",
				"idempotency.complete:error=store-unavailable"},
		},
		{
			name: "Evicted",
			store: func(h *harness) core.Store {
				return memstore.New(memstore.WithMaxEntries(1), memstore.WithShards(1), memstore.WithObserver(h.obs))
			},
			reqs:      []request{{key: k1, body: b1, want: 201}, {key: k2, body: b1, want: 201}},
			requests:  map[string]int64{post + "executed": 2},
			events:    map[string]int64{event + "evicted": 1},
			durations: map[string]int64{claimOp: 2, complOp: 2},
			children:  []string{"idempotency.claim", "idempotency.handler", "idempotency.complete"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			var store core.Store = memstore.New()
			if tc.store != nil {
				store = tc.store(h)
			}
			if tc.fault != nil {
				f := tc.fault()
				f.Store = store
				store = f
			}
			engine := core.New(store, append([]core.Option{core.WithObserver(h.obs)}, tc.opts...)...)
			handler := otelhttp.NewHandler(idemhttp.Middleware(engine)(http.HandlerFunc(app)), "payments",
				otelhttp.WithMeterProvider(h.mp), otelhttp.WithTracerProvider(h.tp))
			for i, rq := range tc.reqs {
				var body io.Reader = strings.NewReader(rq.body)
				if rq.badBody {
					body = errBody{}
				}
				req := httptest.NewRequest(http.MethodPost, "/payments", body)
				if rq.key != "" {
					req.Header.Set("Idempotency-Key", `"`+rq.key+`"`)
				}
				if tc.status503 {
					req.Header.Set("X-Status", "503")
				}
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				if rec.Code != rq.want {
					t.Fatalf("request %d: status %d; want %d (body %s)", i, rec.Code, rq.want, rec.Body)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := engine.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			rm := h.collect(t)
			check := func(name string, got, want map[string]int64) {
				t.Helper()
				if want == nil {
					want = map[string]int64{}
				}
				if !maps.Equal(got, want) {
					t.Errorf("%s = %s; want %s", name, mapString(got), mapString(want))
				}
			}
			check("idempotency.requests", counts(t, rm, "idempotency.requests"), tc.requests)
			check("idempotency.events", counts(t, rm, "idempotency.events"), tc.events)
			check("idempotency.store.duration", counts(t, rm, "idempotency.store.duration"), tc.durations)

			// The outcome reaches otelhttp's metrics through its labeler.
			var outcomes []string
			for k := range tc.requests {
				outcomes = append(outcomes, strings.TrimPrefix(k, post))
			}
			slices.Sort(outcomes)
			if got := attrValues(t, rm, "http.server.request.duration", "idempotency.outcome"); !slices.Equal(got, outcomes) {
				t.Errorf("http.server.request.duration carries idempotency.outcome %q; want %q", got, outcomes)
			}

			// The steps are children of the last request's server span,
			// which carries the outcome.
			servers, last := 0, -1
			ended := h.spans.Ended()
			for i, s := range ended {
				if s.SpanKind() == trace.SpanKindServer {
					servers, last = servers+1, i
				}
			}
			if servers != len(tc.reqs) {
				t.Fatalf("%d server spans; want %d", servers, len(tc.reqs))
			}
			server := ended[last]
			if got := h.children(server); !slices.Equal(got, tc.children) {
				t.Errorf("spans under the request's span = %q; want %q", got, tc.children)
			}
			// The last request's outcome: the only one, or the one that
			// followed an executed request.
			lastOutcome := ""
			for k := range tc.requests {
				if len(tc.requests) == 1 || k != post+"executed" {
					lastOutcome = strings.TrimPrefix(k, post)
				}
			}
			if got := spanAttr(server, "idempotency.outcome"); got != lastOutcome {
				t.Errorf("request span's idempotency.outcome = %q; want %q", got, lastOutcome)
			}
			for _, s := range ended {
				if strings.HasPrefix(s.Name(), "idempotency.") && s.Name() != "idempotency.handler" {
					if got, want := spanAttr(s, "idempotency.store.operation"), strings.TrimPrefix(s.Name(), "idempotency."); got != want {
						t.Errorf("span %s: idempotency.store.operation = %q; want %q", s.Name(), got, want)
					}
				}
				if strings.HasPrefix(s.Name(), "idempotency.") && spanAttr(s, "idempotency.key_hash") == "" {
					t.Errorf("span %s has no idempotency.key_hash", s.Name())
				}
			}

			// Nothing carries a key or a body.
			for _, a := range h.allAttributes(t) {
				for _, secret := range []string{k1, k2, longKey, "body-one", "body-two"} {
					if strings.Contains(a, secret) {
						t.Errorf("attribute %q carries %q: no key or body may be an attribute", a, secret)
					}
				}
			}
		})
	}
}
