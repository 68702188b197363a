package service

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// healthz asks the /healthz handler of engine and returns its status and
// decoded body.
func healthz(t *testing.T, engine *core.Engine) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	Healthz(engine)(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("/healthz body %q: %v", rec.Body, err)
	}
	return rec.Code, body
}

// TestHealthzStoreStopped: /healthz answers 200 while the store serves,
// and 503 with a problem body naming the failing part once its Redis is
// stopped; a tiered store whose Redis is stopped still serves from
// Postgres, so it answers 200, degraded.
func TestHealthzStoreStopped(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"redis", "tiered"} {
		t.Run(name, func(t *testing.T) {
			if name == "tiered" {
				if _, err := env("IDEMKIT_POSTGRES_URL"); err != nil {
					if v := strings.TrimSpace(os.Getenv("IDEMKIT_REQUIRE_SERVICES")); v != "" && v != "0" && v != "false" {
						t.Fatalf("required service unavailable: %v", err)
					}
					t.Skipf("skipped: %v", err)
				}
			}
			url, stop := startRedisProc(t)
			t.Setenv("IDEMKIT_REDIS_URL", url)
			store, closeStore, err := OpenStore(ctx, name, nil)
			if err != nil {
				t.Fatalf("OpenStore(%s): %v", name, err)
			}
			defer closeStore()
			engine := core.New(store)
			if code, body := healthz(t, engine); code != http.StatusOK || body["status"] != "ok" {
				t.Fatalf("/healthz with the store up = %d %v; want 200 ok", code, body)
			}
			stop()
			code, body := healthz(t, engine)
			switch name {
			case "redis":
				detail, _ := body["detail"].(string)
				if code != http.StatusServiceUnavailable || body["code"] != core.CodeStoreUnavailable || !strings.Contains(strings.ToLower(detail), "redis") {
					t.Errorf("/healthz with Redis stopped = %d %v; want 503 with a problem body naming Redis", code, body)
				}
			case "tiered":
				if code != http.StatusOK || body["status"] != "degraded" {
					t.Errorf("/healthz of a tiered store with Redis stopped = %d %v; want 200 degraded (Postgres still serves)", code, body)
				}
			}
		})
	}
}
