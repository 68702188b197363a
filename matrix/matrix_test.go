package matrix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/gofiber/fiber/v2"
	fiberrecover "github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
)

func init() { gin.SetMode(gin.TestMode) }

type newServer = func(t *testing.T, engine *core.Engine, app http.Handler) string

func serve(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// adapters mount the suite's app behind each adapter, with the framework's
// own panic recovery outside the middleware.
var adapters = []struct {
	name string
	new  newServer
}{
	{"nethttp", func(t *testing.T, e *core.Engine, app http.Handler) string {
		return serve(t, idemhttp.Middleware(e)(app))
	}},
	{"chi", func(t *testing.T, e *core.Engine, app http.Handler) string {
		r := chi.NewRouter()
		r.Use(idemchi.Middleware(e))
		r.Handle("/*", app)
		return serve(t, r)
	}},
	{"gin", func(t *testing.T, e *core.Engine, app http.Handler) string {
		r := gin.New()
		r.Use(gin.RecoveryWithWriter(io.Discard), idemgin.Middleware(e))
		r.Any("/*path", gin.WrapH(app))
		return serve(t, r)
	}},
	{"echo", func(t *testing.T, e *core.Engine, app http.Handler) string {
		ec := echo.New()
		ec.HideBanner, ec.HidePort = true, true
		ec.Logger.SetOutput(io.Discard)
		ec.Use(echomw.RecoverWithConfig(echomw.RecoverConfig{DisablePrintStack: true}), idemecho.Middleware(e))
		ec.Any("/*", echo.WrapHandler(app))
		return serve(t, ec)
	}},
	{"fiber", func(t *testing.T, e *core.Engine, app http.Handler) string {
		f := fiber.New(fiber.Config{DisableStartupMessage: true})
		f.Use(fiberrecover.New(), idemfiber.Middleware(e))
		f.All("/*", idemfiber.HTTPHandler(app))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		go f.Listener(ln)
		t.Cleanup(func() { f.ShutdownWithTimeout(5 * time.Second) })
		return "http://" + ln.Addr().String()
	}},
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// backends holds the servers every cell shares; each subtest gets its own
// key space (a Redis prefix; random keys in one Postgres schema). A server
// that cannot be reached is nil: its cells skip, and the memory cells run.
type backends struct {
	redis  *redis.Client
	pg     *pgxstore.Store
	pool   *pgxpool.Pool // pg's pool, and the schema its table lives in
	schema string
}

// connect reaches each server in a subtest of its own (TestMatrix/backends/…),
// which skips when the server is missing, or fails when
// IDEMKIT_REQUIRE_SERVICES=1, without stopping the other cells. What it
// opens is closed when top ends.
func connect(top *testing.T) *backends {
	b := &backends{}
	top.Run("backends/redis", func(t *testing.T) { b.redis = connectRedis(t, top) })
	top.Run("backends/postgres", func(t *testing.T) { b.pg, b.pool, b.schema = connectPostgres(t, top) })
	return b
}

func connectRedis(t, top *testing.T) *redis.Client {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt, err := redis.ParseURL(svctest.RedisURL(t))
	if err != nil {
		t.Fatalf("redis URL: %v", err)
	}
	opt.ContextTimeoutEnabled, opt.PoolSize = true, 64
	rc := redis.NewClient(opt)
	top.Cleanup(func() { rc.Close() })
	if err := rc.Ping(ctx).Err(); err != nil {
		svctest.Unavailable(t, "Redis at %s: %v", opt.Addr, err)
	}
	return rc
}

func connectPostgres(t, top *testing.T) (*pgxstore.Store, *pgxpool.Pool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(svctest.PostgresURL(t))
	if err != nil {
		t.Fatalf("postgres URL: %v", err)
	}
	cfg.MaxConns = 16 // every cell shares it; keeps `make test` under max_connections
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgxpool: %v", err)
	}
	top.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		svctest.Unavailable(t, "PostgreSQL: %v", err)
	}
	schema := "idemkit_matrix_" + randHex(6)
	top.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(schema)); err != nil {
		t.Fatalf("EnsureSchema: %v", err)
	}
	return pgxstore.New(pool, pgxstore.WithSchema(schema)), pool, schema
}

func (b *backends) stores() []struct {
	name string
	new  conformance.NewStoreFunc
} {
	redisStore := func(t *testing.T) *redisstore.Store {
		return redisstore.New(b.redis, redisstore.WithPrefix("idemmatrix:"+randHex(8)+":"))
	}
	// needs skips a cell whose server was not reached; TestMatrix/backends
	// has already failed when the servers are required.
	needs := func(t *testing.T, redis, pg bool) {
		if redis && b.redis == nil || pg && b.pg == nil {
			t.Skip("skipped: a server this cell needs was not reached (see TestMatrix/backends)")
		}
	}
	return []struct {
		name string
		new  conformance.NewStoreFunc
	}{
		{"memory", func(t *testing.T) core.Store {
			s := memstore.New()
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"redis", func(t *testing.T) core.Store { needs(t, true, false); return redisStore(t) }},
		{"postgres", func(t *testing.T) core.Store { needs(t, false, true); return b.pg }},
		{"tiered", func(t *testing.T) core.Store { needs(t, true, true); return tieredstore.New(redisStore(t), b.pg) }},
	}
}

// TestMatrix runs conformance.TestMiddleware for every adapter × store
// cell. A cell whose servers are missing skips (the memory cells run
// without any), and TestMatrix/backends fails instead when
// IDEMKIT_REQUIRE_SERVICES=1.
func TestMatrix(t *testing.T) {
	b := connect(t)
	for _, a := range adapters {
		for _, s := range b.stores() {
			t.Run("adapter="+a.name+"/store="+s.name, func(t *testing.T) {
				conformance.TestMiddleware(t, conformance.Harness{NewStore: s.new, NewServer: a.new})
			})
		}
	}
}
