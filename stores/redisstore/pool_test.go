package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/redis/go-redis/v9"
)

// TestPooledRecordBuffers checks that Complete and Put, which encode
// records in pooled buffers, store each record's own bytes when many run
// at once: on a plain client and on an AutoPipeliner's deferred face,
// which queues a command and runs it later. Bodies range from empty to
// past maxPooledRecord, so buffers grow, are reused and are dropped.
func TestPooledRecordBuffers(t *testing.T) {
	client := singleClient(t)
	ap, err := client.AsyncAutoPipeline()
	if err != nil {
		t.Fatalf("AsyncAutoPipeline: %v", err)
	}
	t.Cleanup(func() { ap.Close() })
	for _, c := range []struct {
		name   string
		client redis.UniversalClient
	}{{"Client", client}, {"AsyncAutoPipeline", ap}} {
		t.Run(c.name, func(t *testing.T) {
			s := New(c.client, WithPrefix(uniquePrefix(t)))
			const workers, each = 16, 12
			keys := make([]string, workers*each)
			for i := range keys {
				keys[i] = newKey(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, len(keys))
			for w := range workers {
				wg.Go(func() {
					for i := w * each; i < (w+1)*each; i++ {
						resp := pooledResponse(i)
						if i%3 == 0 { // Put, the cache's write
							if err := s.Put(ctx, keys[i], fp(byte(i)), resp, time.Minute); err != nil {
								errs <- fmt.Errorf("Put %d: %w", i, err)
							}
							continue
						}
						tok := newToken(t)
						cl, err := s.Claim(ctx, core.ClaimRequest{Key: keys[i], Fingerprint: fp(byte(i)), Token: tok, Lease: time.Minute})
						if err != nil || cl.Status != core.ClaimAcquired {
							errs <- fmt.Errorf("Claim %d = %v, %v; want acquired", i, cl.Status, err)
							continue
						}
						if err := s.Complete(ctx, keys[i], tok, resp, time.Minute); err != nil {
							errs <- fmt.Errorf("Complete %d: %w", i, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i, k := range keys {
				cl, err := s.Claim(ctx, core.ClaimRequest{Key: k, Fingerprint: fp(byte(i)), Token: newToken(t), Lease: time.Minute})
				if err != nil || cl.Status != core.ClaimReplay {
					t.Fatalf("Claim of record %d = %v, %v; want a replay", i, cl.Status, err)
				}
				want := pooledResponse(i)
				if cl.Response.Status != want.Status || cl.Response.Header.Get("X-Record") != want.Header.Get("X-Record") || !bytes.Equal(cl.Response.Body, want.Body) {
					t.Errorf("record %d replayed status %d, X-Record %q, %d body bytes; want %d, %q, %d bytes of its own",
						i, cl.Response.Status, cl.Response.Header.Get("X-Record"), len(cl.Response.Body), want.Status, want.Header.Get("X-Record"), len(want.Body))
				}
			}
		})
	}
}

// pooledResponse is record i's response: its own status, header and body,
// the body between 0 and 80 KiB and filled with i's byte.
func pooledResponse(i int) *core.Response {
	n := (i * 7919) % (80 << 10)
	if i%5 == 0 {
		n = i % 7
	}
	return &core.Response{
		Status: 200 + i%7,
		Header: http.Header{"X-Record": {fmt.Sprint(i)}},
		Body:   bytes.Repeat([]byte{byte(i)}, n),
	}
}
