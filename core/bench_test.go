package core_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// The core path with the memory store, against the bare handler: one
// Exchange per request, as an adapter would make.

var benchBody = []byte(`{"amount": 1200, "currency": "EUR"}`)

func benchHandler([]byte) (*core.Response, error) {
	return &core.Response{Status: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":"pay_1","amount":1200,"currency":"EUR"}`)}, nil
}

func BenchmarkCore(b *testing.B) {
	b.Run("Bare", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			x := newFake(`"k"`, "", benchHandler)
			x.body = benchBody
			resp, _ := x.handler(x.body)
			x.Send(resp)
		}
	})
	b.Run("NewKey", func(b *testing.B) {
		s := memstore.New(memstore.WithMaxEntries(b.N + 1024))
		defer s.Close()
		e := core.New(s)
		keys := make([]string, b.N)
		for i := range keys {
			keys[i] = "key-" + strconv.Itoa(i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			x := newFake(keys[i], "", benchHandler)
			x.body = benchBody
			e.Serve(x)
		}
	})
	b.Run("Replay", func(b *testing.B) {
		s := memstore.New()
		defer s.Close()
		benchReplay(b, core.New(s))
	})
	// ReplaySecret replays under an HMAC secret: the storage key is an
	// HMAC, and the record's MAC is verified and its field stripped.
	b.Run("ReplaySecret", func(b *testing.B) {
		s := memstore.New()
		defer s.Close()
		benchReplay(b, core.New(s, core.WithHMACSecret([]byte("bench secret"))))
	})
	b.Run("InFlight409", func(b *testing.B) {
		s := memstore.New()
		defer s.Close()
		e := core.New(s)
		// Hold the key: a handler that never returns during the benchmark.
		hold := make(chan struct{})
		started := make(chan struct{})
		go func() {
			x := newFake("k", "", func([]byte) (*core.Response, error) { close(started); <-hold; return benchHandler(nil) })
			x.body = benchBody
			e.Serve(x)
		}()
		<-started
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			x := newFake("k", "", benchHandler)
			x.body = benchBody
			e.Serve(x)
		}
		b.StopTimer()
		close(hold)
	})
	b.Run("Mismatch422", func(b *testing.B) {
		s := memstore.New()
		defer s.Close()
		e := core.New(s)
		x := newFake("k", "", benchHandler)
		x.body = benchBody
		e.Serve(x)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			x := newFake("k", "other", benchHandler)
			e.Serve(x)
		}
	})
}

// BenchmarkFingerprint is DefaultFingerprint on a typical API request (a
// small JSON body) and on a 4 KiB body.
func BenchmarkFingerprint(b *testing.B) {
	for _, size := range []int{len(benchBody), 4 << 10} {
		body := make([]byte, size)
		copy(body, benchBody)
		x := newFake("k", "", benchHandler)
		x.method, x.path = "POST", "/v1/payments"
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				core.DefaultFingerprint(x, body)
			}
		})
	}
}

func benchReplay(b *testing.B, e *core.Engine) {
	x := newFake("k", "", benchHandler)
	x.body = benchBody
	e.Serve(x)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := newFake("k", "", benchHandler)
		x.body = benchBody
		e.Serve(x)
	}
}
