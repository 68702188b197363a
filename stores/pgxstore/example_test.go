package pgxstore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
)

// Example needs a PostgreSQL server, so it is compiled but not run. The
// engine then guards handlers through the adapter for your framework, for
// example idemhttp.Middleware(engine)(mux) with net/http.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("IDEMKIT_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// Quick start: create the table. In production, apply the files of
	// github.com/idemkit/idemkit/migrations with golang-migrate instead.
	opts := []pgxstore.Option{pgxstore.WithSchema("idem"), pgxstore.WithTable("idempotency_keys")}
	if err := pgxstore.EnsureSchema(ctx, pool, opts...); err != nil {
		log.Fatal(err)
	}
	store := pgxstore.New(pool, opts...)
	stop := store.StartPruner(ctx, 5*time.Minute)
	defer stop()

	engine := core.New(store, core.WithHeaderScope("X-Api-Key"))
	_ = engine
}
