package matrix

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
)

// TestHostileInput runs conformance.TestHostileInput for every adapter,
// on its real server with short read deadlines, over the real stores
// (Redis, PostgreSQL): malformed, duplicated, truncated, overlong,
// trickled and pipelined requests over raw connections. The memory store
// runs in each adapter's own test module.
func TestHostileInput(t *testing.T) {
	b := connect(t)
	for _, a := range limitedAdapters {
		for _, s := range b.stores() {
			if s.name != "redis" && s.name != "postgres" {
				continue
			}
			t.Run("adapter="+a.name+"/store="+s.name, func(t *testing.T) {
				t.Parallel()
				conformance.TestHostileInput(t, conformance.HostileHarness{
					Harness:     conformance.Harness{NewStore: s.new, NewServer: a.new},
					ReadTimeout: hostileReadTimeout,
				})
			})
		}
	}
}
