package reliability

import (
	"context"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	_ "github.com/Shopify/toxiproxy/v2/toxics" // registers the toxics
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// startProxy runs a toxiproxy TCP proxy in this process, from a free
// loopback port to upstream, stopped at the end of t.
func startProxy(t *testing.T, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	// The toxics log through zerolog's global logger, at trace level.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

func addToxic(t *testing.T, p *toxiproxy.Proxy, json string) {
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(json)); err != nil {
		t.Errorf("toxiproxy: adding %s: %v", json, err)
	}
}

// TestStoreNetwork: the instances reach their store through a TCP fault
// proxy that adds latency (150 ms ± 50 both ways, 2 s), then limits the
// bandwidth (8 KB/s, 1.5 s), then cuts every connection and refuses new
// ones for 1 s.
func TestStoreNetwork(t *testing.T) {
	needMode(t)
	stores := []string{"redis"}
	if full {
		stores = []string{"redis", "postgres"}
	}
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			for _, a := range pick(0) {
				t.Run(a, func(t *testing.T) {
					srv := startServers(t, store)
					var p *toxiproxy.Proxy
					env := []string{}
					if store == "redis" {
						p = startProxy(t, "redis", srv.redis.Addr())
						env = append(env, "IDEMKIT_REDIS_URL=redis://"+p.Listen+"/0")
					} else {
						_, port, _ := strings.Cut(strings.TrimPrefix(srv.pg.URL(), "postgres://postgres@"), ":")
						port, _, _ = strings.Cut(port, "/")
						p = startProxy(t, "postgres", "127.0.0.1:"+port)
						env = append(env, "IDEMKIT_POSTGRES_URL="+strings.Replace(srv.pg.URL(), "127.0.0.1:"+port, p.Listen, 1))
					}
					c := startCluster(t, a, store, 3, env)
					scenario{name: "store behind toxiproxy: latency, bandwidth, cut", load: faultLoad(7 * time.Second), maxWait: 20 * time.Second, knownWait: "keys locked for a lease after a cut",
						fault: func(ctx context.Context, c *cluster) int {
							if !after(ctx, 800*time.Millisecond) {
								return 0
							}
							addToxic(t, p, `{"name":"lat-down","type":"latency","stream":"downstream","attributes":{"latency":150,"jitter":50}}`)
							addToxic(t, p, `{"name":"lat-up","type":"latency","stream":"upstream","attributes":{"latency":150,"jitter":50}}`)
							after(ctx, 2*time.Second)
							p.Toxics.ResetToxics(ctx)
							addToxic(t, p, `{"name":"bw","type":"bandwidth","stream":"downstream","attributes":{"rate":8}}`)
							after(ctx, 1500*time.Millisecond)
							p.Toxics.ResetToxics(ctx)
							p.Stop()
							after(ctx, time.Second)
							if err := p.Start(); err != nil {
								t.Errorf("toxiproxy: restarting: %v", err)
							}
							return 3
						}}.run(t, c)
				})
			}
		})
	}
}
