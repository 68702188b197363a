package conformance

import "github.com/idemkit/idemkit/core"

const ruleScope = "core.ClaimRequest.Scope describes the request; Key alone names the record (Store.Claim)"

// testClaimScoped: claims may carry a scope digest, as the engine's do when
// it has a scope function. The store accepts it, may use it (memstore
// shares its room between scopes), but never tells records apart by it.
func testClaimScoped(s *storeT) {
	scope, other := randHex(s.T, 16), randHex(s.T, 16)
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	expect := func(want core.ClaimStatus, key, scope string, tok core.Token) {
		s.Helper()
		c, err := s.st.Claim(s.ctx(), core.ClaimRequest{Key: key, Scope: scope, Fingerprint: fp, Token: tok, Lease: longLease})
		call := claimCall(key, fp, tok, longLease) + " with Scope " + short(scope)
		switch {
		case err != nil:
			s.Fatalf("%s error: %v; want nil", call, err)
		case c.Status != want:
			s.Errorf("%s = %v; want %v: %s", call, c.Status, want, ruleScope)
		}
	}
	expect(core.ClaimAcquired, key, scope, tok)
	expect(core.ClaimInFlight, key, other, s.newToken())
	expect(core.ClaimAcquired, s.newKey(), scope, s.newToken())
	s.complete(key, tok, sampleResponse("scoped"), longTTL)
	expect(core.ClaimReplay, key, scope, s.newToken())
	expect(core.ClaimReplay, key, other, s.newToken())
	expect(core.ClaimReplay, key, "", s.newToken())
}
