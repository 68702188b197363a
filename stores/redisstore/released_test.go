package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// TestLateCopyOfReleasedClaim plays the order a stalled Redis may choose
// when it runs again: the engine's Release of a claim that errored, then
// a copy of that claim that go-redis had re-sent. The copy must not hold
// the key for a lease nobody will release: it is refused, and another
// request claims the key at once. (Before the tombstone: the late copy
// acquired the key and a second request got in-flight for the whole
// lease.)
func TestLateCopyOfReleasedClaim(t *testing.T) {
	client := singleClient(t)
	ctx := context.Background()
	s := New(client, WithPrefix(uniquePrefix(t)))
	const lease = 30 * time.Second
	cases := []struct {
		name   string
		landed bool // the first copy of the claim landed before the Release
	}{
		{"ReleaseBeforeAnyCopy", false},
		{"ReleaseBetweenCopies", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, tok := newKey(t), newToken(t)
			if c.landed {
				claim(t, s, key, fp(1), tok, lease)
			}
			err := s.Release(ctx, key, tok)
			switch {
			case c.landed && err != nil:
				t.Fatalf("Release of the landed claim = %v; want nil", err)
			case !c.landed && !errors.Is(err, core.ErrLeaseLost):
				t.Fatalf("Release of a claim that has not landed = %v; want ErrLeaseLost", err)
			}
			if pttl := client.PTTL(ctx, s.recordKey(key)).Val(); pttl <= 0 || pttl > releasedFor {
				t.Errorf("PTTL of the released claim's tombstone = %v; want (0, %v]", pttl, releasedFor)
			}
			if got, err := s.Lookup(ctx, key, fp(1)); err != nil || got != (core.Cached{}) {
				t.Errorf("Lookup of a released key = %+v, %v; want a miss (zero Cached): nothing completed", got, err)
			}
			late, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp(1), Token: tok, Lease: lease})
			t.Logf("late copy of the released claim: %v, %v", late.Status, err)
			if err == nil && late.Status == core.ClaimAcquired {
				t.Errorf("a late copy of a released claim acquired the key; want it refused: nobody holds that token any more")
			}
			if err != nil && !errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf("late copy of a released claim = %v; want an error wrapping ErrStoreUnavailable", err)
			}
			next := newToken(t)
			if got := claim(t, s, key, fp(2), next, lease); got.Status != core.ClaimAcquired {
				t.Fatalf("Claim by another request after the release = %v (RetryAfter %v); want acquired at once", got.Status, got.RetryAfter)
			}
			for name, err := range map[string]error{
				"Complete": s.Complete(ctx, key, tok, sampleResponse(), time.Hour),
				"Renew":    s.Renew(ctx, key, tok, lease),
				"Release":  s.Release(ctx, key, tok),
			} {
				if !errors.Is(err, core.ErrLeaseLost) {
					t.Errorf("%s with the released token = %v; want ErrLeaseLost", name, err)
				}
			}
			if err := s.Complete(ctx, key, next, sampleResponse(), time.Hour); err != nil {
				t.Errorf("Complete by the new holder: %v", err)
			}
		})
	}
}
