package pgxstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/svctest"
)

// The crash points of a handler in transactional mode (docs/contract.md).
const (
	pointBefore      = "before-write" // the handler has written nothing yet
	pointAfterWrite  = "after-write"  // written in the transaction, not committed
	pointAfterCommit = "after-commit" // record and writes committed, answer not sent
)

// txLease is the lease of the crash tests: a killed holder's claim lapses
// this long after its last renewal.
const txLease = time.Second

// txTables creates the tables a test handler writes in schema: side (one
// row per executed payment) and, for the ledger, accounts and transfers.
func txTables(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	s := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		"CREATE TABLE " + s + ".side (id bigserial PRIMARY KEY, k text NOT NULL)",
		"CREATE TABLE " + s + ".accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE " + s + ".transfers (id bigserial PRIMARY KEY, k text NOT NULL, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)",
		"CREATE TABLE " + s + ".payments (id bigserial PRIMARY KEY, k text NOT NULL, status text NOT NULL, charge text)",
		"CREATE TABLE " + s + ".provider_calls (payment bigint NOT NULL)",
	} {
		if _, err := pool.Exec(ctxT(t), q); err != nil {
			t.Fatal(err)
		}
	}
}

// txApp is the service under test: POST /pay inserts one row into side in
// the request's transaction and answers its id; POST /transfer moves an
// amount between two accounts and records the transfer. crash, when not
// nil, is called at each crash point of /pay.
func txApp(store *Store, pool *pgxpool.Pool, schema string, crash func(point string)) http.Handler {
	s := pgx.Identifier{schema}.Sanitize()
	if crash == nil {
		crash = func(string) {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pay", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// Without transactional mode (the lease-mode control), the write
		// commits on its own.
		var q interface {
			QueryRow(context.Context, string, ...any) pgx.Row
		} = pool
		if tx, ok := Tx(ctx); ok {
			q = tx
		}
		crash(pointBefore)
		var id int64
		if err := q.QueryRow(ctx, "INSERT INTO "+s+".side (k) VALUES ($1) RETURNING id", r.Header.Get("Idempotency-Key")).Scan(&id); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		crash(pointAfterWrite)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%d}`, id)
	})
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		tx, _ := Tx(ctx)
		var in struct{ From, To, Amount int }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var id int64
		// Lock the two accounts in id order: concurrent transfers never
		// deadlock.
		_, err := tx.Exec(ctx, "SELECT FROM "+s+".accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE", in.From, in.To)
		if err == nil {
			_, err = tx.Exec(ctx, "UPDATE "+s+".accounts SET balance = balance - $2 WHERE id = $1", in.From, in.Amount)
		}
		if err == nil {
			_, err = tx.Exec(ctx, "UPDATE "+s+".accounts SET balance = balance + $2 WHERE id = $1", in.To, in.Amount)
		}
		if err == nil {
			err = tx.QueryRow(ctx, "INSERT INTO "+s+".transfers (k, src, dst, amount) VALUES ($1, $2, $3, $4) RETURNING id",
				r.Header.Get("Idempotency-Key"), in.From, in.To, in.Amount).Scan(&id)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"transfer":%d}`, id)
	})
	mux.HandleFunc("POST /payment", func(w http.ResponseWriter, r *http.Request) {
		payment(w, r, store, pool, s, crash)
	})
	return mux
}

// txServer returns the guarded service on pool, in transactional mode
// unless leaseMode. afterCommit, when not nil, runs once a response is
// committed (stored), before it reaches the client.
func txServer(pool *pgxpool.Pool, schema string, leaseMode bool, crash func(string), afterCommit func()) http.Handler {
	opts := []core.Option{core.WithTransactions(!leaseMode), core.WithLease(txLease)}
	if afterCommit != nil {
		opts = append(opts, core.WithObserver(core.ObserverFunc(func(_ context.Context, ev core.Event) {
			if ev.Outcome == core.OutcomeExecuted {
				afterCommit()
			}
		})))
	}
	store := New(pool, WithSchema(schema))
	engine := core.New(store, opts...)
	return idemhttp.Middleware(engine)(txApp(store, pool, schema, crash))
}

