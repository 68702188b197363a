package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// TestImpossiblePendingRecord writes, in the store's own layout, pending
// records that no claim can have made: one without an expiry (PTTL -1)
// and one whose lease runs for years. Each is claimable as a lapsed lease,
// not an in-flight claim that sends every retry back a second later,
// forever. A pending record with a lease within the store's bound stays
// in flight.
func TestImpossiblePendingRecord(t *testing.T) {
	client := singleClient(t)
	ctx := context.Background()
	s := New(client, WithPrefix(uniquePrefix(t)))
	f := fp(1)
	cases := []struct {
		name     string
		ttl      time.Duration // 0: no expiry
		want     core.ClaimStatus
		otherFP  bool
		wantRule string
	}{
		{"NoExpiry", 0, core.ClaimAcquired, false, "a pending record without an expiry has no live lease"},
		{"NoExpiryOtherPayload", 0, core.ClaimAcquired, true, "an impossible record is replaced whatever its payload"},
		{"LeaseOfYears", 10 * 365 * 24 * time.Hour, core.ClaimAcquired, false, "a lease longer than any claim can ask is no live lease"},
		{"LeaseWithinBound", time.Hour, core.ClaimInFlight, false, "a possible lease is still in flight"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := newKey(t)
			holder := newToken(t)
			if err := client.Set(ctx, s.recordKey(key), string(statePending)+string(f[:])+string(holder), c.ttl).Err(); err != nil {
				t.Fatal(err)
			}
			claimFP := f
			if c.otherFP {
				claimFP = fp(2)
			}
			tok := newToken(t)
			got := claim(t, s, key, claimFP, tok, 10*time.Second)
			if got.Status != c.want {
				t.Fatalf("Claim on a pending record with ttl %v = %v (RetryAfter %v); want %v: %s",
					c.ttl, got.Status, got.RetryAfter, c.want, c.wantRule)
			}
			if c.want != core.ClaimAcquired {
				return
			}
			if pttl := client.PTTL(ctx, s.recordKey(key)).Val(); pttl <= 0 || pttl > 10*time.Second {
				t.Errorf("PTTL after the takeover = %v; want the new claim's lease, in (0, 10s]", pttl)
			}
			if err := s.Complete(ctx, key, tok, sampleResponse(), time.Hour); err != nil {
				t.Errorf("Complete by the new holder: %v", err)
			}
		})
	}
}
