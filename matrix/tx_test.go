package matrix

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
)

// TestTransactional runs pgxstore's transactional mode (core.WithTransactions)
// through every adapter: the handler writes a row in the request's
// transaction (pgxstore.Tx), and the row commits with the stored response
// or not at all (docs/contract.md, "Crashes and transactions").
func TestTransactional(t *testing.T) {
	b := connect(t)
	if b.pg == nil {
		t.Skip("skipped: Postgres was not reached (see TestTransactional/backends)")
	}
	ctx := context.Background()
	table := pgx.Identifier{b.schema, "matrix_tx_rows"}.Sanitize()
	if _, err := b.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (key text NOT NULL, adapter text NOT NULL)"); err != nil {
		t.Fatalf("creating the handler's table: %v", err)
	}
	for _, a := range adapters {
		t.Run("adapter="+a.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int64
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				key := r.Header.Get("X-Row")
				if r.URL.Path == "/plain" { // a handler that does not use the transaction
					w.WriteHeader(http.StatusCreated)
					io.WriteString(w, "plain "+key)
					return
				}
				tx, ok := pgxstore.Tx(r.Context())
				if !ok {
					http.Error(w, "no transaction in the handler's context", http.StatusTeapot)
					return
				}
				if _, err := tx.Exec(r.Context(), "INSERT INTO "+table+" (key, adapter) VALUES ($1, $2)", key, a.name); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				if r.Header.Get("X-Fail") != "" {
					http.Error(w, "failed after the write", http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusCreated)
				fmt.Fprintf(w, "row %s, run %d", key, runs.Load())
			})
			base := a.new(t, core.New(b.pg, core.WithTransactions(true)), app)
			post := func(path, key, row string, fail bool) (int, string, string) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{}`))
				req.Header.Set(core.KeyHeader, key)
				req.Header.Set("X-Row", row)
				if fail {
					req.Header.Set("X-Fail", "1")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("POST %s: %v", path, err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body), resp.Header.Get(core.DefaultReplayHeader)
			}
			rows := func(row string) int {
				t.Helper()
				var n int
				if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE key = $1", row).Scan(&n); err != nil {
					t.Fatalf("counting rows: %v", err)
				}
				return n
			}

			k, row := "tx-"+randHex(8), "row-"+randHex(8)
			st1, body1, _ := post("/pay", k, row, false)
			st2, body2, replayed := post("/pay", k, row, false)
			if st1 != http.StatusCreated || st2 != st1 || body2 != body1 || replayed != "true" {
				t.Errorf("write then retry: %d %q, then %d %q replayed=%q; want 201 and the same 201 replayed", st1, body1, st2, body2, replayed)
			}
			if n := rows(row); n != 1 {
				t.Errorf("rows after a write and its retry = %d; want 1 (the write commits with the record, once)", n)
			}

			k, row = "tx-"+randHex(8), "row-"+randHex(8)
			if st, _, _ := post("/pay", k, row, true); st != http.StatusInternalServerError {
				t.Errorf("handler that fails after its write: status %d; want 500", st)
			}
			if n := rows(row); n != 0 {
				t.Errorf("rows after a released 500 = %d; want 0 (the transaction rolled back with the claim's release)", n)
			}
			if st, _, replayed := post("/pay", k, row, false); st != http.StatusCreated || replayed != "" || rows(row) != 1 {
				t.Errorf("retry after the rolled-back 500: status %d replayed=%q rows %d; want a fresh 201 and 1 row", st, replayed, rows(row))
			}

			k = "tx-" + randHex(8)
			st1, body1, _ = post("/plain", k, "none", false)
			st2, body2, replayed = post("/plain", k, "none", false)
			if st1 != http.StatusCreated || body2 != body1 || replayed != "true" {
				t.Errorf("handler not using the transaction: %d %q, then %q replayed=%q; want 201 stored and replayed", st1, body1, body2, replayed)
			}
		})
	}
}
