package idemfiber

import (
	"net/http"
	"reflect"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

func fastResponse(fields ...string) *fasthttp.Response {
	r := fasthttp.AcquireResponse()
	r.SetStatusCode(201)
	for i := 0; i < len(fields); i += 2 {
		r.Header.Add(fields[i], fields[i+1])
	}
	r.SetBodyString(`{"id":1}`)
	return r
}

func mapID(h http.Header) uintptr { return reflect.ValueOf(h).Pointer() }

// TestHeaderSetsInterned: a header set seen twice in a row is interned and
// shared by later captures; the content is always the response's own.
func TestHeaderSetsInterned(t *testing.T) {
	fields := []string{"Content-Type", "application/x-intern-test", "X-Multi", "a", "X-Multi", "b"}
	want := http.Header{"Content-Type": {"application/x-intern-test"}, "X-Multi": {"a", "b"}}
	var got []http.Header
	for range 4 {
		r := fastResponse(fields...)
		out := copyResponse(r)
		fasthttp.ReleaseResponse(r)
		if !reflect.DeepEqual(out.Header, want) || string(out.Body) != `{"id":1}` || out.Status != 201 {
			t.Fatalf("copyResponse = %d %v %q; want 201 %v", out.Status, out.Header, out.Body, want)
		}
		got = append(got, out.Header)
	}
	if mapID(got[0]) == mapID(got[1]) {
		t.Errorf("the first two captures share a header map; want a set interned only on its second sighting")
	}
	if mapID(got[2]) != mapID(got[1]) || mapID(got[3]) != mapID(got[1]) {
		t.Errorf("captures after the second do not share the interned header map")
	}
}

// TestHeaderSetsDistinct: sets that differ in a value, in the number of
// fields or in how bytes split between names and values never share.
func TestHeaderSetsDistinct(t *testing.T) {
	sets := [][]string{
		{"Content-Type", "text/x-distinct", "X-A", "1"},
		{"Content-Type", "text/x-distinct", "X-A", "2"},
		{"Content-Type", "text/x-distinct", "X-A", "1", "X-B", "1"},
		{"Content-Type", "text/x-distinct", "X-A1", ""},
	}
	for range 3 { // every set is seen repeatedly, so each gets interned
		for _, fields := range sets {
			r := fastResponse(fields...)
			out := copyResponse(r)
			fasthttp.ReleaseResponse(r)
			want := http.Header{}
			for i := 0; i < len(fields); i += 2 {
				want[fields[i]] = append(want[fields[i]], fields[i+1])
			}
			if !reflect.DeepEqual(out.Header, want) {
				t.Fatalf("copyResponse(%q) header = %v; want %v", fields, out.Header, want)
			}
		}
	}
}

// TestHeaderSetsConcurrent captures the same and different sets from many
// goroutines (run with -race): every capture carries its own content.
func TestHeaderSetsConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			v := []string{"x", "y"}[g%2]
			want := http.Header{"Content-Type": {"application/x-concurrent"}, "X-V": {v}}
			for range 500 {
				r := fastResponse("Content-Type", "application/x-concurrent", "X-V", v)
				out := copyResponse(r)
				fasthttp.ReleaseResponse(r)
				if !reflect.DeepEqual(out.Header, want) {
					t.Errorf("header = %v; want %v", out.Header, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
