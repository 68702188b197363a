package core

import (
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/idemkit/idemkit/core/internal/wire"
)

// TestCanonicalFieldName checks the one-pass canonical form against
// http.CanonicalHeaderKey over random names of token and other bytes.
func TestCanonicalFieldName(t *testing.T) {
	alphabet := "aZ-x_09!~" + "Content-Type" + " :\r\x00\xff"
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		name := string(b)
		got, ok := canonicalFieldName(name)
		if ok != wire.ValidFieldName(name) {
			t.Fatalf("canonicalFieldName(%q) ok = %v; want %v", name, ok, !ok)
		}
		if ok && got != http.CanonicalHeaderKey(name) {
			t.Fatalf("canonicalFieldName(%q) = %q; want %q", name, got, http.CanonicalHeaderKey(name))
		}
	}
}

type nopStore struct{ Store }

// BenchmarkVet is the replay's validation of a record of one field that
// needs no filtering.
func BenchmarkVet(b *testing.B) {
	e := New(nopStore{})
	resp := &Response{Status: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte("x")}
	slot := new(tokenSlot)
	b.ReportAllocs()
	for b.Loop() {
		e.vet(resp, "k", Fingerprint{}, slot)
	}
}
