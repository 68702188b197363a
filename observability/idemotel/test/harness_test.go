package test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/observability/idemotel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// harness is an Observer over the SDK's in-memory metric reader and span
// recorder.
type harness struct {
	obs    *idemotel.Observer
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
}

func newHarness(t *testing.T, opts ...idemotel.Option) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	h.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	h.obs = idemotel.New(append([]idemotel.Option{idemotel.WithMeterProvider(h.mp), idemotel.WithTracerProvider(h.tp)}, opts...)...)
	t.Cleanup(func() {
		_ = h.mp.Shutdown(context.Background())
		_ = h.tp.Shutdown(context.Background())
	})
	return h
}

func (h *harness) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return rm
}

// attrString renders an attribute set as "k=v,k=v", sorted by key.
func attrString(s attribute.Set) string {
	var parts []string
	for it := s.Iter(); it.Next(); {
		kv := it.Attribute()
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}

func findMetric(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// counts returns a counter's or a histogram's count by attribute set.
func counts(t *testing.T, rm metricdata.ResourceMetrics, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, ok := findMetric(rm, name)
	if !ok {
		return out
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out[attrString(dp.Attributes)] += dp.Value
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out[attrString(dp.Attributes)] += int64(dp.Count)
		}
	default:
		t.Fatalf("metric %s has data %T; want a Sum[int64] or a Histogram[float64]", name, m.Data)
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// attrValues returns the values an attribute takes on a metric's points.
func attrValues(t *testing.T, rm metricdata.ResourceMetrics, name string, key attribute.Key) []string {
	t.Helper()
	m, ok := findMetric(rm, name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	seen := map[string]bool{}
	add := func(s attribute.Set) {
		if v, ok := s.Value(key); ok {
			seen[v.Emit()] = true
		}
	}
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// allAttributes renders every attribute of every metric point, span and
// span event, for the check that no raw key or body leaks.
func (h *harness) allAttributes(t *testing.T) []string {
	t.Helper()
	var out []string
	rm := h.collect(t)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out = append(out, m.Name+": "+attrString(dp.Attributes))
				}
			case metricdata.Sum[float64]:
				for _, dp := range d.DataPoints {
					out = append(out, m.Name+": "+attrString(dp.Attributes))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					out = append(out, m.Name+": "+attrString(dp.Attributes))
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					out = append(out, m.Name+": "+attrString(dp.Attributes))
				}
			}
		}
	}
	for _, s := range h.spans.Ended() {
		out = append(out, s.Name()+": "+attrString(attribute.NewSet(s.Attributes()...))+" "+s.Status().Description)
		for _, ev := range s.Events() {
			out = append(out, s.Name()+" event "+ev.Name+": "+attrString(attribute.NewSet(ev.Attributes...)))
		}
	}
	return out
}

// children returns the names of the ended spans whose parent is parent,
// in the order they started, with ":error=<type>" on those that ended
// with status Error.
func (h *harness) children(parent sdktrace.ReadOnlySpan) []string {
	var kids []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() && s.Parent().IsValid() {
			kids = append(kids, s)
		}
	}
	sort.SliceStable(kids, func(i, j int) bool { return kids[i].StartTime().Before(kids[j].StartTime()) })
	var out []string
	for _, s := range kids {
		name := s.Name()
		if s.Status().Code.String() == "Error" {
			name += ":error=" + spanAttr(s, "error.type")
		}
		out = append(out, name)
	}
	return out
}

// spanAttr returns a span attribute's value, "" when absent.
func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	set := attribute.NewSet(s.Attributes()...)
	v, _ := set.Value(key)
	return v.Emit()
}

func spanEvents(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, ev := range s.Events() {
		out = append(out, ev.Name)
	}
	return out
}

// faultyStore wraps a store with failures chosen per call.
type faultyStore struct {
	core.Store
	claimErr       error        // returned by Claim, without claiming
	claimLands     bool         // with claimErr: the claim is made, then the error returned
	completeErr    error        // returned by Complete: always, or by its first completeFails calls
	completeAlways bool         // every call of Complete fails
	completeFails  atomic.Int64 // else, how many calls fail
	renewErr       error
	renewed        chan struct{} // if not nil, closed by the first Renew
	renewOnce      sync.Once
}

func (f *faultyStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if f.claimErr != nil {
		if f.claimLands {
			_, _ = f.Store.Claim(ctx, req)
		}
		return core.Claim{}, f.claimErr
	}
	return f.Store.Claim(ctx, req)
}

func (f *faultyStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if f.completeErr != nil && (f.completeAlways || f.completeFails.Add(-1) >= 0) {
		return f.completeErr
	}
	return f.Store.Complete(ctx, key, token, resp, ttl)
}

func (f *faultyStore) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	if f.renewed != nil {
		defer f.renewOnce.Do(func() { close(f.renewed) })
	}
	if f.renewErr != nil {
		return f.renewErr
	}
	return f.Store.Renew(ctx, key, token, lease)
}

var errDown = errors.New("test: store down")

// mapString renders a map sorted, for messages.
func mapString(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "[%s]=%d ", k, m[k])
	}
	return b.String()
}
