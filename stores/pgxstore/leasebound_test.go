package pgxstore

import (
	"errors"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// TestClaimImplausibleLease: a pending row whose lease ends further ahead
// than any live holder could have set (beyond the claim's lease plus the
// lease tolerance) counts as lapsed, so a claim takes it over instead of
// answering "in flight" until the year 3000; a row within the tolerance (a
// holder configured with a longer lease) is still in flight, with a
// Retry-After no longer than the claim's own lease. Rows written by hand.
func TestClaimImplausibleLease(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := newTestDB(t, 4)
	s := db.store(WithLeaseTolerance(10 * time.Minute))
	insert := func(t *testing.T, req core.ClaimRequest, leaseEnd string) {
		t.Helper()
		_, err := db.pool.Exec(ctx, `INSERT INTO `+db.table()+` (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
			VALUES ($1, $2, 'pending', 'stuck-holder', `+leaseEnd+`, `+leaseEnd+`)`, req.Key, req.Fingerprint[:])
		if err != nil {
			t.Fatalf("inserting a pending row leased until %s: %v", leaseEnd, err)
		}
	}
	for _, tc := range []struct{ name, leaseEnd string }{
		{"Year3000", `'3000-01-01T00:00:00Z'`},
		{"Infinity", `'infinity'`},
		{"BeyondTolerance", `now() + interval '30 seconds' + interval '11 minutes'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := claimReq(t, "")
			insert(t, req, tc.leaseEnd)
			c, err := s.Claim(ctx, req)
			if err != nil || c.Status != core.ClaimAcquired {
				t.Fatalf("Claim over a row leased until %s = %v (retry after %v), %v; want acquired: no live holder can have such a lease",
					tc.leaseEnd, c.Status, c.RetryAfter, err)
			}
			c = mustClaim(t, s, again(req), core.ClaimInFlight)
			if c.RetryAfter <= 25*time.Second || c.RetryAfter > 30*time.Second {
				t.Errorf("after the takeover: RetryAfter %v; want the taker's lease, about 30s", c.RetryAfter)
			}
			if err := s.Complete(ctx, req.Key, "stuck-holder", &core.Response{Status: 200}, time24h); !errors.Is(err, core.ErrLeaseLost) {
				t.Errorf("Complete by the stuck row's token: %v; want ErrLeaseLost", err)
			}
			if err := s.Complete(ctx, req.Key, req.Token, &core.Response{Status: 201}, time24h); err != nil {
				t.Errorf("Complete by the taker: %v", err)
			}
		})
	}
	t.Run("WithinTolerance", func(t *testing.T) {
		req := claimReq(t, "")
		insert(t, req, `now() + interval '30 seconds' + interval '9 minutes'`)
		c := mustClaim(t, s, req, core.ClaimInFlight)
		if c.RetryAfter <= 0 || c.RetryAfter > req.Lease {
			t.Errorf("in flight behind a longer lease: RetryAfter %v; want at most the claim's lease %v", c.RetryAfter, req.Lease)
		}
		other := again(req)
		other.Fingerprint[0] ^= 1
		mustClaim(t, s, other, core.ClaimMismatch)
	})
}
