package pgxstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

var _ core.Discarder = (*Store)(nil)

// discardFoundSQL deletes the completed row of $1 if it still holds the
// response the engine refused: $2 fingerprint, $3 status, $4 headers (the
// canonical encoding, which the decoder accepts only in that form), $5
// body, $6 body omitted.
const discardFoundSQL = `DELETE FROM %s
WHERE key = $1 AND state = 'completed' AND fingerprint = $2
	AND status = $3 AND headers = $4 AND body = $5 AND body_omitted = $6`

// discardReadSQL reads the row of $1 as the claim does, whatever its expiry.
const discardReadSQL = `SELECT state, status, headers, body, body_omitted, expires_at FROM %s WHERE key = $1`

// discardUnreadableSQL deletes the row of $1 if it still holds what was
// read: $2 state, $3 status, $4 headers, $5 body, $6 body omitted, $7
// expiry.
const discardUnreadableSQL = `DELETE FROM %s
WHERE key = $1 AND state = $2 AND status IS NOT DISTINCT FROM $3
	AND headers IS NOT DISTINCT FROM $4 AND body IS NOT DISTINCT FROM $5
	AND body_omitted = $6 AND expires_at = $7`

// Discard implements [core.Discarder]: it deletes the row the engine found
// unusable, and only that row, in a compare-and-delete statement. For a
// refused response that is the completed row under the same fingerprint
// holding the same status, header bytes, body and flag. For a row this
// store reported corrupt, the row is read again, still found unreadable
// in Go (a completed row whose response does not decode, or a row without
// a finite expiry), and deleted only if no column changed since. A
// pending row with a finite expiry is never deleted.
func (s *Store) Discard(ctx context.Context, req core.DiscardRequest) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	t := s.cfg.ident()
	if resp := req.Response; resp != nil {
		body := resp.Body
		if body == nil {
			body = []byte{}
		}
		err := retry(ctx, func() error {
			_, err := s.pool.Exec(ctx, fmt.Sprintf(discardFoundSQL, t), req.Key, req.Fingerprint[:],
				int32(resp.Status), codec.AppendHeader(nil, resp.Header), body, resp.BodyOmitted)
			return err
		})
		if err != nil {
			return wrap("discard", err)
		}
		return nil
	}

	var state string
	var status pgtype.Int4
	var headers, body []byte
	var omitted bool
	var expires pgtype.Timestamptz
	err := retry(ctx, func() error {
		return s.pool.QueryRow(ctx, fmt.Sprintf(discardReadSQL, t), req.Key).Scan(&state, &status, &headers, &body, &omitted, &expires)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return wrap("discard", err)
	}
	unreadable := !expires.Valid || expires.InfinityModifier != pgtype.Finite
	if state == "completed" && !unreadable {
		_, derr := decode(status, headers, body, omitted)
		unreadable = derr != nil
	}
	if !unreadable {
		return nil
	}
	err = retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, fmt.Sprintf(discardUnreadableSQL, t), req.Key, state, status, headers, body, omitted, expires)
		return err
	})
	if err != nil {
		return wrap("discard", err)
	}
	return nil
}
