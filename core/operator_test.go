package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// keyRecorder is a memstore that remembers the storage key of every claim.
type keyRecorder struct {
	*memstore.Store
	claimed []string
}

func (k *keyRecorder) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	k.claimed = append(k.claimed, req.Key)
	return k.Store.Claim(ctx, req)
}

// TestStorageKeyMatchesEngine: core.StorageKey and Engine.StorageKey
// derive the key the engine hands its store, with and without a secret,
// and an Inspector finds the record under it, pending and completed.
func TestStorageKeyMatchesEngine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
	}{{"sha256", nil}, {"hmac", []byte("operator-secret")}} {
		t.Run(tc.name, func(t *testing.T) {
			ms := memstore.New()
			t.Cleanup(func() { ms.Close() })
			rec := &keyRecorder{Store: ms}
			var opts []core.Option
			if tc.secret != nil {
				opts = append(opts, core.WithHMACSecret(tc.secret))
			}
			e := core.New(rec, opts...)
			ctx := context.Background()
			call := core.Call{Scope: "tenant-7", Key: "order-42", Name: "charge", Input: []byte("{}")}
			want := core.StorageKey(call.Scope, call.Key, tc.secret)
			if got := e.StorageKey(call.Scope, call.Key); got != want {
				t.Errorf("Engine.StorageKey = %q; want core.StorageKey's %q", got, want)
			}
			if other := core.StorageKey(call.Scope, call.Key, []byte("another")); other == want {
				t.Errorf("StorageKey under another secret = %q, the same key: the secret must change it", other)
			}
			_, err := e.Do(ctx, call, func(ctx context.Context) ([]byte, error) {
				info, err := ms.Inspect(ctx, want)
				if err != nil {
					t.Errorf("Inspect(%q) while the call runs: %v; want the pending record", want, err)
				} else if info.State != core.RecordPending {
					t.Errorf("Inspect while the call runs: State = %q; want pending", info.State)
				}
				return []byte("done"), nil
			})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if len(rec.claimed) != 1 || rec.claimed[0] != want {
				t.Fatalf("the engine claimed %q; want [%q] (core.StorageKey)", rec.claimed, want)
			}
			info, err := ms.Inspect(ctx, want)
			if err != nil {
				t.Fatalf("Inspect(%q) after Do: %v", want, err)
			}
			if info.State != core.RecordCompleted || info.Status != 200 || info.BodyBytes != len("done") ||
				info.Key != want || info.ExpiresAt.Before(time.Now()) {
				t.Errorf("Inspect after Do = %+v; want completed, status 200, 4 body bytes, a future expiry", info)
			}
			if err := ms.Delete(ctx, want); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := ms.Inspect(ctx, want); !errors.Is(err, core.ErrNotFound) {
				t.Errorf("Inspect after Delete: %v; want ErrNotFound", err)
			}
			if err := ms.Delete(ctx, want); !errors.Is(err, core.ErrNotFound) {
				t.Errorf("Delete of a deleted record: %v; want ErrNotFound", err)
			}
		})
	}
}

// TestStorageKeyMatchesServe: for an HTTP request, the scope is what the
// engine's scope function returns and the key the header's value inside
// its quotes; StorageKey of those is the record the request stored.
func TestStorageKeyMatchesServe(t *testing.T) {
	ms := newStore(t)
	secret := []byte("http-secret")
	e := core.New(ms, core.WithHeaderScope("X-Api-Key"), core.WithHMACSecret(secret))
	x := newFake(`"pay-1"`, `{"amount":1}`, created)
	x.header.Set("X-Api-Key", "client-9")
	e.Serve(x)
	if x.sent == nil || x.sent.Status != 201 {
		t.Fatalf("Serve sent %+v; want 201", x.sent)
	}
	key := core.StorageKey("client-9", "pay-1", secret)
	info, err := ms.Inspect(context.Background(), key)
	if err != nil || info.State != core.RecordCompleted || info.Status != 201 {
		t.Errorf("Inspect(StorageKey(client-9, pay-1, secret)) = %+v, %v; want the completed 201 the request stored", info, err)
	}
	if _, err := ms.Inspect(context.Background(), core.StorageKey("client-9", `"pay-1"`, secret)); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Inspect of the key with its quotes: %v; want ErrNotFound: the engine hashes the value inside the quotes", err)
	}
}
