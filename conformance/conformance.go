// Package conformance is the executable form of idemkit's contracts: a
// kit that store and adapter authors run from their own tests.
//
// [TestStore] checks a [core.Store] against the sentences of its interface
// (claim outcomes, leases, fencing tokens, retention, exact bytes,
// atomicity under 64-way races, context handling);
// [TestCache] checks a [core.Cache], the hot tier of a tiered store
// (lookups, replacement, retention, exact bytes, torn writes, context);
// [TestMiddleware] checks an adapter, with any store, against the HTTP
// behaviour of the spec; [TestHostileInput] sends an adapter, served on its
// real server, malformed, truncated, overlong and pipelined requests over
// raw connections. Each runs stable, CamelCase subtests usable with
// -run (TestMyStore/Fencing/StaleCompleteRejected), calls the factory once
// per subtest, uses random keys, and reports failures with the call, its
// inputs, what it got, what it wanted and the rule broken.
//
//	func TestMyStore(t *testing.T) {
//		conformance.TestStore(t, func(t *testing.T) core.Store {
//			st := mystore.New(client)
//			t.Cleanup(func() { st.Close() })
//			return st
//		})
//	}
//
// The package depends on core and the standard library only.
package conformance

import (
	"net/http"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// NewStoreFunc returns the store one subtest runs against. It is called once
// per subtest; it may return a fresh store or a shared one (the suite uses
// unique keys), and registers any teardown with t.Cleanup.
type NewStoreFunc func(t *testing.T) core.Store

// Harness tells [TestMiddleware] how to build a server with the adapter
// under test.
type Harness struct {
	// NewStore returns the store for one subtest, as for [TestStore].
	NewStore NewStoreFunc
	// NewServer mounts app behind the adapter's middleware for engine, starts
	// a server on a loopback address, registers its shutdown with t.Cleanup
	// and returns its base URL ("http://127.0.0.1:port"). A panic in app must
	// reach the framework's usual panic handling after the middleware.
	NewServer func(t *testing.T, engine *core.Engine, app http.Handler) string
}
