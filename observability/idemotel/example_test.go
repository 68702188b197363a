package idemotel_test

import (
	"context"
	"fmt"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/observability/idemotel"
)

// An engine reporting to OpenTelemetry: set the global providers with
// otel.SetMeterProvider and otel.SetTracerProvider (or pass them with
// WithMeterProvider and WithTracerProvider). For HTTP, wrap the router
// with otelhttp.NewHandler to get the outcome on http.server.* metrics too.
func Example() {
	obs := idemotel.New()
	store := memstore.New(memstore.WithObserver(obs)) // its evictions
	defer store.Close()
	engine := core.New(store, core.WithObserver(obs))

	call := core.Call{Key: "order-1042", Name: "ship"}
	for range 2 {
		out, err := engine.Do(context.Background(), call, func(ctx context.Context) ([]byte, error) {
			return []byte("shipped"), nil // spans started from ctx nest under idempotency.handler
		})
		fmt.Println(string(out), err)
	}
	// Output:
	// shipped <nil>
	// shipped <nil>
}
