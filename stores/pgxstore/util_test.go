package pgxstore

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

type pgconnError = pgconn.PgError

func hasSQLState(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