// send posts body to url with key until it gets an answer other than 409
// or 503 (or a dropped connection), and returns it with the number of
// retries it took.
func send(ctx context.Context, url, key, body string) (status int, resp []byte, retries int, err error) {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		r, err := http.DefaultClient.Do(req)
		if err == nil {
			resp, err = io.ReadAll(r.Body)
			r.Body.Close()
			if err == nil && r.StatusCode != http.StatusConflict && r.StatusCode != http.StatusServiceUnavailable {
				return r.StatusCode, resp, retries, nil
			}
		}
		if ctx.Err() != nil {
			return 0, nil, retries, ctx.Err()
		}
		retries++
		time.Sleep(50 * time.Millisecond)
	}
}

// rowsOf counts the rows key wrote.
func rowsOf(t *testing.T, pool *pgxpool.Pool, schema, key string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctxT(t), "SELECT count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".side WHERE k = $1", key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkOnce checks that key wrote exactly one row and that resp names it.
func checkOnce(t *testing.T, pool *pgxpool.Pool, schema, key string, resp []byte) {
	t.Helper()
	var n int
	var id int64
	err := pool.QueryRow(ctxT(t), "SELECT count(*), coalesce(max(id), 0) FROM "+pgx.Identifier{schema}.Sanitize()+".side WHERE k = $1", key).Scan(&n, &id)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"id":%d}`, id); n != 1 || string(resp) != want {
		t.Errorf("key %s: %d rows, final response %s; want exactly 1 row and %s", key, n, resp, want)
	}
}

// TestTxCrashPanic panics in the handler at each crash point, in process,
// then retries: the row exists once and the final response names it.
func TestTxCrashPanic(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, 8)
	txTables(t, db.pool, db.schema)
	for _, point := range []string{pointBefore, pointAfterWrite, pointAfterCommit} {
		t.Run(point, func(t *testing.T) {
			var once sync.Once
			crash := func(p string) {
				if p == point {
					once.Do(func() { panic(http.ErrAbortHandler) })
				}
			}
			var afterCommit func()
			if point == pointAfterCommit {
				afterCommit = func() { crash(pointAfterCommit) }
			}
			web := httptest.NewServer(txServer(db.pool, db.schema, false, crash, afterCommit))
			defer web.Close()
			key := "panic-" + point + "-" + randHex(6)
			ctx, cancel := context.WithTimeout(ctxT(t), 30*time.Second)
			defer cancel()
			status, resp, retries, err := send(ctx, web.URL+"/pay", key, `{"amount":100}`)
			if err != nil || status != http.StatusCreated {
				t.Fatalf("POST until answered: %d %s, %v", status, resp, err)
			}
			checkOnce(t, db.pool, db.schema, key, resp)
			t.Logf("%s: panic, %d retries, 1 row, response %s", point, retries, resp)
		})
	}
}

// The child process of the subprocess tests: TestTxChild serves txApp on
// the address in txChildEnv until it is killed, and dies at the crash point
// in txCrashEnv ("point:exit" calls os.Exit(1), "point:kill" sends itself
// SIGKILL).
const (
	txChildEnv  = "IDEMKIT_TX_CHILD_ADDR"
	txSchemaEnv = "IDEMKIT_TX_CHILD_SCHEMA"
	txCrashEnv  = "IDEMKIT_TX_CHILD_CRASH"
	txModeEnv   = "IDEMKIT_TX_CHILD_MODE" // "lease": without transactions
)

func TestTxChild(t *testing.T) {
	addr := os.Getenv(txChildEnv)
	if addr == "" {
		t.Skip("the server process of the subprocess crash tests; run by them")
	}
	schema := os.Getenv(txSchemaEnv)
	point, how, _ := strings.Cut(os.Getenv(txCrashEnv), ":")
	die := func() {
		if how == "kill" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		os.Exit(1)
	}
	crash := func(p string) {
		if p == point {
			die()
		}
	}
	var afterCommit func()
	if point == pointAfterCommit {
		afterCommit = die
	}
	cfg, err := pgxpool.ParseConfig(svctest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	http.Serve(ln, txServer(pool, schema, os.Getenv(txModeEnv) == "lease", crash, afterCommit))
}

// child is a server process.
type child struct {
	cmd *exec.Cmd
}

// startChild starts a server process on addr and waits until it listens.
func startChild(t *testing.T, addr, schema, crash string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTxChild$", "-test.v")
	cmd.Env = append(append(os.Environ(), txChildEnv+"="+addr, txSchemaEnv+"="+schema, txCrashEnv+"="+crash), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(c.kill)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), "ready") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the server process ended before listening")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server process did not listen within 30s")
	}
	return c
}

// kill ends the process with SIGKILL (by its PID) and reaps it.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
	}
}

// wait waits for the process to end by itself (its crash point).
func (c *child) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server process did not die at its crash point")
	}
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTxCrashProcess kills the server process at each crash point, by
// os.Exit and by SIGKILL, then starts a new one and retries: the row
// exists once and the final response names it. Nothing released the
// dead holder's claim, so the retry waits for its lease to lapse.
func TestTxCrashProcess(t *testing.T) {
	testCrashProcess(t, "")
}

// TestLeaseCrashProcess is the control: the same crashes without
// transactional mode, where the handler's write commits on its own. A
// crash after the write and before the record is stored makes the retry
// write again — the at-least-once row of docs/contract.md's table — and
// every other point writes once.
func TestLeaseCrashProcess(t *testing.T) {
	testCrashProcess(t, "lease")
}

func testCrashProcess(t *testing.T, mode string) {
	if os.Getenv(txChildEnv) != "" {
		t.Skip("in the server process")
	}
	t.Parallel()
	db := newTestDB(t, 4)
	txTables(t, db.pool, db.schema)
	env := []string{txModeEnv + "=" + mode}
	name := map[string]string{"": "transactional", "lease": "lease mode"}[mode]
	for _, point := range []string{pointBefore, pointAfterWrite, pointAfterCommit} {
		for _, how := range []string{"exit", "kill"} {
			t.Run(point+"/"+how, func(t *testing.T) {
				addr := freeAddr(t)
				url := "http://" + addr + "/pay"
				key := "proc-" + point + "-" + how + "-" + randHex(6)
				ctx, cancel := context.WithTimeout(ctxT(t), 60*time.Second)
				defer cancel()
				dying := startChild(t, addr, db.schema, point+":"+how, env...)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"amount":100}`))
				req.Header.Set("Idempotency-Key", key)
				if r, err := http.DefaultClient.Do(req); err == nil {
					r.Body.Close()
					t.Fatalf("the dying server answered %d; want the connection dropped", r.StatusCode)
				}
				dying.wait(t)
				start := time.Now()
				startChild(t, addr, db.schema, "", env...)
				status, resp, retries, err := send(ctx, url, key, `{"amount":100}`)
				if err != nil || status != http.StatusCreated {
					t.Fatalf("retry until answered: %d %s, %v", status, resp, err)
				}
				if mode == "lease" && point == pointAfterWrite {
					if n := rowsOf(t, db.pool, db.schema, key); n != 2 {
						t.Errorf("lease mode, crash after the write: %d rows; want 2 (the documented at-least-once case)", n)
					}
					t.Logf("%s/%s (lease mode): process died, %d retries, %d rows", point, how, retries, rowsOf(t, db.pool, db.schema, key))
					return
				}
				checkOnce(t, db.pool, db.schema, key, resp)
				t.Logf("%s/%s (%s): process died, %d retries over %v, 1 row, response %s", point, how, name, retries, time.Since(start).Round(time.Millisecond), resp)
			})
		}
	}
}

