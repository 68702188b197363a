package test

import (
	"context"
	"strconv"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/observability/idemotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkDo runs new keys and replays through Engine.Do over memstore:
// without an observer, with idemotel on no-op providers (nothing
// configured), and with idemotel on the SDK (metrics kept, every span
// sampled and dropped).
func BenchmarkDo(b *testing.B) {
	sdk := func() []idemotel.Option {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		tp := sdktrace.NewTracerProvider()
		return []idemotel.Option{idemotel.WithMeterProvider(mp), idemotel.WithTracerProvider(tp)}
	}
	for _, obs := range []struct {
		name string
		opts func() []core.Option
	}{
		{"none", func() []core.Option { return nil }},
		{"noop", func() []core.Option { return []core.Option{core.WithObserver(idemotel.New())} }},
		{"sdk", func() []core.Option { return []core.Option{core.WithObserver(idemotel.New(sdk()...))} }},
	} {
		for _, replay := range []bool{false, true} {
			name := obs.name + "/new"
			if replay {
				name = obs.name + "/replay"
			}
			b.Run(name, func(b *testing.B) {
				engine := core.New(memstore.New(), obs.opts()...)
				fn := func(context.Context) ([]byte, error) { return []byte("ok"), nil }
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					key := "k"
					if !replay {
						key = strconv.Itoa(i)
						i++
					}
					if _, err := engine.Do(ctx, core.Call{Key: key, Name: "bench"}, fn); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
