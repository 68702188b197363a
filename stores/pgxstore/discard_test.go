package pgxstore

import (
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// TestDiscardUnreadableRows checks Discard without a response: rows this
// store reports corrupt are deleted, so a claim acquires the key again,
// while a row that reads well — a pending claim, a completed record — is
// kept.
func TestDiscardUnreadableRows(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	tbl := db.table()
	for _, tc := range []struct{ name, headers, expires string }{
		{"InfiniteExpiry", `'\x00'::bytea`, `'infinity'`},
		{"GarbageHeaders", `'\xffff'::bytea`, `now() + interval '1 day'`},
		{"HeaderValueWithCRLF", `'\x` + hex.EncodeToString(codec.AppendHeader(nil, http.Header{"Location": {"/a\r\nX: 1"}})) + `'::bytea`, `now() + interval '1 day'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := claimReq(t, "payload")
			_, err := db.pool.Exec(ctx, `INSERT INTO `+tbl+` (key, fingerprint, state, status, headers, body, completed_at, expires_at)
				VALUES ($1, $2, 'completed', 201, `+tc.headers+`, '\x'::bytea, now(), `+tc.expires+`)`, req.Key, req.Fingerprint[:])
			if err != nil {
				t.Fatalf("inserting the row: %v", err)
			}
			if _, err := s.Claim(ctx, req); !errors.Is(err, core.ErrCorruptRecord) {
				t.Fatalf("Claim: %v; want core.ErrCorruptRecord", err)
			}
			if err := s.Discard(ctx, core.DiscardRequest{Key: req.Key, Fingerprint: req.Fingerprint, Reason: core.ErrCorruptRecord}); err != nil {
				t.Fatalf("Discard: %v", err)
			}
			if c, err := s.Claim(ctx, req); err != nil || c.Status != core.ClaimAcquired {
				t.Errorf("Claim after Discard = %v, %v; want acquired", c.Status, err)
			}
		})
	}

	// Readable rows stay.
	pending := claimReq(t, "p")
	if c, err := s.Claim(ctx, pending); err != nil || c.Status != core.ClaimAcquired {
		t.Fatalf("Claim = %v, %v", c.Status, err)
	}
	done := claimReq(t, "d")
	s.Claim(ctx, done)
	resp := &core.Response{Status: 201, Header: http.Header{"A": {"1"}}, Body: []byte("x")}
	if err := s.Complete(ctx, done.Key, done.Token, resp, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, req := range []core.ClaimRequest{pending, done} {
		if err := s.Discard(ctx, core.DiscardRequest{Key: req.Key, Fingerprint: req.Fingerprint, Reason: core.ErrCorruptRecord}); err != nil {
			t.Fatalf("Discard: %v", err)
		}
	}
	// A response other than the stored one deletes nothing either.
	other := &core.Response{Status: 201, Header: http.Header{"A": {"2"}}, Body: []byte("x")}
	if err := s.Discard(ctx, core.DiscardRequest{Key: done.Key, Fingerprint: done.Fingerprint, Response: other, Reason: core.ErrCorruptRecord}); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	again := pending
	again.Token = core.Token(randHex(16))
	if c, err := s.Claim(ctx, again); err != nil || c.Status != core.ClaimInFlight {
		t.Errorf("Claim of a pending key after Discard = %v, %v; want in flight", c.Status, err)
	}
	again = done
	again.Token = core.Token(randHex(16))
	if c, err := s.Claim(ctx, again); err != nil || c.Status != core.ClaimReplay {
		t.Errorf("Claim of a completed key after Discard = %v, %v; want a replay", c.Status, err)
	}
	// The stored response itself is deleted.
	if err := s.Discard(ctx, core.DiscardRequest{Key: done.Key, Fingerprint: done.Fingerprint, Response: resp, Reason: core.ErrCorruptRecord}); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if c, err := s.Claim(ctx, again); err != nil || c.Status != core.ClaimAcquired {
		t.Errorf("Claim after discarding the stored response = %v, %v; want acquired", c.Status, err)
	}
}
