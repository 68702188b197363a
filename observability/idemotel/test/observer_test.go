package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/observability/idemotel"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestEveryOutcome feeds each core.Outcome value to Observe, as the
// engine and the stores do, and checks which counter it lands on and what
// the span in the context gets.
func TestEveryOutcome(t *testing.T) {
	t.Parallel()
	decisions := []core.Outcome{
		core.OutcomePassThrough, core.OutcomeMissingKey, core.OutcomeInvalidKey, core.OutcomeBodyTooLarge,
		core.OutcomeInvalidBody, core.OutcomeExecuted, core.OutcomeReleased, core.OutcomeReplayed,
		core.OutcomeMismatch, core.OutcomeInFlight, core.OutcomeStoreUnavailable, core.OutcomeFailOpen,
		core.OutcomeStoreFailed, core.OutcomeStoreDeferred, core.OutcomeMisconfigured,
	}
	events := []core.Outcome{
		core.EventLeaseRenewed, core.EventLeaseLost, core.EventRenewFailed, core.EventStoredLate,
		core.EventCompletionLost, core.EventOrphanReleased, core.EventStoreDegraded, core.EventStoreRecovered,
		core.EventEvicted, core.EventRecordDiscarded,
	}
	for _, o := range slices.Concat(decisions, events) {
		t.Run(string(o), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ctx, span := h.tp.Tracer("test").Start(context.Background(), "request")
			h.obs.Observe(ctx, core.Event{Outcome: o, KeyHash: "digest", Method: "PATCH", Path: "/orders/8841", Status: 200,
				StoreLatency: time.Millisecond, Err: errors.New("with some text")})
			span.End()
			rm := h.collect(t)
			gotReq, gotEv := counts(t, rm, idemotel.RequestsMetric), counts(t, rm, idemotel.EventsMetric)
			isEvent := slices.Contains(events, o)
			wantReq, wantEv := map[string]int64{}, map[string]int64{}
			if isEvent {
				wantEv["idempotency.event="+string(o)] = 1
			} else {
				wantReq["http.request.method=PATCH,idempotency.outcome="+string(o)] = 1
			}
			if !maps.Equal(gotReq, wantReq) || !maps.Equal(gotEv, wantEv) {
				t.Errorf("Observe(%s): requests %s, events %s; want requests %s, events %s",
					o, mapString(gotReq), mapString(gotEv), mapString(wantReq), mapString(wantEv))
			}
			req := h.spans.Ended()[0]
			if isEvent {
				if got, want := spanEvents(req), []string{"idempotency." + string(o)}; !slices.Equal(got, want) {
					t.Errorf("Observe(%s): span events %q; want %q", o, got, want)
				}
				if got := spanAttr(req, idemotel.OutcomeKey); got != "" {
					t.Errorf("Observe(%s): an event set idempotency.outcome=%q on the span; only decisions may", o, got)
				}
			} else if got := spanAttr(req, idemotel.OutcomeKey); got != string(o) {
				t.Errorf("Observe(%s): span's idempotency.outcome = %q; want %q", o, got, o)
			}
			for _, a := range h.allAttributes(t) {
				for _, leak := range []string{"/orders/8841", "digest", "some text"} {
					if strings.Contains(a, leak) {
						t.Errorf("Observe(%s): attribute %q carries %q; want no path, key digest or error text", o, a, leak)
					}
				}
			}
		})
	}
}

func TestMethodsOutsideTheStandardSetAreOther(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, m := range []string{"POST", "PROPFIND", "X-ANYTHING-" + strings.Repeat("z", 50)} {
		h.obs.Observe(context.Background(), core.Event{Outcome: core.OutcomeExecuted, Method: m})
	}
	got := counts(t, h.collect(t), idemotel.RequestsMetric)
	want := map[string]int64{
		"http.request.method=POST,idempotency.outcome=executed":   1,
		"http.request.method=_OTHER,idempotency.outcome=executed": 2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("requests = %s; want %s: a method outside the standard set is _OTHER (bounded cardinality)", mapString(got), mapString(want))
	}
}

