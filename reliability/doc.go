// Package reliability is idemkit's reliability suite: the example services
// run as real processes, several instances sharing one store, under a load
// of clients that time out and retry through a real retrying client, while
// the suite breaks their store, their network and the instances themselves.
// A ledger written by the instances proves that every logical request ran
// its side effect once and that every client saw the same response.
//
// It is a test-only module, never published. Run it with make reliability
// (RELIABILITY=full for the full run); docs/reliability.md gives the
// figures of the last full run.
package reliability
