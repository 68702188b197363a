package pgxstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// TestResentClaimExtendsLease: a claim re-sent with the token that holds
// the key is acquired again and its lease becomes the re-sent one, measured
// on the row itself (docs/contract.md: a re-sent claim is the same claim).
func TestResentClaimExtendsLease(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	req := claimReq(t, "")
	req.Lease = time.Second
	mustClaim(t, s, req, core.ClaimAcquired)
	resent := req
	resent.Lease = 10 * time.Minute
	mustClaim(t, s, resent, core.ClaimAcquired)
	var left float64
	var state string
	if err := db.pool.QueryRow(ctx, "SELECT state, extract(epoch FROM expires_at - now())::float8 FROM "+db.table()+" WHERE key = $1",
		req.Key).Scan(&state, &left); err != nil {
		t.Fatal(err)
	}
	if state != "pending" || left < 9*60 {
		t.Errorf("after a re-sent claim with a 10m lease: row %s with %.1fs left; want pending with about 600s", state, left)
	}
	other := req
	other.Fingerprint[0] ^= 1
	mustClaim(t, s, other, core.ClaimMismatch) // the same token with another payload is not the same claim
	if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 201}, time24h); err != nil {
		t.Fatalf("Complete after the re-sent claim: %v", err)
	}
	// Re-sent once more after the completion: the claim is over, it replays.
	mustClaim(t, s, req, core.ClaimReplay)
}

// TestCompleteRetriedWhileFirstInProgress: a Complete retried while the
// first one still holds the row lock (its reply lost, its transaction not
// yet committed) waits for it and then succeeds on the row the first one
// committed. The first Complete here is the store's own statement run in a
// transaction the test commits later.
func TestCompleteRetriedWhileFirstInProgress(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	req := claimReq(t, "")
	mustClaim(t, s, req, core.ClaimAcquired)
	headers := codec.AppendHeader(nil, nil)
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, s.completeSQL, req.Key, string(req.Token), int32(201), headers, []byte("first"), false, micros(time24h))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("first Complete in a transaction: %v, %v rows; want 1 row", err, tag.RowsAffected())
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 201, Body: []byte("retried")}, time24h)
	}()
	select {
	case err := <-done:
		t.Fatalf("retried Complete returned %v before the first committed; want it to wait for the row lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("retried Complete after the first committed: %v; want nil: the record holds this token's completion", err)
	}
	c := mustClaim(t, s, again(req), core.ClaimReplay)
	if string(c.Response.Body) != "first" {
		t.Errorf("replayed body %q; want %q: a retried Complete leaves the stored record as it is", c.Response.Body, "first")
	}
}

// TestCompleteRetriedKeepsRecord: a retried Complete neither rewrites the
// response nor extends the retention, and a token that completed nothing,
// or another holder's, still gets ErrLeaseLost.
func TestCompleteRetriedKeepsRecord(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store()
	req := claimReq(t, "")
	mustClaim(t, s, req, core.ClaimAcquired)
	if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 201, Body: []byte("first")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 200, Body: []byte("second")}, time24h); err != nil {
		t.Errorf("retried Complete: %v; want nil", err)
	}
	c := mustClaim(t, s, again(req), core.ClaimReplay)
	if c.Response.Status != 201 || string(c.Response.Body) != "first" || c.TTL > time.Minute {
		t.Errorf("replay after a retried Complete: %d %q ttl %v; want 201 \"first\" within the first TTL (1m)", c.Response.Status, c.Response.Body, c.TTL)
	}
	if err := s.Complete(ctx, req.Key, "other-token", &core.Response{Status: 200}, time24h); !errors.Is(err, core.ErrLeaseLost) {
		t.Errorf("Complete of a completed record with another token: %v; want ErrLeaseLost", err)
	}
	// The completing token is kept, never exposed as a lease.
	var lease, completed *string
	if err := db.pool.QueryRow(ctx, "SELECT lease_token, completed_token FROM "+db.table()+" WHERE key = $1", req.Key).Scan(&lease, &completed); err != nil {
		t.Fatal(err)
	}
	if lease != nil || completed == nil || *completed != string(req.Token) {
		t.Errorf("completed row: lease_token %v, completed_token %v; want NULL and the completing token", lease, completed)
	}
}
