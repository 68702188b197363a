package pgxstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/idemkit/idemkit/core"
)

var _ core.Checker = (*Store)(nil)

// ErrSchema reports a table that is missing or older than the store
// expects: apply the migrations (module
// github.com/idemkit/idemkit/migrations) with golang-migrate, or call
// [EnsureSchema]. [Store.Check] wraps it; so does every error of a store
// call that the server refused for that reason.
var ErrSchema = errors.New("pgxstore: schema missing or out of date")

// SchemaVersion is the migration version the store's statements need: the
// newest file of module github.com/idemkit/idemkit/migrations. Version 2
// added completed_token, which lets a retried Complete be recognised;
// version 3 the steps table of [Store.Step].
const SchemaVersion = 3

// checkSQL names every column the store's statements read or write, so the
// server plans it against the table as it is and refuses it, reading no
// row, when the table or one of those columns is missing.
const checkSQL = `SELECT t.key, t.fingerprint, t.state, t.lease_token, t.lease_expires_at, t.status, t.headers, t.body,
	t.body_omitted, t.created_at, t.completed_at, t.expires_at, t.completed_token,
	s.key, s.name, s.fingerprint, s.payload, s.created_at, s.expires_at
FROM %s t, %s s WHERE false`

// Check implements [core.Checker]: PostgreSQL answers, and the table is
// there with every column of schema version [SchemaVersion]. It returns nil
// when both hold, an error wrapping [ErrSchema] when the table, its schema
// or a column is missing (migrations not applied, or an older version),
// and an error wrapping [core.ErrStoreUnavailable] when the server does not
// answer. It is one statement that reads no row; a context without a
// deadline is bounded as for every call ([WithTimeout]).
func (s *Store) Check(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, s.checkSQL)
	if err == nil {
		return nil
	}
	if schemaError(err) {
		return fmt.Errorf("%w: table %s, want version %d: %w", ErrSchema, s.cfg.ident(), SchemaVersion, err)
	}
	return wrap("check", err)
}

// schemaError reports whether the server refused a statement because the
// table, its schema or one of its columns does not exist.
func schemaError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", // undefined_table
		"42703", // undefined_column
		"3F000": // invalid_schema_name
		return true
	}
	return false
}
