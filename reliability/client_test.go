package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
)

// TestClientNetwork: the clients reach each instance through its own TCP
// fault proxy, which adds latency (150 ms ± 50 both ways, 1.5 s), then
// limits the bandwidth (2 KB/s both ways, 1 s), then slices the streams
// into 1–31-byte pieces 2 ms apart (1 s), then resets every connection
// as soon as the response starts back (reset_peer: the handler ran, its
// client never hears of it; 1 s), then cuts every connection and refuses
// new ones (1 s). Each phase starts and ends with every connection cut.
// The store is untouched: what is tested is the network between clients
// and services. Redis in the bounded run; Postgres and tiered too in the
// full run.
func TestClientNetwork(t *testing.T) {
	needMode(t)
	stores := []string{"redis"}
	if full {
		stores = append(stores, "postgres", "tiered")
	}
	for si, store := range stores {
		t.Run(store, func(t *testing.T) { clientNetwork(t, store, si) })
	}
}

func clientNetwork(t *testing.T, store string, si int) {
	for _, a := range pick(si) {
		t.Run(a, func(t *testing.T) {
			srv := startServers(t, store)
			c := startCluster(t, a, store, 3, srv.env)
			var proxies []*toxiproxy.Proxy
			var urls []string
			for i, in := range c.inst {
				p := startProxy(t, fmt.Sprintf("client-%d", i), in.addr)
				proxies = append(proxies, p)
				urls = append(urls, "http://"+p.Listen)
			}
			// Each phase replaces the proxies by new ones with its toxics
			// (see replaceProxy), then by clean ones: every phase starts
			// and ends with every connection cut.
			phase := func(ctx context.Context, d time.Duration, toxics ...string) bool {
				for i := range proxies {
					proxies[i] = replaceProxy(t, proxies[i], toxics...)
				}
				ok := after(ctx, d)
				for i := range proxies {
					proxies[i] = replaceProxy(t, proxies[i])
				}
				return ok
			}
			scenario{name: "clients behind toxiproxy: latency, bandwidth, slicer, reset, cut", load: faultLoad(7 * time.Second),
				urls: urls, maxSettle: 15 * time.Second, maxWait: 20 * time.Second,
				fault: func(ctx context.Context, c *cluster) int {
					if !after(ctx, 800*time.Millisecond) {
						return 0
					}
					n := 0
					for _, ph := range []struct {
						d      time.Duration
						toxics []string
					}{
						{1500 * time.Millisecond, []string{
							`{"name":"lat-down","type":"latency","stream":"downstream","attributes":{"latency":150,"jitter":50}}`,
							`{"name":"lat-up","type":"latency","stream":"upstream","attributes":{"latency":150,"jitter":50}}`}},
						{time.Second, []string{
							`{"name":"bw-down","type":"bandwidth","stream":"downstream","attributes":{"rate":2}}`,
							`{"name":"bw-up","type":"bandwidth","stream":"upstream","attributes":{"rate":2}}`}},
						{time.Second, []string{
							`{"name":"slice-down","type":"slicer","stream":"downstream","attributes":{"average_size":16,"size_variation":15,"delay":2000}}`,
							`{"name":"slice-up","type":"slicer","stream":"upstream","attributes":{"average_size":16,"size_variation":15,"delay":2000}}`}},
						{time.Second, []string{
							`{"name":"reset","type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`}},
					} {
						n++
						if !phase(ctx, ph.d, ph.toxics...) {
							return n
						}
					}
					for _, p := range proxies {
						p.Stop()
					}
					after(ctx, time.Second)
					for i := range proxies {
						proxies[i] = replaceProxy(t, proxies[i])
					}
					return n + 1
				}}.run(t, c)
		})
	}
}
