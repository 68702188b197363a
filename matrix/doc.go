// Package matrix runs the HTTP conformance suite for every adapter against
// every store, as subtests named adapter=<name>/store=<name>/<rule>. It is
// a test-only module: it depends on every framework and driver so that the
// exported conformance module does not have to.
//
//	go test ./matrix/... -run 'TestMatrix/adapter=gin/store=redis'
package matrix