// TestTxDo runs Engine.Do in transactional mode: the work's writes and its
// stored result commit together, an error rolls them back.
func TestTxDo(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, 4)
	txTables(t, db.pool, db.schema)
	engine := core.New(db.store(), core.WithTransactions(true))
	ctx := ctxT(t)
	side := pgx.Identifier{db.schema}.Sanitize() + ".side"
	fail := true
	work := func(ctx context.Context) ([]byte, error) {
		tx, _ := Tx(ctx)
		if _, err := tx.Exec(ctx, "INSERT INTO "+side+" (k) VALUES ('do')"); err != nil {
			return nil, err
		}
		if fail {
			return nil, fmt.Errorf("declined")
		}
		return []byte("done"), nil
	}
	if _, err := engine.Do(ctx, core.Call{Key: "k"}, work); err == nil {
		t.Fatal("failing work: nil error")
	}
	fail = false
	for range 2 {
		if out, err := engine.Do(ctx, core.Call{Key: "k"}, work); err != nil || !bytes.Equal(out, []byte("done")) {
			t.Fatalf("Do = %q, %v; want done", out, err)
		}
	}
	var n int
	db.pool.QueryRow(ctx, "SELECT count(*) FROM "+side).Scan(&n)
	if n != 1 {
		t.Errorf("rows = %d; want 1: the failed run rolled back, the repeat replayed", n)
	}
}
