package codec_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/idemkit/idemkit/core/codec"
)

func TestHeaderSets(t *testing.T) {
	var s codec.HeaderSets
	key := []byte("Content-Type: application/json")
	if h, keep := s.Lookup(key); h != nil || keep {
		t.Fatalf("first lookup: %v, keep %v; want nil, false", h, keep)
	}
	h, keep := s.Lookup(key)
	if h != nil || !keep {
		t.Fatalf("second lookup: %v, keep %v; want nil, true", h, keep)
	}
	want := http.Header{"Content-Type": {"application/json"}}
	s.Keep(key, want)
	key[0] = 'X' // Keep copied the key: the caller's buffer is its own again
	got, _ := s.Lookup([]byte("Content-Type: application/json"))
	if got == nil || got["Content-Type"][0] != "application/json" {
		t.Fatalf("lookup after Keep: %v; want the kept header", got)
	}
	got["X-Probe"] = nil // same map, not a copy
	if _, ok := want["X-Probe"]; !ok {
		t.Error("Lookup returned a copy of the kept header; want the kept map itself")
	}
	if h, _ := s.Lookup(key); h != nil {
		t.Errorf("lookup of other bytes: %v; want nil", h)
	}
}

func TestHeaderSetsConcurrent(t *testing.T) {
	var s codec.HeaderSets
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := keys[(g+i)%len(keys)]
				h, keep := s.Lookup(k)
				if h != nil && h.Get("K") != string(k) {
					t.Errorf("lookup of %q returned the header of %q", k, h.Get("K"))
					return
				}
				if keep {
					s.Keep(k, http.Header{"K": {string(k)}})
				}
			}
		})
	}
	wg.Wait()
}
