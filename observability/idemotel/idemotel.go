package idemotel

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/idemkit/idemkit/core"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/idemkit/idemkit/observability/idemotel"

// Instrument names.
const (
	RequestsMetric      = "idempotency.requests"
	EventsMetric        = "idempotency.events"
	StoreDurationMetric = "idempotency.store.duration"
)

// Attribute keys. Every value is drawn from a fixed set: none is a key, a
// body, a path or an error text.
const (
	// OutcomeKey is the decision, a [core.Outcome] value such as
	// "executed" or "replayed"; on the requests counter, the request's span
	// and otelhttp's metrics.
	OutcomeKey = attribute.Key("idempotency.outcome")
	// EventKey is a lifecycle event, a [core.Outcome] value such as
	// "lease-lost"; on the events counter.
	EventKey = attribute.Key("idempotency.event")
	// OperationKey is the store step: "claim", "complete" or "release";
	// on the store duration histogram and the step spans.
	OperationKey = attribute.Key("idempotency.store.operation")
	// KeyHashKey is the storage-key digest (never the key itself); on the
	// step spans only, unless [WithoutKeyHash].
	KeyHashKey = attribute.Key("idempotency.key_hash")
	// CallNameKey is [core.Call.Name] of an [core.Engine.Do] call, a name
	// the program chose; on the call's span.
	CallNameKey = attribute.Key("idempotency.call.name")
	// MethodKey is the request method (semantic conventions'
	// http.request.method: a standard method, or "_OTHER").
	MethodKey = attribute.Key("http.request.method")
	// ErrorTypeKey is the class of a failure (semantic conventions'
	// error.type), one of the ErrorType values.
	ErrorTypeKey = attribute.Key("error.type")
)

// Values of [ErrorTypeKey].
const (
	ErrorTypeStoreUnavailable = "store-unavailable"
	ErrorTypeLeaseLost        = "lease-lost"
	ErrorTypeCorruptRecord    = "corrupt-record"
	ErrorTypeTimeout          = "timeout"
	ErrorTypeCanceled         = "canceled"
	ErrorTypeOther            = "_OTHER"
)

// Observer is a [core.Observer] and [core.PhaseObserver] that counts
// decisions and lifecycle events, times store steps and traces them as
// spans. Build it with [New] and hand it to [core.WithObserver] (and to the
// stores' own WithObserver options, for evictions and degraded tiers). It
// is safe for concurrent use.
type Observer struct {
	tracer   trace.Tracer
	requests metric.Int64Counter
	events   metric.Int64Counter
	duration metric.Float64Histogram
	keyHash  bool
	labeler  bool

	// Measurement options by attribute values, built once: the values come
	// from fixed sets, so these maps stay small.
	mu      sync.RWMutex
	reqOpts map[reqAttrs][]metric.AddOption
	evOpts  map[core.Outcome][]metric.AddOption
	durOpts map[durAttrs][]metric.RecordOption
	// Span start options by phase: kind and operation, built once.
	startOpts map[core.Phase][]trace.SpanStartOption
}

type reqAttrs struct {
	outcome core.Outcome
	method  string
}

type durAttrs struct {
	op      core.Phase
	errType string
}

type config struct {
	mp      metric.MeterProvider
	tp      trace.TracerProvider
	keyHash bool
	labeler bool
}

// Option configures [New].
type Option func(*config)

// WithMeterProvider sets the meter provider (the global one by default; a
// nil mp keeps it). No value is invalid.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithTracerProvider sets the tracer provider (the global one by default;
// a nil tp keeps it). No value is invalid.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithoutKeyHash leaves the storage-key digest off the step spans. It is
// there by default, to find a key's spans from a log line or from what
// an operator's tool shows of a record.
func WithoutKeyHash() Option { return func(c *config) { c.keyHash = false } }

// WithoutHTTPLabeler stops adding the outcome to otelhttp's metrics (see
// the package documentation). Where no otelhttp handler runs, it also
// saves the empty labeler otelhttp.LabelerFromContext allocates per
// request.
func WithoutHTTPLabeler() Option { return func(c *config) { c.labeler = false } }

