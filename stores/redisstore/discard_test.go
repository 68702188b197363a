package redisstore

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// TestDiscard writes unreadable values under record keys and checks that
// Discard without a response deletes them, so that a claim acquires the
// key again; and that it keeps what the store reads well: a pending claim,
// a completed record (unless it is the very response named).
func TestDiscard(t *testing.T) {
	client := singleClient(t)
	s := New(client, WithPrefix(uniquePrefix(t)))
	ctx := context.Background()
	f := fp(7)
	claimReq := func(key string) core.ClaimRequest {
		return core.ClaimRequest{Key: key, Fingerprint: f, Token: newToken(t), Lease: time.Minute}
	}
	discard := func(key string, resp *core.Response) {
		t.Helper()
		if err := s.Discard(ctx, core.DiscardRequest{Key: key, Fingerprint: f, Response: resp, Reason: core.ErrCorruptRecord}); err != nil {
			t.Fatalf("Discard: %v", err)
		}
	}
	good := codec.EncodeResponse(&core.Response{Status: 201, Header: http.Header{}})
	for name, set := range map[string]func(rkey string) error{
		"UnknownState":   func(k string) error { return client.Set(ctx, k, "X"+string(f[:])+"tok", time.Hour).Err() },
		"ShortCompleted": func(k string) error { return client.Set(ctx, k, "C"+string(f[:])+"ab", time.Hour).Err() },
		"Status101": func(k string) error {
			return client.Set(ctx, k, "C"+string(f[:])+string(append(good[:2:2], 0, 101, 0)), time.Hour).Err()
		},
		"OtherType": func(k string) error { return client.HSet(ctx, k, "a", "b").Err() },
	} {
		t.Run(name, func(t *testing.T) {
			key := newKey(t)
			if err := set(s.recordKey(key)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Claim(ctx, claimReq(key)); !errors.Is(err, core.ErrCorruptRecord) {
				t.Fatalf("Claim: %v; want core.ErrCorruptRecord", err)
			}
			discard(key, nil)
			if c, err := s.Claim(ctx, claimReq(key)); err != nil || c.Status != core.ClaimAcquired {
				t.Errorf("Claim after Discard = %v, %v; want acquired", c.Status, err)
			}
		})
	}

	pending, done := newKey(t), newKey(t)
	s.Claim(ctx, claimReq(pending))
	req := claimReq(done)
	s.Claim(ctx, req)
	resp := &core.Response{Status: 201, Header: http.Header{"A": {"1"}}, Body: []byte("x")}
	if err := s.Complete(ctx, done, req.Token, resp, time.Hour); err != nil {
		t.Fatal(err)
	}
	discard(pending, nil)
	discard(done, nil)
	discard(done, &core.Response{Status: 201, Header: http.Header{"A": {"2"}}, Body: []byte("x")})
	if c, err := s.Claim(ctx, claimReq(pending)); err != nil || c.Status != core.ClaimInFlight {
		t.Errorf("Claim of a pending key after Discard = %v, %v; want in flight", c.Status, err)
	}
	// A pending claim without an expiry could never lapse: it goes.
	if err := client.Persist(ctx, s.recordKey(pending)).Err(); err != nil {
		t.Fatal(err)
	}
	discard(pending, nil)
	if c, err := s.Claim(ctx, claimReq(pending)); err != nil || c.Status != core.ClaimAcquired {
		t.Errorf("Claim after discarding a pending claim without an expiry = %v, %v; want acquired", c.Status, err)
	}
	c, err := s.Claim(ctx, claimReq(done))
	if err != nil || c.Status != core.ClaimReplay {
		t.Fatalf("Claim of a completed key after Discard = %v, %v; want a replay", c.Status, err)
	}
	discard(done, c.Response)
	if c, err := s.Claim(ctx, claimReq(done)); err != nil || c.Status != core.ClaimAcquired {
		t.Errorf("Claim after discarding the response it replayed = %v, %v; want acquired", c.Status, err)
	}
}
