package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

const storeNames = "redis|postgres|tiered|memory"

// tieredStore is the tiered store with its Postgres tier at hand, for prune.
type tieredStore struct {
	*tieredstore.Store
	pg *pgxstore.Store
}

// openStore opens the store o.store names, as the example services do
// (examples/internal/service/stores.go), but applies no schema: check must
// see the database as it is. memory is an empty store of this process,
// useful only to try the commands.
func openStore(ctx context.Context, o *options) (core.Store, func(), error) {
	switch o.store {
	case "memory":
		s := memstore.New()
		return s, func() { s.Close() }, nil
	case "redis":
		rs, closeRedis, err := openRedis(o, o.prefix)
		return rs, closeRedis, err
	case "postgres":
		return openPostgres(ctx, o)
	case "tiered":
		pg, closePG, err := openPostgres(ctx, o)
		if err != nil {
			return nil, nil, err
		}
		rs, closeRedis, err := openRedis(o, o.hotPrefix)
		if err != nil {
			closePG()
			return nil, nil, err
		}
		return &tieredStore{Store: tieredstore.New(rs, pg), pg: pg}, func() { closeRedis(); closePG() }, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q; want one of %s", o.store, storeNames)
}

func (o *options) env(name string) (string, error) {
	v := o.getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set", name)
	}
	return v, nil
}

func openRedis(o *options, prefix string) (*redisstore.Store, func(), error) {
	url, err := o.env("IDEMKIT_REDIS_URL")
	if err != nil {
		return nil, nil, err
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("IDEMKIT_REDIS_URL: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	return redisstore.New(client, redisstore.WithPrefix(prefix)), func() { client.Close() }, nil
}

func openPostgres(ctx context.Context, o *options) (*pgxstore.Store, func(), error) {
	url, err := o.env("IDEMKIT_POSTGRES_URL")
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("IDEMKIT_POSTGRES_URL: %w", err)
	}
	var opts []pgxstore.Option
	if o.pgSchema != "" {
		opts = append(opts, pgxstore.WithSchema(o.pgSchema))
	}
	if o.pgTable != "" {
		opts = append(opts, pgxstore.WithTable(o.pgTable))
	}
	if o.pruneBatch > 0 {
		opts = append(opts, pgxstore.WithPruneBatch(o.pruneBatch))
	}
	return pgxstore.New(pool, opts...), pool.Close, nil
}