// storeBuckets are the histogram's bucket bounds in seconds: store calls
// take from tens of microseconds (in memory) to seconds (an outage).
var storeBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// New returns an Observer reporting to the global meter and tracer
// providers, or to those the options name. A provider's error creating an
// instrument is handed to [otel.Handle]; an instrument it did not return
// is replaced by a no-op one.
func New(opts ...Option) *Observer {
	c := config{keyHash: true, labeler: true}
	for _, o := range opts {
		o(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	meter := c.mp.Meter(ScopeName)
	o := &Observer{
		tracer:  c.tp.Tracer(ScopeName),
		keyHash: c.keyHash,
		labeler: c.labeler,
		reqOpts: map[reqAttrs][]metric.AddOption{},
		evOpts:  map[core.Outcome][]metric.AddOption{},
		durOpts: map[durAttrs][]metric.RecordOption{},
		startOpts: map[core.Phase][]trace.SpanStartOption{
			core.PhaseHandler: {trace.WithSpanKind(trace.SpanKindInternal)},
		},
	}
	for _, p := range []core.Phase{core.PhaseClaim, core.PhaseComplete, core.PhaseRelease} {
		o.startOpts[p] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(OperationKey.String(string(p)))}
	}
	var err error
	if o.requests, err = meter.Int64Counter(RequestsMetric,
		metric.WithUnit("{request}"),
		metric.WithDescription("Idempotency decisions on guarded requests and calls, by outcome.")); err != nil {
		otel.Handle(err)
	}
	if o.events, err = meter.Int64Counter(EventsMetric,
		metric.WithUnit("{event}"),
		metric.WithDescription("Idempotency lifecycle events: lease renewals and losses, late or lost completions, evictions, discarded records, degraded stores.")); err != nil {
		otel.Handle(err)
	}
	if o.duration, err = meter.Float64Histogram(StoreDurationMetric,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of the idempotency store steps: claim, complete (retries included) and release."),
		metric.WithExplicitBucketBoundaries(storeBuckets...)); err != nil {
		otel.Handle(err)
	}
	// A provider may return an error with no instrument: count nothing
	// rather than crash.
	if o.requests == nil {
		o.requests, _ = noop.Meter{}.Int64Counter(RequestsMetric)
	}
	if o.events == nil {
		o.events, _ = noop.Meter{}.Int64Counter(EventsMetric)
	}
	if o.duration == nil {
		o.duration, _ = noop.Meter{}.Float64Histogram(StoreDurationMetric)
	}
	return o
}

var (
	_ core.Observer      = (*Observer)(nil)
	_ core.PhaseObserver = (*Observer)(nil)
)

// events are the lifecycle events; every other outcome is a decision.
var events = map[core.Outcome]bool{
	core.EventLeaseRenewed:    true,
	core.EventLeaseLost:       true,
	core.EventRenewFailed:     true,
	core.EventStoredLate:      true,
	core.EventCompletionLost:  true,
	core.EventOrphanReleased:  true,
	core.EventStoreDegraded:   true,
	core.EventStoreRecovered:  true,
	core.EventEvicted:         true,
	core.EventRecordDiscarded: true,
}

// Observe counts ev. A decision increments the requests counter, is set as
// the idempotency.outcome attribute of the span in ctx (the request's), and
// is added to otelhttp's metrics when otelhttp's handler runs outside the
// middleware. A lifecycle event increments the events counter and is added
// to the span in ctx as a span event (a no-op once that span has ended).
func (o *Observer) Observe(ctx context.Context, ev core.Event) {
	span := trace.SpanFromContext(ctx)
	if events[ev.Outcome] {
		o.events.Add(ctx, 1, o.eventOpt(ev.Outcome)...)
		if span.IsRecording() {
			span.AddEvent("idempotency."+string(ev.Outcome), trace.WithAttributes(EventKey.String(string(ev.Outcome))))
		}
		return
	}
	method := normalizeMethod(ev.Method)
	o.requests.Add(ctx, 1, o.requestOpt(ev.Outcome, method)...)
	if span.IsRecording() {
		attrs := []attribute.KeyValue{OutcomeKey.String(string(ev.Outcome))}
		if ev.Method == "" && ev.Path != "" {
			// An Engine.Do call: Path is the call's name, one of the
			// program's own. An HTTP path is left to the HTTP
			// instrumentation (it has the route).
			attrs = append(attrs, CallNameKey.String(ev.Path))
		}
		span.SetAttributes(attrs...)
	}
	if o.labeler && ev.Method != "" {
		if l, ok := otelhttp.LabelerFromContext(ctx); ok {
			l.Add(OutcomeKey.String(string(ev.Outcome)))
		}
	}
}

// StartPhase starts a span named idempotency.<phase> as a child of the
// span in ctx. The function it returns ends the span, with status Error
// and an error.type attribute when err is not nil, and for the store
// steps (claim, complete, release) records the step's duration.
func (o *Observer) StartPhase(ctx context.Context, phase core.Phase, keyHash string) (context.Context, func(error)) {
	store := phase == core.PhaseClaim || phase == core.PhaseComplete || phase == core.PhaseRelease
	opts, ok := o.startOpts[phase]
	if !ok {
		opts = o.startOpts[core.PhaseHandler] // a phase of a later core: kind only
	}
	ctx, span := o.tracer.Start(ctx, spanName(phase), opts...)
	if o.keyHash && keyHash != "" && span.IsRecording() {
		span.SetAttributes(KeyHashKey.String(keyHash))
	}
	start := time.Now()
	return ctx, func(err error) {
		errType := ""
		if err != nil {
			errType = ErrorType(err)
			span.SetAttributes(ErrorTypeKey.String(errType))
			// The class, not the text: an error may carry what a
			// handler panicked with.
			span.SetStatus(codes.Error, errType)
		}
		if store {
			o.duration.Record(ctx, time.Since(start).Seconds(), o.durationOpt(phase, errType)...)
		}
		span.End()
	}
}

func spanName(p core.Phase) string {
	switch p {
	case core.PhaseClaim:
		return "idempotency.claim"
	case core.PhaseHandler:
		return "idempotency.handler"
	case core.PhaseComplete:
		return "idempotency.complete"
	case core.PhaseRelease:
		return "idempotency.release"
	}
	return "idempotency." + string(p)
}

// ErrorType classifies err for the error.type attribute: one of the
// ErrorType constants, never the error's text.
func ErrorType(err error) string {
	switch {
	case errors.Is(err, core.ErrLeaseLost):
		return ErrorTypeLeaseLost
	case errors.Is(err, core.ErrCorruptRecord):
		return ErrorTypeCorruptRecord
	case errors.Is(err, context.DeadlineExceeded):
		return ErrorTypeTimeout
	case errors.Is(err, context.Canceled):
		return ErrorTypeCanceled
	case errors.Is(err, core.ErrStoreUnavailable):
		return ErrorTypeStoreUnavailable
	}
	return ErrorTypeOther
}

// normalizeMethod keeps the standard methods and maps any other to
// "_OTHER", as the HTTP semantic conventions do; "" (an Engine.Do call)
// stays "".
func normalizeMethod(m string) string {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

func (o *Observer) requestOpt(outcome core.Outcome, method string) []metric.AddOption {
	k := reqAttrs{outcome, method}
	o.mu.RLock()
	opt, ok := o.reqOpts[k]
	o.mu.RUnlock()
	if ok {
		return opt
	}
	attrs := []attribute.KeyValue{OutcomeKey.String(string(outcome))}
	if method != "" {
		attrs = append(attrs, MethodKey.String(method))
	}
	opt = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	o.mu.Lock()
	o.reqOpts[k] = opt
	o.mu.Unlock()
	return opt
}

func (o *Observer) eventOpt(ev core.Outcome) []metric.AddOption {
	o.mu.RLock()
	opt, ok := o.evOpts[ev]
	o.mu.RUnlock()
	if ok {
		return opt
	}
	opt = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(EventKey.String(string(ev))))}
	o.mu.Lock()
	o.evOpts[ev] = opt
	o.mu.Unlock()
	return opt
}

func (o *Observer) durationOpt(op core.Phase, errType string) []metric.RecordOption {
	k := durAttrs{op, errType}
	o.mu.RLock()
	opt, ok := o.durOpts[k]
	o.mu.RUnlock()
	if ok {
		return opt
	}
	attrs := []attribute.KeyValue{OperationKey.String(string(op))}
	if errType != "" {
		attrs = append(attrs, ErrorTypeKey.String(errType))
	}
	opt = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	o.mu.Lock()
	o.durOpts[k] = opt
	o.mu.Unlock()
	return opt
}
