// Package storetest holds what the test-only modules of the stores
// (stores/redisstore/test, stores/pgxstore/test, stores/tieredstore/test)
// share: an idemhttp server over an engine, a POST with an Idempotency-Key,
// an observer of executed storage keys, the at-rest run and the forged
// record test. Each store's test states only what differs: how it opens a
// store, how it reads its records at rest, how it forges one.
//
// It is test-only, as svctest is: the published store modules never import
// it, not even from their own _test.go files.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
)

// RandHex returns n random bytes in hex.
func RandHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// NewHTTPServer mounts app behind idemhttp's middleware for engine on a
// loopback test server, closed at cleanup, and returns its base URL: the
// NewServer of a conformance.Harness.
func NewHTTPServer(t *testing.T, engine *core.Engine, app http.Handler) string {
	srv := httptest.NewServer(idemhttp.Middleware(engine)(app))
	t.Cleanup(srv.Close)
	return srv.URL
}
