package idemchi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
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
