// Command idemctl is the operator's tool for idemkit's stores: it looks up
// a client's record by (scope, key) without the store ever holding raw
// keys, deletes a stuck or unwanted record, prunes expired Postgres rows
// and checks that a store can serve.
//
//	idemctl inspect -store postgres -scope tenant-7 -key 8e03978e-40d5
//	idemctl delete  -store tiered   -key-hash 3a7bd3e2…
//	idemctl prune   -store postgres
//	idemctl check   -store redis -json
//
// It reads the servers' addresses from IDEMKIT_REDIS_URL and
// IDEMKIT_POSTGRES_URL, as the example services do. A raw key is turned
// into the storage key with [core.StorageKey]: pass the scope the
// service's scope function returns for the client, and, when the service
// sets [core.WithHMACSecret], -hmac-secret-env with the name of an
// environment variable holding the same secret. Output is a table, or JSON
// with -json. The exit status is 0 on success, 1 on failure (a missing
// record, a store that cannot serve), 2 on a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
