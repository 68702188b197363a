package matrix

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/idemkit/idemkit/core"
)

// TestWrongNativeType mounts, in every adapter, an engine whose scope,
// skip or route-options function reads another framework's request type
// (gin's in every adapter but gin, net/http's in gin). Such an engine must
// not serve: a scope that cannot be read would put every client in one
// key space (docs/contract.md, Scopes), a skip that cannot be read would
// guard what it should not, route options that cannot be read would apply
// the wrong retention. (The adapters' Scope, Skip and RouteOptions helpers
// that core.ScopeBy, SkipBy and RouteOptionsBy replace did exactly that:
// client b got client a's response replayed.)
func TestWrongNativeType(t *testing.T) {
	type helpers struct{ scope, skip, route core.Option }
	gins := helpers{
		core.ScopeBy(func(c *gin.Context) string { return c.GetHeader("X-Client") }),
		core.SkipBy(func(c *gin.Context) bool { return false }),
		core.RouteOptionsBy(func(c *gin.Context) core.RouteOptions { return core.RouteOptions{} }),
	}
	https := helpers{
		core.ScopeBy(func(r *http.Request) string { return r.Header.Get("X-Client") }),
		core.SkipBy(func(r *http.Request) bool { return false }),
		core.RouteOptionsBy(func(r *http.Request) core.RouteOptions { return core.RouteOptions{} }),
	}
	for _, a := range adapters {
		wrong := gins
		if a.name == "gin" {
			wrong = https
		}
		for _, opt := range []struct {
			name string
			o    core.Option
		}{{"scope", wrong.scope}, {"skip", wrong.skip}, {"route", wrong.route}} {
			t.Run("adapter="+a.name+"/"+opt.name, func(t *testing.T) {
				t.Parallel()
				var runs atomic.Int64
				app := countingApp(&runs)
				store := newMemStore(t)
				base := a.new(t, core.New(store, opt.o), app)
				for _, client := range []string{"a", "b"} {
					req, _ := http.NewRequest(http.MethodPost, base+"/orders", strings.NewReader(`{}`))
					req.Header.Set(core.KeyHeader, "shared-key")
					req.Header.Set("X-Client", client)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatalf("POST: %v", err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != "application/problem+json" ||
						!strings.Contains(string(body), `"code":"misconfigured"`) {
						t.Errorf("client %s: %d %q (replayed %q); want 500 problem+json misconfigured: a function that cannot read the request must refuse it",
							client, resp.StatusCode, body, resp.Header.Get(core.DefaultReplayHeader))
					}
				}
				if n := runs.Load(); n != 0 {
					t.Errorf("handler ran %d times; want 0", n)
				}
			})
		}
	}
}
