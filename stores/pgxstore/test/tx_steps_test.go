package pgxstore

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	. "github.com/idemkit/idemkit/stores/pgxstore"
)

// The crash points between the recovery points of POST /payment.
const (
	pointAfterStep1 = "after-payment-created"  // step 1 committed
	pointInStep2    = "after-provider-call"    // the provider charged, step 2 not committed
	pointAfterStep2 = "after-provider-charged" // step 2 committed, the final transaction not
)

// payment is POST /payment, in three recovery points: it creates a
// payment (step payment-created), charges it at a provider, simulated by a
// row in provider_calls written outside any step's transaction as an
// external system would be (step provider-charged), and marks it
// succeeded in the handler's transaction, which commits with the response.
func payment(w http.ResponseWriter, r *http.Request, store *Store, pool *pgxpool.Pool, s string, crash func(string)) {
	ctx := r.Context()
	key := r.Header.Get("Idempotency-Key")
	p, err := store.Step(ctx, "payment-created", func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
		var id int64
		err := tx.QueryRow(ctx, "INSERT INTO "+s+".payments (k, status) VALUES ($1, 'created') RETURNING id", key).Scan(&id)
		return strconv.AppendInt(nil, id, 10), err
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	id := string(p)
	crash(pointAfterStep1)
	charge, err := store.Step(ctx, "provider-charged", func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
		// The provider: an external call, not part of the transaction.
		if _, err := pool.Exec(ctx, "INSERT INTO "+s+".provider_calls VALUES ($1)", id); err != nil {
			return nil, err
		}
		crash(pointInStep2)
		ch := "ch_" + id
		_, err := tx.Exec(ctx, "UPDATE "+s+".payments SET status = 'charged', charge = $2 WHERE id = $1", id, ch)
		return []byte(ch), err
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	crash(pointAfterStep2)
	tx, _ := Tx(ctx)
	if _, err := tx.Exec(ctx, "UPDATE "+s+".payments SET status = 'succeeded' WHERE id = $1", id); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"payment":%s,"charge":%q}`, id, charge)
}

// TestTxStepsCrashProcess kills the server process between the recovery
// points of POST /payment (and once inside the provider step, after the
// external call), by os.Exit and by SIGKILL, then retries from a new
// process: the payment exists once, succeeded, the final response names
// it, and the provider was called once — twice only when the process died
// between the provider's answer and the step's commit, the window an
// external call keeps (the provider's own idempotency key closes it).
func TestTxStepsCrashProcess(t *testing.T) {
	if os.Getenv(txChildEnv) != "" {
		t.Skip("in the server process")
	}
	t.Parallel()
	db := newTestDB(t, 4)
	txTables(t, db.pool, db.schema)
	s := pgx.Identifier{db.schema}.Sanitize()
	for _, c := range []struct {
		point string
		calls int
	}{{pointAfterStep1, 1}, {pointInStep2, 2}, {pointAfterStep2, 1}, {pointAfterCommit, 1}} {
		for _, how := range []string{"exit", "kill"} {
			t.Run(c.point+"/"+how, func(t *testing.T) {
				addr := freeAddr(t)
				url := "http://" + addr + "/payment"
				key := "pay-" + c.point + "-" + how + "-" + randHex(6)
				ctx, cancel := context.WithTimeout(ctxT(t), 60*time.Second)
				defer cancel()
				dying := startChild(t, addr, db.schema, c.point+":"+how)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
				req.Header.Set("Idempotency-Key", key)
				if r, err := http.DefaultClient.Do(req); err == nil {
					r.Body.Close()
					t.Fatalf("the dying server answered %d; want the connection dropped", r.StatusCode)
				}
				dying.wait(t)
				start := time.Now()
				startChild(t, addr, db.schema, "")
				status, resp, retries, err := send(ctx, url, key, "")
				if err != nil || status != http.StatusCreated {
					t.Fatalf("retry until answered: %d %s, %v", status, resp, err)
				}
				var n, calls int
				var id int64
				var st string
				if err := db.pool.QueryRow(ctx, "SELECT count(*), max(id), max(status) FROM "+s+".payments WHERE k = $1", key).Scan(&n, &id, &st); err != nil {
					t.Fatal(err)
				}
				if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM "+s+".provider_calls WHERE payment = $1", id).Scan(&calls); err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf(`{"payment":%d,"charge":"ch_%d"}`, id, id)
				if n != 1 || st != "succeeded" || string(resp) != want || calls != c.calls {
					t.Errorf("%d payments (%s), %d provider calls, response %s; want 1 payment succeeded, %d calls, %s", n, st, calls, resp, c.calls, want)
				}
				t.Logf("%s/%s: process died, %d retries over %v, %d payment row, %d provider calls, response %s",
					c.point, how, retries, time.Since(start).Round(time.Millisecond), n, calls, resp)
			})
		}
	}
}
