package redisstore

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// TestCompletedRecordLayouts checks the two completed layouts side by
// side: a record completed by a token keeps it ('D'), so the same
// Complete retried returns nil; a record in the older layout without a
// token ('C', as written before tokens were kept, by a cache Put, or for a
// token over 255 bytes) still replays, and no Complete claims it.
func TestCompletedRecordLayouts(t *testing.T) {
	client := singleClient(t)
	ctx := context.Background()
	s := New(client, WithPrefix(uniquePrefix(t)))
	want := sampleResponse()
	f := fp(3)

	t.Run("Legacy", func(t *testing.T) {
		key := newKey(t)
		if err := client.Set(ctx, s.recordKey(key), string(stateCompleted)+string(f[:])+string(codec.EncodeResponse(want)), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		c := claim(t, s, key, f, newToken(t), time.Second)
		if c.Status != core.ClaimReplay || !reflect.DeepEqual(c.Response, want) {
			t.Errorf("Claim on a 'C' record = %v %#v; want a replay of it", c.Status, c.Response)
		}
		if err := s.Complete(ctx, key, newToken(t), want, time.Hour); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Complete on a 'C' record = %v; want ErrLeaseLost: it keeps no token", err)
		}
	})
	t.Run("LongToken", func(t *testing.T) {
		key, tok := newKey(t), core.Token(strings.Repeat("t", 300))
		claim(t, s, key, f, tok, 10*time.Second)
		if err := s.Complete(ctx, key, tok, want, time.Hour); err != nil {
			t.Fatalf("Complete with a 300-byte token: %v", err)
		}
		if err := s.Complete(ctx, key, tok, want, time.Hour); !errors.Is(err, core.ErrLeaseLost) {
			t.Errorf("Complete retried with a 300-byte token = %v; want ErrLeaseLost: tokens over 255 bytes are not kept", err)
		}
		if c := claim(t, s, key, f, newToken(t), time.Second); c.Status != core.ClaimReplay || !reflect.DeepEqual(c.Response, want) {
			t.Errorf("Claim after a long-token Complete = %v; want a replay", c.Status)
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		key := newKey(t)
		// 'D' + fingerprint + a token length pointing past the record.
		if err := client.Set(ctx, s.recordKey(key), string(stateCompletedToken)+string(f[:])+"\xff"+"abcd", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: f, Token: newToken(t), Lease: time.Second})
		if !errors.Is(err, core.ErrCorruptRecord) || !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("Claim on a truncated 'D' record = %v; want ErrCorruptRecord and ErrStoreUnavailable", err)
		}
		if err := s.Discard(ctx, core.DiscardRequest{Key: key, Fingerprint: f, Reason: err}); err != nil {
			t.Fatalf("Discard of the truncated record: %v", err)
		}
		if c := claim(t, s, key, f, newToken(t), time.Second); c.Status != core.ClaimAcquired {
			t.Errorf("Claim after discarding a truncated 'D' record = %v; want acquired", c.Status)
		}
	})
}
