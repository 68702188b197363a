package core_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// FuzzFingerprint checks DefaultFingerprint and CanonicalQuery on any
// method, path, query and body: they never panic; equal inputs give equal
// fingerprints, whatever was hashed in between (the hasher is pooled);
// the order of parameters with different names, and the escaping of the
// query, change nothing; canonicalising twice is canonicalising once.
func FuzzFingerprint(f *testing.F) {
	f.Add("POST", "/payments", "b=2&a=1", []byte(`{"amount":1}`))
	f.Add("PUT", "/a/b", "a=1&a=2&b=%32", []byte{})
	f.Add("POST", "/", "q=a+b&q=a%20b;x", []byte{0, 1, 2})
	f.Add("PATCH", "/x", "bad=%zz&a=1", bytes.Repeat([]byte("z"), 600))
	f.Add("DELETE", "/x", "path=/a/b&t=é", []byte(nil))
	f.Add("POST", "/x", "a=b=c", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		fp := func(method, path, query string, body []byte) core.Fingerprint {
			x := newFake("", "", nil)
			x.method, x.path, x.query = method, path, query
			return core.DefaultFingerprint(x, body)
		}
		want := fp(method, path, query, body)
		fp("GET", path+"/other", query+"&z=1", append(slices.Clone(body), 'x'))
		if got := fp(method, path, query, bytes.Clone(body)); got != want {
			t.Fatalf("the same request fingerprinted twice: %x, then %x", want, got)
		}

		canon := core.CanonicalQuery(query)
		if again := core.CanonicalQuery(canon); again != canon {
			t.Fatalf("CanonicalQuery(%q) = %q, but CanonicalQuery of that = %q: not canonical", query, canon, again)
		}
		if !parses(query) {
			return // a query that does not parse is hashed as received
		}
		if got := fp(method, path, canon, body); got != want {
			t.Fatalf("query %q and its canonical form %q fingerprint differently", query, canon)
		}
		// Reorder the parameters: a stable sort by name, descending, keeps
		// the order of repeated names (which is meaningful) and moves the
		// others.
		parts := queryParts(query)
		slices.SortStableFunc(parts, func(a, b string) int { return strings.Compare(paramName(b), paramName(a)) })
		if moved := strings.Join(parts, "&"); fp(method, path, moved, body) != want {
			t.Fatalf("query %q reordered as %q fingerprints differently (canonical %q and %q)",
				query, moved, canon, core.CanonicalQuery(moved))
		}
	})
}

