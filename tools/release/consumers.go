package main

import "strings"

// consumer is a tiny service a user could write with one adapter and one
// store, fetched from the proxy.
type consumer struct {
	Name      string   // "idemgin + redisstore"
	Modules   []string // the idemkit modules it gets, relative to repoPath
	Alone     []string // the framework and driver packages it imports
	AloneName string   // what Alone is, for the table
	Main      string   // main.go; replayed.go is replayedSource
}

func (c consumer) dirName() string {
	return strings.NewReplacer(" + ", "-", " ", "").Replace(c.Name)
}

var consumers = []consumer{
	{
		Name:      "idemhttp + memstore",
		Modules:   []string{"adapters/idemhttp", "core"},
		AloneName: "standard library",
		Main: `package main

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func main() {
	engine := core.New(memstore.New())
	var runs atomic.Int64
	srv := httptest.NewServer(idemhttp.Middleware(engine)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, ` + "`" + `{"run":%d}` + "`" + `, runs.Add(1))
	})))
	defer srv.Close()
	if err := replayed(srv.URL, http.DefaultClient.Do); err != nil {
		log.Fatal(err)
	}
}
`,
	},
	{
		Name:      "idemchi + memstore",
		Modules:   []string{"adapters/idemchi", "core"},
		Alone:     []string{"github.com/go-chi/chi/v5"},
		AloneName: "chi",
		Main: `package main

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/go-chi/chi/v5"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func main() {
	engine := core.New(memstore.New())
	var runs atomic.Int64
	r := chi.NewRouter()
	r.Use(idemchi.Middleware(engine))
	r.Post("/payments", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, ` + "`" + `{"run":%d}` + "`" + `, runs.Add(1))
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	if err := replayed(srv.URL, http.DefaultClient.Do); err != nil {
		log.Fatal(err)
	}
}
`,
	},
	{
		Name:      "idemgin + redisstore",
		Modules:   []string{"adapters/idemgin", "stores/redisstore", "core"},
		Alone:     []string{"github.com/gin-gonic/gin", "github.com/redis/go-redis/v9"},
		AloneName: "gin + go-redis",
		Main: `package main

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/redis/go-redis/v9"
)

func main() {
	opt, err := redis.ParseURL(os.Getenv("IDEMKIT_REDIS_URL"))
	if err != nil {
		log.Fatalf("IDEMKIT_REDIS_URL: %v", err)
	}
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	defer client.Close()
	prefix := fmt.Sprintf("idemkit-release-check:%d:", time.Now().UnixNano())
	engine := core.New(redisstore.New(client, redisstore.WithPrefix(prefix)))

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(idemgin.Middleware(engine))
	var runs atomic.Int64
	r.POST("/payments", func(c *gin.Context) {
		c.Data(http.StatusCreated, "application/json", fmt.Appendf(nil, ` + "`" + `{"run":%d}` + "`" + `, runs.Add(1)))
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	if err := replayed(srv.URL, http.DefaultClient.Do); err != nil {
		log.Fatal(err)
	}
}
`,
	},
	{
		Name:      "idemecho + pgxstore",
		Modules:   []string{"adapters/idemecho", "stores/pgxstore", "core"},
		Alone:     []string{"github.com/labstack/echo/v4", "github.com/jackc/pgx/v5/pgxpool"},
		AloneName: "echo + pgx",
		Main: `package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"time"

	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("IDEMKIT_POSTGRES_URL"))
	if err != nil {
		return fmt.Errorf("IDEMKIT_POSTGRES_URL: %w", err)
	}
	defer pool.Close()
	schema := fmt.Sprintf("idemkit_release_check_%d", time.Now().UnixNano())
	defer pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(schema)); err != nil {
		return err
	}
	engine := core.New(pgxstore.New(pool, pgxstore.WithSchema(schema)))

	e := echo.New()
	e.HideBanner = true
	e.Use(idemecho.Middleware(engine))
	var runs atomic.Int64
	e.POST("/payments", func(c echo.Context) error {
		return c.Blob(http.StatusCreated, "application/json", fmt.Appendf(nil, ` + "`" + `{"run":%d}` + "`" + `, runs.Add(1)))
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	return replayed(srv.URL, http.DefaultClient.Do)
}
`,
	},
	{
		Name:      "idemfiber + tieredstore",
		Modules:   []string{"adapters/idemfiber", "stores/tieredstore", "core"},
		Alone:     []string{"github.com/gofiber/fiber/v2"},
		AloneName: "fiber",
		Main: `package main

import (
	"fmt"
	"log"
	"net/http"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

func main() {
	hot, durable := memstore.New(), memstore.New()
	defer hot.Close()
	defer durable.Close()
	engine := core.New(tieredstore.New(hot, durable))

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(idemfiber.Middleware(engine))
	var runs atomic.Int64
	app.Post("/payments", func(c *fiber.Ctx) error {
		c.Set("Content-Type", "application/json")
		return c.Status(http.StatusCreated).SendString(fmt.Sprintf(` + "`" + `{"run":%d}` + "`" + `, runs.Add(1)))
	})
	test := func(r *http.Request) (*http.Response, error) { return app.Test(r, -1) }
	if err := replayed("http://consumer.test", test); err != nil {
		log.Fatal(err)
	}
}
`,
	},
}

// replayedSource is replayed.go of every consumer.
const replayedSource = `package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// replayed sends one keyed POST to base+"/payments" twice through do and
// checks that the second answer is the first one replayed.
func replayed(base string, do func(*http.Request) (*http.Response, error)) error {
	key := fmt.Sprintf("\"release-check-%d\"", time.Now().UnixNano())
	var bodies [2]string
	for i := range bodies {
		req, err := http.NewRequest(http.MethodPost, base+"/payments", strings.NewReader(` + "`" + `{"amount":1200}` + "`" + `))
		if err != nil {
			return err
		}
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST %d = %d %s; want 201", i+1, resp.StatusCode, body)
		}
		if got, want := resp.Header.Get("Idempotency-Replayed"), map[bool]string{false: "", true: "true"}[i == 1]; got != want {
			return fmt.Errorf("POST %d: Idempotency-Replayed = %q; want %q", i+1, got, want)
		}
		bodies[i] = string(body)
	}
	if bodies[0] != bodies[1] {
		return fmt.Errorf("replay body %q; want the first body %q", bodies[1], bodies[0])
	}
	fmt.Println("replayed", bodies[1])
	return nil
}
`
