package tieredstore_test

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
)

// TestDoRedisOverPostgres runs core.Engine.Do's suite on the tiered store
// over the real Redis and Postgres.
func TestDoRedisOverPostgres(t *testing.T) {
	conformance.TestDo(t, newTiered)
}
