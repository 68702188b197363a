package service

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// TestMetrics: with -metrics, GET /metrics serves idemkit's counters and
// otelhttp's request duration, both split by outcome; without it, the
// handler is the routes' own.
func TestMetrics(t *testing.T) {
	var off *Telemetry
	mux := http.NewServeMux()
	if off.Handler(mux) != http.Handler(mux) {
		t.Errorf("without -metrics, Handler wrapped the routes; want them unchanged")
	}
	tel, err := NewTelemetry()
	if err != nil {
		t.Fatalf("NewTelemetry: %v", err)
	}
	engine := core.New(memstore.New(), core.WithObserver(tel.Observer(core.SlogObserver(slog.New(slog.DiscardHandler)))))
	mux.Handle("POST /payments", idemhttp.Middleware(engine)(http.HandlerFunc((&Payments{}).CreatePaymentHandler)))
	srv := httptest.NewServer(tel.Handler(mux))
	defer srv.Close()
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"amount":1200,"currency":"EUR"}`))
		req.Header.Set("Idempotency-Key", `"metrics-test-1"`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`idempotency_requests_total{http_request_method="POST",idempotency_outcome="executed"`,
		`idempotency_requests_total{http_request_method="POST",idempotency_outcome="replayed"`,
		`idempotency_store_duration_seconds_count{idempotency_store_operation="claim"`,
		`http_route="/payments",idempotency_outcome="replayed"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics has no %s", want)
		}
	}
}
