package service

import (
	"context"
	"net/http"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/observability/idemotel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Telemetry is what -metrics turns on: idemkit's OpenTelemetry metrics
// (observability/idemotel) and otelhttp's http.server.* metrics, labelled
// with the outcome, exported in the Prometheus format on GET /metrics. A
// nil *Telemetry (no -metrics) changes nothing.
type Telemetry struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
	observer *idemotel.Observer
}

// NewTelemetry returns the examples' telemetry over a registry of its own.
func NewTelemetry() (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	return &Telemetry{provider: mp, registry: reg, observer: idemotel.New(idemotel.WithMeterProvider(mp))}, nil
}

// Observer returns base, and the idemotel observer beside it when t is
// not nil.
func (t *Telemetry) Observer(base core.Observer) core.Observer {
	if t == nil {
		return base
	}
	return both{base, t.observer}
}

// Handler returns h, or, when t is not nil, h under otelhttp with GET
// /metrics in front of it. (Not a ServeMux: its pattern would become
// otelhttp's http.route for every request.)
func (t *Telemetry) Handler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	metrics := t.MetricsHandler()
	instrumented := otelhttp.NewHandler(h, "example", otelhttp.WithMeterProvider(t.provider))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		instrumented.ServeHTTP(w, r)
	})
}

// MetricsHandler serves the metrics in the Prometheus format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown stops the meter provider; nil does nothing.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// both reports to a log observer and to idemotel, which also traces the
// steps (core.PhaseObserver).
type both struct {
	log  core.Observer
	otel *idemotel.Observer
}

func (b both) Observe(ctx context.Context, ev core.Event) {
	b.log.Observe(ctx, ev)
	b.otel.Observe(ctx, ev)
}

func (b both) StartPhase(ctx context.Context, p core.Phase, keyHash string) (context.Context, func(error)) {
	return b.otel.StartPhase(ctx, p, keyHash)
}