func TestErrorType(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want string
	}{
		{core.ErrLeaseLost, "lease-lost"},
		{fmt.Errorf("%w: %w", core.ErrStoreUnavailable, core.ErrCorruptRecord), "corrupt-record"},
		{fmt.Errorf("%w: %w", core.ErrStoreUnavailable, context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("%w: %w", core.ErrStoreUnavailable, context.Canceled), "canceled"},
		{fmt.Errorf("%w: dial tcp: refused", core.ErrStoreUnavailable), "store-unavailable"},
		{errors.New("core: handler panicked: boom"), "_OTHER"},
	}
	for _, tc := range cases {
		if got := idemotel.ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}

// TestEngineDo: a call of Engine.Do traces its steps under the caller's
// span, the work's own spans nest under idempotency.handler, and the
// counter has no method.
func TestEngineDo(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	engine := core.New(memstore.New(), core.WithObserver(h.obs))
	tracer := h.tp.Tracer("test")
	work := func(ctx context.Context) ([]byte, error) {
		_, span := tracer.Start(ctx, "send-email")
		span.End()
		return []byte("sent"), nil
	}
	call := core.Call{Key: "task-31b7-unique", Name: "email.send", Input: []byte("to=someone@example.org")}
	var parents []sdktrace.ReadOnlySpan
	for i := range 2 {
		ctx, span := tracer.Start(context.Background(), fmt.Sprintf("job %d", i))
		if out, err := engine.Do(ctx, call, work); err != nil || string(out) != "sent" {
			t.Fatalf("Do %d = %q, %v; want sent, nil", i, out, err)
		}
		span.End()
	}
	for _, s := range h.spans.Ended() {
		if strings.HasPrefix(s.Name(), "job ") {
			parents = append(parents, s)
		}
	}
	if len(parents) != 2 {
		t.Fatalf("%d job spans; want 2", len(parents))
	}
	wants := [][]string{
		{"idempotency.claim", "idempotency.handler", "idempotency.complete"},
		{"idempotency.claim"},
	}
	for i, p := range parents {
		if got := h.children(p); !slices.Equal(got, wants[i]) {
			t.Errorf("call %d: spans under the caller's = %q; want %q", i, got, wants[i])
		}
		if got, want := spanAttr(p, idemotel.OutcomeKey), []string{"executed", "replayed"}[i]; got != want {
			t.Errorf("call %d: idempotency.outcome = %q; want %q", i, got, want)
		}
		if got := spanAttr(p, idemotel.CallNameKey); got != "email.send" {
			t.Errorf("call %d: idempotency.call.name = %q; want email.send", i, got)
		}
	}
	for _, s := range h.spans.Ended() {
		if s.Name() != "send-email" {
			continue
		}
		var handler sdktrace.ReadOnlySpan
		for _, p := range h.spans.Ended() {
			if p.SpanContext().SpanID() == s.Parent().SpanID() {
				handler = p
			}
		}
		if handler == nil || handler.Name() != "idempotency.handler" {
			t.Errorf("the work's span is not a child of idempotency.handler (parent %v)", handler)
		}
	}
	got := counts(t, h.collect(t), idemotel.RequestsMetric)
	if want := map[string]int64{"idempotency.outcome=executed": 1, "idempotency.outcome=replayed": 1}; !maps.Equal(got, want) {
		t.Errorf("requests = %s; want %s", mapString(got), mapString(want))
	}
	for _, a := range h.allAttributes(t) {
		if strings.Contains(a, call.Key) || strings.Contains(a, "someone@") {
			t.Errorf("attribute %q carries the key or the input", a)
		}
	}
}

// TestInFlight: a second request while the first runs gets 409, counted
// as in-flight, with the outcome on its own server span.
func TestInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	engine := core.New(memstore.New(), core.WithObserver(h.obs))
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-First") != "" {
			close(entered)
			<-release
		}
		app(w, r)
	})
	handler := otelhttp.NewHandler(idemhttp.Middleware(engine)(slow), "payments",
		otelhttp.WithMeterProvider(h.mp), otelhttp.WithTracerProvider(h.tp))
	send := func(first bool) int {
		req := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(`{"amount":1}`))
		req.Header.Set("Idempotency-Key", `"key-inflight-0a9e"`)
		if first {
			req.Header.Set("X-First", "1")
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec.Code
	}
	var wg sync.WaitGroup
	var firstCode int
	wg.Go(func() { firstCode = send(true) })
	<-entered
	if code := send(false); code != http.StatusConflict {
		t.Errorf("second request: status %d; want 409", code)
	}
	close(release)
	wg.Wait()
	if firstCode != http.StatusCreated {
		t.Errorf("first request: status %d; want 201", firstCode)
	}
	rm := h.collect(t)
	got := counts(t, rm, idemotel.RequestsMetric)
	if want := map[string]int64{post + "executed": 1, post + "in-flight": 1}; !maps.Equal(got, want) {
		t.Errorf("requests = %s; want %s", mapString(got), mapString(want))
	}
	if got, want := attrValues(t, rm, "http.server.request.duration", idemotel.OutcomeKey), []string{"executed", "in-flight"}; !slices.Equal(got, want) {
		t.Errorf("http.server.request.duration carries idempotency.outcome %q; want %q", got, want)
	}
	for _, s := range h.spans.Ended() {
		if s.SpanKind() == trace.SpanKindServer && s.Status().Code != codes.Error {
			o := spanAttr(s, idemotel.OutcomeKey)
			if o != "executed" && o != "in-flight" {
				t.Errorf("server span outcome %q; want executed or in-flight", o)
			}
		}
	}
}

