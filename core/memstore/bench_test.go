package memstore_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// storageKeys returns n distinct keys shaped like the engine's (64 hex
// characters).
func storageKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064x", i)
	}
	return keys
}

// BenchmarkNewKey is a claim and a completion of a fresh key per op, the
// store's share of a first request. The store grows by one record per op,
// as it does until the first records expire.
func BenchmarkNewKey(b *testing.B) {
	st := memstore.New(memstore.WithMaxEntries(max(b.N, 1)))
	defer st.Close()
	keys := storageKeys(b.N)
	h := http.Header{"Content-Type": {"application/json"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c, err := st.Claim(bg, core.ClaimRequest{Key: keys[i], Token: "t", Lease: time.Minute})
		if err != nil || c.Status != core.ClaimAcquired {
			b.Fatalf("Claim: %+v, %v", c, err)
		}
		if err := st.Complete(bg, keys[i], "t", &core.Response{Status: 201, Header: h, Body: []byte(`{}`)}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplay claims completed keys (1000 of them, in turn): a
// replay's store lookup.
func BenchmarkReplay(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	keys := storageKeys(1000)
	for _, k := range keys {
		if _, err := st.Claim(bg, core.ClaimRequest{Key: k, Token: "t", Lease: time.Minute}); err != nil {
			b.Fatal(err)
		}
		if err := st.Complete(bg, k, "t", &core.Response{Status: 201, Body: []byte(`{}`)}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c, err := st.Claim(bg, core.ClaimRequest{Key: keys[i%len(keys)], Token: "u", Lease: time.Minute})
		if err != nil || c.Status != core.ClaimReplay {
			b.Fatalf("Claim: %+v, %v", c, err)
		}
	}
}

// BenchmarkEvict is a claim and a completion of a fresh key per op in a
// full store (1024 records): every claim evicts a completed record early.
func BenchmarkEvict(b *testing.B) {
	const bound = 1024
	st := memstore.New(memstore.WithMaxEntries(bound))
	defer st.Close()
	keys := storageKeys(bound + b.N)
	h := http.Header{"Content-Type": {"application/json"}}
	resp := &core.Response{Status: 201, Header: h, Body: []byte(`{}`)}
	for _, k := range keys[:bound] {
		if _, err := st.Claim(bg, core.ClaimRequest{Key: k, Token: "t", Lease: time.Minute}); err != nil {
			b.Fatal(err)
		}
		if err := st.Complete(bg, k, "t", resp, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := keys[bound+i]
		c, err := st.Claim(bg, core.ClaimRequest{Key: k, Token: "t", Lease: time.Minute})
		if err != nil || c.Status != core.ClaimAcquired {
			b.Fatalf("Claim: %+v, %v", c, err)
		}
		if err := st.Complete(bg, k, "t", resp, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
