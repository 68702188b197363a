package pgxstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// The benchmarks compare the store with raw pgx statements doing the same
// round trips on the same pool (32 connections) in the same run:
//
//   - NewKey: Store.Claim + Store.Complete on a fresh key, against a raw
//     INSERT … ON CONFLICT DO NOTHING plus a raw UPDATE;
//   - Replay: Store.Claim of a completed key (decoded response), against one
//     raw SELECT of the stored response.
//
// Each runs at concurrency 1 and 32 and reports ops/s.
//
//	IDEMKIT_POSTGRES_URL=postgres://... go test -run '^$' -bench . -benchtime 3s

var benchResp = &core.Response{
	Status: 201,
	Header: http.Header{"Content-Type": {"application/json"}, "Location": {"/payments/p_123"}},
	Body:   []byte(`{"id":"p_123","amount":1200,"currency":"EUR","execution":1}`),
}

func BenchmarkNewKey(b *testing.B) {
	db := newTestDB(b, 32)
	s := db.store()
	raw := newRaw(db)
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("store/c%d", conc), func(b *testing.B) {
			runConc(b, conc, func(ctx context.Context, i int64) error {
				req := benchReq(i)
				if _, err := s.Claim(ctx, req); err != nil {
					return err
				}
				return s.Complete(ctx, req.Key, req.Token, benchResp, time.Hour)
			})
		})
		b.Run(fmt.Sprintf("raw/c%d", conc), func(b *testing.B) {
			headers := codec.AppendHeader(nil, benchResp.Header)
			runConc(b, conc, func(ctx context.Context, i int64) error {
				req := benchReq(i)
				if _, err := db.pool.Exec(ctx, raw.insert, "raw"+req.Key, req.Fingerprint[:], string(req.Token), micros(req.Lease)); err != nil {
					return err
				}
				_, err := db.pool.Exec(ctx, raw.complete, "raw"+req.Key, string(req.Token), int32(201), headers, benchResp.Body, micros(time.Hour))
				return err
			})
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	db := newTestDB(b, 32)
	s := db.store()
	raw := newRaw(db)
	const keys = 1024
	ctx := context.Background()
	for i := int64(0); i < keys; i++ {
		req := benchReq(-i - 1)
		if _, err := s.Claim(ctx, req); err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(ctx, req.Key, req.Token, benchResp, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("store/c%d", conc), func(b *testing.B) {
			runConc(b, conc, func(ctx context.Context, i int64) error {
				req := benchReq(-(i % keys) - 1)
				req.Token = "t"
				c, err := s.Claim(ctx, req)
				if err == nil && c.Status != core.ClaimReplay {
					err = fmt.Errorf("claim = %v; want replay", c.Status)
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("raw/c%d", conc), func(b *testing.B) {
			runConc(b, conc, func(ctx context.Context, i int64) error {
				req := benchReq(-(i % keys) - 1)
				var status int32
				var headers, body []byte
				return db.pool.QueryRow(ctx, raw.replay, req.Key).Scan(&status, &headers, &body)
			})
		})
	}
}

type rawSQL struct{ insert, complete, replay string }

func newRaw(db *testDB) rawSQL {
	t := db.table()
	return rawSQL{
		insert: `INSERT INTO ` + t + ` (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
			VALUES ($1, $2, 'pending', $3, now() + $4::bigint * interval '1 microsecond', now() + $4::bigint * interval '1 microsecond')
			ON CONFLICT (key) DO NOTHING`,
		complete: `UPDATE ` + t + ` SET state = 'completed', lease_token = NULL, lease_expires_at = NULL,
			status = $3, headers = $4, body = $5, body_omitted = false, completed_at = now(),
			expires_at = now() + $6::bigint * interval '1 microsecond'
			WHERE key = $1 AND lease_token = $2 AND state = 'pending'`,
		replay: `SELECT status, headers, body FROM ` + t + ` WHERE key = $1 AND expires_at > now()`,
	}
}

var benchRun = randHex(4)

// benchReq is a claim on key number i of this process (negative numbers for
// the replay set), with a fixed fingerprint.
func benchReq(i int64) core.ClaimRequest {
	return core.ClaimRequest{
		Key:         fmt.Sprintf("%s-%064d", benchRun, i),
		Fingerprint: sha256.Sum256([]byte("payload")),
		Token:       core.Token(fmt.Sprintf("tok-%d", i)),
		Lease:       30 * time.Second,
	}
}

var benchSeq atomic.Int64

// runConc runs op b.N times from conc goroutines and reports ops/s.
func runConc(b *testing.B, conc int, op func(ctx context.Context, i int64) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	base := benchSeq.Add(1 << 40) // fresh key numbers per run
	errc := make(chan error, conc)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(ctx, base+i); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}
