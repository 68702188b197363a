package pgxstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/migrations"
)

// maxIdent is PostgreSQL's identifier limit (NAMEDATALEN-1 bytes); longer
// names are silently truncated, which could make two derived names collide.
const maxIdent = 63

// EnsureSchema applies the embedded migrations (package
// [github.com/idemkit/idemkit/migrations]) for the table and schema the
// options name, creating the schema if needed. It is meant for quick starts
// and tests: it runs in one transaction under an advisory lock, and every
// migration is written to be idempotent, so concurrent and repeated calls are
// safe. In production, prefer applying the same files with golang-migrate.
//
// The files name their objects idempotency_keys…; EnsureSchema renames each
// to the configured table name plus the same suffix, quoted, and selects the
// schema with SET LOCAL search_path.
func EnsureSchema(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	if pool == nil {
		panic("pgxstore: EnsureSchema called with a nil *pgxpool.Pool")
	}
	cfg := newConfig(opts)
	list, err := migrations.List()
	if err != nil {
		return fmt.Errorf("pgxstore: ensure schema: %w", err)
	}
	ups := make([]string, len(list))
	for i, m := range list {
		if ups[i], err = render(m.Up, cfg.table); err != nil {
			return fmt.Errorf("pgxstore: ensure schema: %w", err)
		}
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// One lock for every EnsureSchema of the database: concurrent
		// CREATE SCHEMA IF NOT EXISTS or CREATE OR REPLACE FUNCTION of the
		// same name would otherwise fail.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('idemkit/pgxstore/ensure-schema', 0))"); err != nil {
			return err
		}
		if err := setSearchPath(ctx, tx, cfg.schema, true); err != nil {
			return err
		}
		for i, up := range ups {
			if _, err := tx.Exec(ctx, up); err != nil {
				return fmt.Errorf("migration %d (%s): %w", list[i].Version, list[i].Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return wrap("ensure schema", err)
	}
	return nil
}

// setSearchPath makes schema the only schema of the transaction's
// search_path (pg_catalog stays implicit), creating it first if asked.
func setSearchPath(ctx context.Context, tx pgx.Tx, schema string, create bool) error {
	if schema == "" {
		return nil
	}
	q := pgx.Identifier{schema}.Sanitize()
	if create {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, "SET LOCAL search_path TO "+q)
	return err
}

// render rewrites every identifier of a migration that starts with
// [migrations.DefaultTable] to table plus the same suffix, quoted.
func render(sql, table string) (string, error) {
	var err error
	out := migrations.Rename(sql, func(suffix string) string {
		name := table + suffix
		if len(name) > maxIdent && err == nil {
			err = fmt.Errorf("table name %q too long: derived name %q exceeds %d bytes", table, name, maxIdent)
		}
		return pgx.Identifier{name}.Sanitize()
	})
	return out, err
}
