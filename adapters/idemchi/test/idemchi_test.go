package idemchi_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func newMemStore(t *testing.T) core.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{
		NewStore: newMemStore,
		NewServer: func(t *testing.T, engine *core.Engine, app http.Handler) string {
			r := chi.NewRouter()
			r.Use(idemchi.Middleware(engine))
			r.Handle("/*", app)
			srv := httptest.NewServer(r)
			t.Cleanup(srv.Close)
			return srv.URL
		},
	})
}

// TestRouteGroup checks the middleware guards only the group it is used in,
// and that URL parameters scope keys.
func TestRouteGroup(t *testing.T) {
	engine := core.New(newMemStore(t), idemchi.URLParamScope("tenant"))
	runs := map[string]int{}
	h := func(w http.ResponseWriter, r *http.Request) {
		runs[r.URL.Path]++
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, r.URL.Path)
	}
	r := chi.NewRouter()
	r.Post("/open", h)
	r.Route("/tenants/{tenant}", func(r chi.Router) {
		r.Use(idemchi.Middleware(engine))
		r.Post("/payments", h)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	post := func(path, key string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{}`))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("/open", ""); resp.StatusCode != http.StatusCreated {
		t.Errorf("unguarded route without key: status %d; want 201", resp.StatusCode)
	}
	if resp := post("/tenants/a/payments", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("guarded group without key: status %d; want 400", resp.StatusCode)
	}
	post("/tenants/a/payments", "k1")
	if resp := post("/tenants/a/payments", "k1"); resp.Header.Get("Idempotency-Replayed") != "true" {
		t.Errorf("tenant a retry not replayed")
	}
	if resp := post("/tenants/b/payments", "k1"); resp.Header.Get("Idempotency-Replayed") != "" || resp.StatusCode != http.StatusCreated {
		t.Errorf("tenant b, same key: status %d replayed %q; want a fresh 201 (scoped by URL param)", resp.StatusCode, resp.Header.Get("Idempotency-Replayed"))
	}
	if runs["/tenants/a/payments"] != 1 || runs["/tenants/b/payments"] != 1 {
		t.Errorf("runs %v; want one per tenant", runs)
	}
}

// TestOuterCompression puts chi's Compress middleware outside idemkit: the
// stored response is the uncompressed one, and each reply (first or
// replayed) is compressed on its way out with a matching Content-Encoding.
func TestOuterCompression(t *testing.T) {
	engine := core.New(newMemStore(t))
	r := chi.NewRouter()
	r.Use(middleware.Compress(5, "application/json"))
	r.Use(idemchi.Middleware(engine))
	runs := 0
	r.Post("/p", func(w http.ResponseWriter, r *http.Request) {
		runs++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"payload":"`+strings.Repeat("compressible ", 200)+`"}`)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	var bodies []string
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/p", strings.NewReader(`{}`))
		req.Header.Set("Idempotency-Key", `"gz-1"`)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("response %d: Content-Encoding %q; want gzip", i, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(zr)
		resp.Body.Close()
		bodies = append(bodies, string(b))
	}
	if bodies[0] != bodies[1] || !strings.HasPrefix(bodies[0], `{"payload"`) {
		t.Errorf("decompressed bodies differ or are wrong: %.40q vs %.40q", bodies[0], bodies[1])
	}
	if runs != 1 {
		t.Errorf("handler ran %d times; want 1", runs)
	}
}