// TestLeaseEvents: renewals while a slow handler runs, and failed ones,
// are counted and become events on the request's span.
func TestLeaseEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		renewErr error
		event    core.Outcome
	}{
		{"Renewed", nil, core.EventLeaseRenewed},
		{"RenewFailed", errDown, core.EventRenewFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			store := &faultyStore{Store: memstore.New(), renewErr: tc.renewErr, renewed: make(chan struct{})}
			engine := core.New(store, core.WithObserver(h.obs), core.WithLease(90*time.Millisecond))
			slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Until a renewal has run (a third of the lease), and a
				// little more for its event.
				select {
				case <-store.renewed:
				case <-time.After(10 * time.Second):
					t.Error("no renewal within 10 s under a 90 ms lease")
				}
				time.Sleep(20 * time.Millisecond)
				app(w, r)
			})
			handler := otelhttp.NewHandler(idemhttp.Middleware(engine)(slow), "payments",
				otelhttp.WithMeterProvider(h.mp), otelhttp.WithTracerProvider(h.tp))
			req := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(`{"amount":1}`))
			req.Header.Set("Idempotency-Key", `"key-lease-`+tc.name+`"`)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			_, _ = io.Copy(io.Discard, rec.Body)
			got := counts(t, h.collect(t), idemotel.EventsMetric)["idempotency.event="+string(tc.event)]
			if got < 1 {
				t.Errorf("idempotency.events{idempotency.event=%s} = %d; want at least 1", tc.event, got)
			}
			for _, s := range h.spans.Ended() {
				if s.SpanKind() == trace.SpanKindServer && !slices.Contains(spanEvents(s), "idempotency."+string(tc.event)) {
					t.Errorf("server span events %q; want idempotency.%s among them", spanEvents(s), tc.event)
				}
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, idemotel.WithoutKeyHash(), idemotel.WithoutHTTPLabeler())
	engine := core.New(memstore.New(), core.WithObserver(h.obs))
	handler := otelhttp.NewHandler(idemhttp.Middleware(engine)(http.HandlerFunc(app)), "payments",
		otelhttp.WithMeterProvider(h.mp), otelhttp.WithTracerProvider(h.tp))
	req := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(`{"amount":1}`))
	req.Header.Set("Idempotency-Key", `"key-options-1"`)
	handler.ServeHTTP(httptest.NewRecorder(), req)
	for _, s := range h.spans.Ended() {
		if v := spanAttr(s, idemotel.KeyHashKey); v != "" {
			t.Errorf("span %s has idempotency.key_hash %q with WithoutKeyHash", s.Name(), v)
		}
	}
	if got := attrValues(t, h.collect(t), "http.server.request.duration", idemotel.OutcomeKey); len(got) != 0 {
		t.Errorf("http.server.request.duration carries idempotency.outcome %q with WithoutHTTPLabeler; want none", got)
	}
}
