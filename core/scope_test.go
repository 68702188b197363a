package core_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// scopeSpy is a memstore that records each Claim's Scope.
type scopeSpy struct {
	*memstore.Store
	mu     sync.Mutex
	scopes []string
}

func (s *scopeSpy) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	s.mu.Lock()
	s.scopes = append(s.scopes, req.Scope)
	s.mu.Unlock()
	return s.Store.Claim(ctx, req)
}

// TestClaimRequestScope checks what a store learns of the scope: nothing
// without a scope function; otherwise 32 hex characters, the same for
// every key of one scope, different between scopes and under a secret,
// never the scope itself.
func TestClaimRequestScope(t *testing.T) {
	scopes := func(opts ...core.Option) []string {
		spy := &scopeSpy{Store: newStore(t)}
		e := core.New(spy, opts...)
		for _, r := range []struct{ tenant, key string }{{"tenant-a", "k1"}, {"tenant-a", "k2"}, {"tenant-b", "k1"}} {
			x := newFake(r.key, "", created)
			x.header.Set("X-Tenant", r.tenant)
			e.Serve(x)
		}
		return spy.scopes
	}
	if got := scopes(); strings.Join(got, "") != "" || len(got) != 3 {
		t.Errorf("Scope without a scope function = %q; want three empty scopes", got)
	}
	plain := scopes(core.WithHeaderScope("X-Tenant"))
	keyed := scopes(core.WithHeaderScope("X-Tenant"), core.WithHMACSecret([]byte("secret")))
	for _, got := range [][]string{plain, keyed} {
		if len(got) != 3 || got[0] != got[1] || got[0] == got[2] {
			t.Errorf("Scope of (a,k1), (a,k2), (b,k1) = %q; want one scope for a's keys, another for b's", got)
			continue
		}
		for _, s := range got {
			if len(s) != 32 || strings.Trim(s, "0123456789abcdef") != "" || strings.Contains(s, "tenant") {
				t.Errorf("Scope %q; want 32 lower-case hex characters, not the scope", s)
			}
		}
	}
	if len(plain) == 3 && len(keyed) == 3 && (plain[0] == keyed[0] || plain[2] == keyed[2]) {
		t.Errorf("Scope with a secret %q equals Scope without %q; want HMAC under the secret", keyed, plain)
	}
}
