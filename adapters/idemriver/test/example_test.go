package idemriver_test

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/idemkit/idemkit/adapters/idemriver"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
)

// ChargeArgs carry the key of the request that enqueued the charge.
type ChargeArgs struct {
	OrderKey string `json:"order_key"`
	Amount   int    `json:"amount"`
}

func (ChargeArgs) Kind() string { return "charge" }

func charge(ctx context.Context, job *river.Job[ChargeArgs]) error { return nil }

// README's "Background jobs: River", as it reads there. It needs
// PostgreSQL, so it is compiled, not run.
func Example() {
	ctx := context.Background()
	pool, _ := pgxpool.New(ctx, "postgres://…")
	_ = pgxstore.EnsureSchema(ctx, pool)
	engine := core.New(pgxstore.New(pool))

	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(charge))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers: workers,
		Middleware: []rivertype.Middleware{idemriver.Middleware(engine,
			idemriver.WithArgsKey(func(a ChargeArgs) string { return a.OrderKey }))},
	})
	if err != nil {
		panic(err)
	}
	_ = client.Start(ctx)
}
