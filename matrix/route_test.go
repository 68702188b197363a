package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gofiber/fiber/v2"
	"github.com/labstack/echo/v4"

	"github.com/idemkit/idemkit/core"
)

const (
	hdrSkip      = "X-Skip"    // the skip helpers leave a request with it unguarded
	pathOptional = "/optional" // the route options make the key optional there
)

// routeHelpers are core.SkipBy and core.RouteOptionsBy functions of each
// adapter's own request type.
var routeHelpers = map[string]func() []core.Option{
	"nethttp": netHTTPRouteHelpers,
	"chi":     netHTTPRouteHelpers, // chi's request is net/http's
	"gin": func() []core.Option {
		return []core.Option{
			core.SkipBy(func(c *gin.Context) bool { return c.GetHeader(hdrSkip) != "" }),
			core.RouteOptionsBy(func(c *gin.Context) core.RouteOptions { return optionalAt(c.Request.URL.Path) }),
		}
	},
	"echo": func() []core.Option {
		return []core.Option{
			core.SkipBy(func(c echo.Context) bool { return c.Request().Header.Get(hdrSkip) != "" }),
			core.RouteOptionsBy(func(c echo.Context) core.RouteOptions { return optionalAt(c.Request().URL.Path) }),
		}
	},
	"fiber": func() []core.Option {
		return []core.Option{
			core.SkipBy(func(c *fiber.Ctx) bool { return c.Get(hdrSkip) != "" }),
			core.RouteOptionsBy(func(c *fiber.Ctx) core.RouteOptions { return optionalAt(c.Path()) }),
		}
	},
}

func netHTTPRouteHelpers() []core.Option {
	return []core.Option{
		core.SkipBy(func(r *http.Request) bool { return r.Header.Get(hdrSkip) != "" }),
		core.RouteOptionsBy(func(r *http.Request) core.RouteOptions { return optionalAt(r.URL.Path) }),
	}
}

func optionalAt(path string) core.RouteOptions {
	if path == pathOptional {
		return core.RouteOptions{KeyRequired: core.KeyRequirementOptional}
	}
	return core.RouteOptions{}
}

// renderErr renders refusals as {"error": code}, with a header the
// engine keeps, and a Cache-Control it replaces.
func renderErr(_ core.Exchange, p core.Problem, _ time.Duration) *core.Response {
	return &core.Response{
		Status: p.Status,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Error-Format": {"app"}, "Cache-Control": {"public"}},
		Body:   []byte(`{"error":"` + p.Code + `"}`),
	}
}

// downStore fails every claim: every guarded request gets 503.
type downStore struct{ core.Store }

func (downStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{}, errors.New("matrix: store down")
}

// TestRouteControl checks, through every adapter, the skip helper (a
// skipped request runs unguarded, every time, even with a key), the route
// options helper (a key made optional on one route) and the problem
// renderer (refusals in the application's format, with Cache-Control:
// no-store and Retry-After kept).
func TestRouteControl(t *testing.T) {
	for _, a := range adapters {
		t.Run("adapter="+a.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int64
			app := countingApp(&runs)
			opts := append(routeHelpers[a.name](), core.WithProblemRenderer(renderErr), core.WithRetryAfter(2*time.Second))
			store := newMemStore(t)
			base := a.new(t, core.New(store, opts...), app)
			down := a.new(t, core.New(downStore{store}, opts...), app)

			type result struct {
				status int
				body   string
				header http.Header
			}
			post := func(base, path, key string, skip bool) result {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{}`))
				if key != "" {
					req.Header.Set(core.KeyHeader, key)
				}
				if skip {
					req.Header.Set(hdrSkip, "1")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("POST %s: %v", path, err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return result{resp.StatusCode, string(body), resp.Header}
			}

			key := "route-" + randHex(8)
			for i := range 2 {
				r := post(base, "/pay", key, true)
				if r.status != http.StatusCreated || r.body != fmt.Sprintf("run %d", i+1) || r.header.Get(core.DefaultReplayHeader) != "" {
					t.Errorf("skipped POST #%d with a key: %d %q replayed=%q; want 201 \"run %d\" not replayed: a skipped request passes through unguarded",
						i+1, r.status, r.body, r.header.Get(core.DefaultReplayHeader), i+1)
				}
			}
			if r := post(base, "/pay", "", true); r.status != http.StatusCreated {
				t.Errorf("skipped POST without a key: %d %q; want 201: a skipped request is not refused", r.status, r.body)
			}
			if r := post(base, pathOptional, "", false); r.status != http.StatusCreated {
				t.Errorf("POST %s without a key: %d %q; want 201: the route made the key optional", pathOptional, r.status, r.body)
			}

			check := func(what string, r result, status int, code, retryAfter string) {
				t.Helper()
				if r.status != status || r.body != `{"error":"`+code+`"}` {
					t.Errorf("%s: %d %q; want %d with the renderer's body for %s", what, r.status, r.body, status, code)
				}
				if ct, f := r.header.Get("Content-Type"), r.header.Get("X-Error-Format"); !strings.HasPrefix(ct, "application/json") || f != "app" {
					t.Errorf("%s: Content-Type %q, X-Error-Format %q; want the renderer's headers", what, ct, f)
				}
				if cc := r.header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
					t.Errorf("%s: Cache-Control %q; want exactly no-store: a refusal is never cached", what, cc)
				}
				if ra := r.header.Get("Retry-After"); ra != retryAfter {
					t.Errorf("%s: Retry-After %q; want %q", what, ra, retryAfter)
				}
			}
			check("POST without a key", post(base, "/pay", "", false), http.StatusBadRequest, core.CodeMissingKey, "")
			if r := post(base, "/pay", key, false); r.status != http.StatusCreated {
				t.Fatalf("guarded POST: %d %q; want 201", r.status, r.body)
			}
			req := func() result {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, base+"/pay", strings.NewReader(`{"other":1}`))
				req.Header.Set(core.KeyHeader, key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("POST: %v", err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return result{resp.StatusCode, string(body), resp.Header}
			}
			check("POST reusing a key with another body", req(), http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, "")
			check("POST with the store down", post(down, "/pay", "route-"+randHex(8), false), http.StatusServiceUnavailable, core.CodeStoreUnavailable, "2")
		})
	}
}
