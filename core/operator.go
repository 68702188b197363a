package core

import (
	"context"
	"errors"
	"time"
)

// StorageKey returns the key a store holds for the client key key in
// scope: the hex SHA-256 of (scope, key), or its HMAC-SHA-256 under secret
// when the engine was built with [WithHMACSecret] (pass the same secret;
// nil for none). It is exactly what the engine hands its store, so an
// operator's tool can find a client's record without the store ever
// holding raw keys. scope is what the engine's [KeyScopeFunc] returns for
// the client ("" without one); key is the key's value without its quotes.
func StorageKey(scope, key string, secret []byte) string {
	return storageKey(secret, scope, key)
}

// StorageKey returns the storage key e derives for key in scope, under its
// own secret (see [StorageKey]).
func (e *Engine) StorageKey(scope, key string) string {
	return storageKey(e.cfg.secret, scope, key)
}

// ErrNotFound reports that a store holds no live record under a key: an
// [Inspector] returns it from Inspect and Delete.
var ErrNotFound = errors.New("core: record not found")

// RecordState is the state of a stored record.
type RecordState string

const (
	// RecordPending is a claim whose handler has not completed: the record
	// holds a fingerprint, a fencing token and a lease.
	RecordPending RecordState = "pending"
	// RecordCompleted holds a stored response, replayed until it expires.
	RecordCompleted RecordState = "completed"
)

// RecordInfo describes a stored record for an operator: what it is, never
// its token or its response's bytes. A field a store cannot tell is zero.
type RecordInfo struct {
	// Key is the storage key (see [StorageKey]).
	Key   string
	State RecordState
	// Fingerprint is the digest of the request payload the record was
	// claimed with ([DefaultFingerprint] unless the engine set another).
	Fingerprint Fingerprint
	// Status is the stored response's status (completed records only).
	Status int
	// HeaderBytes is the size of the stored response's header fields in
	// the record codec's encoding
	// ([github.com/idemkit/idemkit/core/codec.AppendHeader]); BodyBytes
	// the stored body's size.
	HeaderBytes int
	BodyBytes   int
	// BodyOmitted reports a body that was delivered but not stored.
	BodyOmitted bool
	// CreatedAt is when the record was first claimed (zero when the store
	// does not keep it: memstore, redisstore).
	CreatedAt time.Time
	// ExpiresAt is when the lease of a pending record lapses, or when a
	// completed record's retention ends, by the store's clock.
	ExpiresAt time.Time
}

// Inspector is an optional interface of a [Store] for operators: look up
// a record's metadata and delete a record, by storage key (see
// [StorageKey]). The engine never calls it.
type Inspector interface {
	// Inspect returns the live record of key, or an error wrapping
	// [ErrNotFound] when there is none (absent, expired, or a pending
	// claim whose lease lapsed). Backend failures wrap [ErrStoreUnavailable].
	Inspect(ctx context.Context, key string) (RecordInfo, error)

	// Delete deletes the record of key, pending or completed, whoever holds
	// it, and returns an error wrapping [ErrNotFound] when there was none.
	// Deleting a completed record makes the next request with its key run
	// the handler again; deleting a pending one lets a retry run it while
	// the first attempt may still be running (whose completion then fails
	// with [ErrLeaseLost]). Backend failures wrap [ErrStoreUnavailable].
	Delete(ctx context.Context, key string) error
}
