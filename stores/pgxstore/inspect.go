package pgxstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/idemkit/idemkit/core"
)

var _ core.Inspector = (*Store)(nil)

// inspectSQL reads the live row of $1: what an operator may see, never the
// token or the response's bytes.
const inspectSQL = `SELECT state, fingerprint, status, octet_length(headers), octet_length(body), body_omitted, created_at, expires_at
FROM %s WHERE key = $1 AND expires_at > now()`

// deleteSQL deletes the row of $1, live or expired, and tells whether it
// was live.
const deleteSQL = `DELETE FROM %s WHERE key = $1 RETURNING expires_at > now()`

// Inspect implements [core.Inspector] with one SELECT by primary key.
// CreatedAt is when the record was claimed (or last taken over), ExpiresAt
// its lease's end or its retention's, by the server's clock.
func (s *Store) Inspect(ctx context.Context, key string) (core.RecordInfo, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		state          string
		fp             []byte
		status, hb, bb pgtype.Int4
		omitted        bool
		created, exp   time.Time
	)
	err := retry(ctx, func() error {
		return s.pool.QueryRow(ctx, fmt.Sprintf(inspectSQL, s.cfg.ident()), key).
			Scan(&state, &fp, &status, &hb, &bb, &omitted, &created, &exp)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return core.RecordInfo{}, fmt.Errorf("pgxstore: inspect: %w", core.ErrNotFound)
	}
	if err != nil {
		return core.RecordInfo{}, wrap("inspect", err)
	}
	info := core.RecordInfo{Key: key, State: core.RecordState(state), Status: int(status.Int32),
		HeaderBytes: int(hb.Int32), BodyBytes: int(bb.Int32), BodyOmitted: omitted, CreatedAt: created, ExpiresAt: exp}
	if copy(info.Fingerprint[:], fp) != len(info.Fingerprint) {
		return core.RecordInfo{}, fmt.Errorf("pgxstore: inspect: %w: %w: fingerprint of %d bytes", core.ErrStoreUnavailable, core.ErrCorruptRecord, len(fp))
	}
	return info, nil
}

// Delete implements [core.Inspector] with one DELETE by primary key. An
// expired row is deleted too, and reported as ErrNotFound. The request's
// recorded steps ([Store.Step]) are kept: a retry with the same payload
// resumes after them, as after a crash, and [Store.Prune] deletes them
// when they expire.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var live bool
	err := retry(ctx, func() error {
		return s.pool.QueryRow(ctx, fmt.Sprintf(deleteSQL, s.cfg.ident()), key).Scan(&live)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && !live:
		return fmt.Errorf("pgxstore: delete: %w", core.ErrNotFound)
	case err != nil:
		return wrap("delete", err)
	}
	return nil
}