// queryParts splits a query into its non-empty parameters.
func queryParts(q string) []string {
	var parts []string
	for p := range strings.SplitSeq(q, "&") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

func paramName(p string) string {
	k, _, _ := strings.Cut(p, "=")
	name, _ := queryUnescape(k)
	return name
}

// parses reports whether every name and value of q unescapes.
func parses(q string) bool {
	for _, p := range queryParts(q) {
		k, v, _ := strings.Cut(p, "=")
		if _, ok := queryUnescape(k); !ok {
			return false
		}
		if _, ok := queryUnescape(v); !ok {
			return false
		}
	}
	return true
}

func queryUnescape(s string) (string, bool) {
	u, err := url.QueryUnescape(s)
	return u, err == nil
}

// replayStore answers every claim with one stored response: a record
// anyone able to write to the backend could have put there. It has no
// Discarder, so the engine refuses a corrupt record with 503.
type replayStore struct {
	core.Store
	resp *core.Response
}

func (s replayStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{Status: core.ClaimReplay, Response: s.resp}, nil
}

// fuzzResponse builds a stored response from fuzz input: the status as
// given, and header fields from hdr, split on 0xFF into name, value, name,
// value…, so that names and values may hold any byte (CR, LF, NUL, ':').
func fuzzResponse(status int, hdr, body []byte, omitted bool) *core.Response {
	h := http.Header{}
	fields := bytes.Split(hdr, []byte{0xFF})
	for i := 0; i+1 < len(fields); i += 2 {
		name := string(fields[i])
		h[name] = append(h[name], string(fields[i+1]))
	}
	return &core.Response{Status: status, Header: h, Body: body, BodyOmitted: omitted}
}

// FuzzReplayRecord feeds arbitrary stored records to the engine as
// replays: it never panics, never modifies the stored record, and either
// replays a final status (200–599) with header fields that may be sent —
// token names, values without CR, LF or NUL, no Set-Cookie, no hop-by-hop
// field, no field the record's Connection names — or refuses the record
// with 503 store-unavailable, never running the handler.
func FuzzReplayRecord(f *testing.F) {
	join := func(fields ...string) []byte { return []byte(strings.Join(fields, "\xff")) }
	f.Add(201, join("Content-Type", "text/plain", "Location", "/p/1"), []byte("made"), false)
	f.Add(200, join("Set-Cookie", "s=1", "set-cookie", "t=2", "SET-COOKIE", "u=3"), []byte("x"), false)
	f.Add(200, join("Connection", "X-Secret, keep-alive", "X-Secret", "1", "Keep-Alive", "timeout=5", "Transfer-Encoding", "chunked"), []byte{}, false)
	f.Add(200, join("proxy-authenticate", "Basic", "te", "trailers", "Upgrade", "h2c", "Trailer", "X"), []byte(nil), false)
	f.Add(101, join("Upgrade", "websocket"), []byte(nil), false)
	f.Add(600, []byte(nil), []byte("x"), false)
	f.Add(-1, []byte(nil), []byte(nil), false)
	f.Add(200, join("Location", "/a\r\nSet-Cookie: s=1"), []byte(nil), false)
	f.Add(200, join("Set-Cookie: s=1\r\nX", "1"), []byte(nil), false)
	f.Add(200, join("Content-Length", "4", "Idemkit-Record-Mac", "abc"), []byte(nil), true)
	f.Fuzz(func(t *testing.T, status int, hdr, body []byte, omitted bool) {
		stored := fuzzResponse(status, hdr, body, omitted)
		before := fuzzResponse(status, hdr, body, omitted)
		e := core.New(replayStore{resp: stored})
		x := newFake("k", "b", created)
		x.cloneHeader = true
		e.Serve(x)
		if !reflect.DeepEqual(stored, before) {
			t.Fatalf("the engine modified the stored record: %+v, was %+v", stored, before)
		}
		if x.runs != 0 {
			t.Fatalf("the handler ran on a replay answer")
		}
		sent := x.sent
		if sent == nil {
			t.Fatalf("nothing sent")
		}
		if !replayed(x) {
			if sent.Status != http.StatusServiceUnavailable {
				t.Fatalf("record %+v refused with %d; want 503", stored, sent.Status)
			}
			return
		}
		if sent.Status < 200 || sent.Status > 599 {
			t.Fatalf("replayed status %d", sent.Status)
		}
		if sent.Status != status {
			t.Fatalf("replayed status %d of a record with %d", sent.Status, status)
		}
		var named []string // the fields the stored Connection names
		for name, vals := range stored.Header {
			if http.CanonicalHeaderKey(name) == "Connection" {
				for _, v := range vals {
					for tok := range strings.SplitSeq(v, ",") {
						named = append(named, http.CanonicalHeaderKey(strings.Trim(tok, " \t")))
					}
				}
			}
		}
		for name, vals := range sent.Header {
			c := http.CanonicalHeaderKey(name)
			if !validToken(name) {
				t.Fatalf("replayed a field name that is not a token: %q", name)
			}
			for _, v := range vals {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("replayed field %s with CR, LF or NUL: %q", name, v)
				}
			}
			switch c {
			case "Set-Cookie", "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
				"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", core.RecordMACHeader:
				t.Fatalf("replayed field %s (%q)", name, vals)
			}
			if slices.Contains(named, c) {
				t.Fatalf("replayed field %s, which the record's Connection names", name)
			}
			if omitted && c == "Content-Length" {
				t.Fatalf("replayed Content-Length with the body omitted")
			}
		}
		if omitted {
			if len(sent.Body) != 0 {
				t.Fatalf("replayed %d body bytes of a record whose body was omitted", len(sent.Body))
			}
		} else if !bytes.Equal(sent.Body, body) {
			t.Fatalf("replayed body %q; stored %q", sent.Body, body)
		}
	})
}

// validToken reports whether name is an RFC 9110 token.
func validToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
