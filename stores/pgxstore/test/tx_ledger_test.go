package pgxstore

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestTxLedger hammers POST /transfer of a server process in transactional
// mode with concurrent retries of every transfer while the process is
// killed (SIGKILL) and restarted a few times, then checks the ledger: the
// sum of the balances is unchanged, every transfer was applied exactly
// once, every balance is its opening balance plus its transfers, and every
// key answers the same response again.
func TestTxLedger(t *testing.T) {
	if os.Getenv(txChildEnv) != "" {
		t.Skip("in the server process")
	}
	t.Parallel()
	const (
		accounts  = 5
		opening   = 1000
		transfers = 300
		kills     = 5
		workers   = 8
	)
	db := newTestDB(t, 4)
	txTables(t, db.pool, db.schema)
	s := pgx.Identifier{db.schema}.Sanitize()
	ctx, cancel := context.WithTimeout(ctxT(t), 3*time.Minute)
	defer cancel()
	for id := 1; id <= accounts; id++ {
		if _, err := db.pool.Exec(ctx, "INSERT INTO "+s+".accounts VALUES ($1, $2)", id, opening); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	url := "http://" + addr + "/transfer"
	srv := startChild(t, addr, db.schema, "")

	type result struct {
		status int
		body   string
	}
	var requests, retries atomic.Int64
	transfer := func(i int) (key, body string) {
		from := i%accounts + 1
		to := (i*3+1)%accounts + 1
		if to == from {
			to = from%accounts + 1
		}
		return fmt.Sprintf("transfer-%d", i), fmt.Sprintf(`{"from":%d,"to":%d,"amount":%d}`, from, to, 1+i%50)
	}
	results := make([][]result, transfers)
	work := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				key, body := transfer(i)
				// Every transfer is sent by two clients at once (a client
				// and its impatient retry), each retrying until answered.
				var mu sync.Mutex
				var inner sync.WaitGroup
				for range 2 {
					inner.Add(1)
					go func() {
						defer inner.Done()
						status, resp, n, err := send(ctx, url, key, body)
						requests.Add(int64(n + 1))
						retries.Add(int64(n))
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							errs <- fmt.Errorf("%s: %w", key, err)
							return
						}
						results[i] = append(results[i], result{status, string(resp)})
					}()
				}
				inner.Wait()
			}
		}()
	}
	go func() {
		for i := range transfers {
			work <- i
		}
		close(work)
	}()
	// Kill and restart the server while the transfers run.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	killed := 0
kill:
	for killed < kills {
		select {
		case <-done:
			break kill
		case <-time.After(300 * time.Millisecond):
			srv.kill()
			killed++
			srv = startChild(t, addr, db.schema, "")
		}
	}
	<-done
	close(errs)
	for err := range errs {
		t.Fatalf("a client gave up: %v", err)
	}

	// Every key answered one response, twice, and answers it again.
	for i, rs := range results {
		if len(rs) != 2 || rs[0] != rs[1] || rs[0].status != http.StatusCreated {
			t.Errorf("transfer-%d: answers %v; want the same 201 twice", i, rs)
			continue
		}
		key, body := transfer(i)
		status, resp, n, err := send(ctx, url, key, body)
		requests.Add(int64(n + 1))
		if err != nil || status != rs[0].status || string(resp) != rs[0].body {
			t.Errorf("transfer-%d again: %d %s, %v; want the replay %d %s", i, status, resp, err, rs[0].status, rs[0].body)
		}
	}

	var sum, rows, keys, dup int64
	if err := db.pool.QueryRow(ctx, "SELECT sum(balance) FROM "+s+".accounts").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if err := db.pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT k) FROM "+s+".transfers").Scan(&rows, &keys); err != nil {
		t.Fatal(err)
	}
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM `+s+`.accounts a WHERE balance <> $1
		- coalesce((SELECT sum(amount) FROM `+s+`.transfers WHERE src = a.id), 0)
		+ coalesce((SELECT sum(amount) FROM `+s+`.transfers WHERE dst = a.id), 0)`, opening).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if killed < kills {
		t.Errorf("the transfers ended after %d kills; want %d while they ran", killed, kills)
	}
	if sum != accounts*opening || rows != transfers || keys != transfers || dup != 0 {
		t.Errorf("ledger: balance sum %d, %d transfer rows, %d keys, %d accounts off their transfers; want %d, %d, %d, 0",
			sum, rows, keys, dup, accounts*opening, transfers, transfers)
	}
	t.Logf("ledger: %d transfers, %d requests (%d retries), %d kills, %d transfer rows for %d keys, balance sum %d of %d",
		transfers, requests.Load(), retries.Load(), killed, rows, keys, sum, accounts*opening)
}
