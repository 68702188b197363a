package redisstore

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/redis/go-redis/v9"
)

var _ core.Discarder = (*Store)(nil)

// discardScript: KEYS[1] record; ARGV[1] the value found unusable. Deletes
// the record if, and only if, it still holds exactly those bytes. Replies 1
// deleted, 0 left alone.
var discardScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// discardOtherTypeScript: KEYS[1] record. Deletes a key of another type
// than a string under the record's name (no record of this store can be
// one). Replies 1 deleted, 0 left alone.
var discardOtherTypeScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'string' or t == 'none' then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// discardNoExpiryScript: KEYS[1] record; ARGV[1] the pending record read.
// Deletes it if it still holds those bytes and has no expiry: a claim
// whose lease can never lapse. Replies 1 deleted, 0 left alone.
var discardNoExpiryScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// Discard implements [core.Discarder] in two round trips, a GET and a
// compare-and-delete script, on a path taken only for a corrupt record. It
// deletes the record the engine found unusable and nothing else:
//   - with req.Response, the completed record stored under
//     req.Fingerprint whose response decodes to req.Response (in either
//     completed layout, 'C' or 'D');
//   - without, a record that Claim still cannot read (an unknown state, a
//     record too short for its state, a completed response that does not
//     decode, or a key of another type), or a pending claim without an
//     expiry, whose lease could never lapse.
//
// The scripts delete the key only if it still holds the bytes read, so a
// record that changed in between (taken over, completed anew) is kept. A
// pending claim with a lease is never deleted.
func (s *Store) Discard(ctx context.Context, req core.DiscardRequest) error {
	if err := ctx.Err(); err != nil {
		return unavailable("discard", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rkey := s.recordKey(req.Key)
	v, err := s.client.Get(ctx, rkey).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil
	case err != nil && strings.Contains(err.Error(), "WRONGTYPE"):
		if req.Response != nil {
			return nil
		}
		if err := discardOtherTypeScript.Run(ctx, s.client, []string{rkey}).Err(); err != nil {
			return storeErr("discard", rkey, err)
		}
		return nil
	case err != nil:
		return storeErr("discard", rkey, err)
	}
	script := discardScript
	if req.Response == nil && len(v) >= headerLen && v[0] == statePending {
		script = discardNoExpiryScript
	} else if !discardable(v, req) {
		return nil
	}
	if err := script.Run(ctx, s.client, []string{rkey}, v).Err(); err != nil {
		return storeErr("discard", rkey, err)
	}
	return nil
}

// discardable reports whether the record value v is the one req describes.
func discardable(v string, req core.DiscardRequest) bool {
	enc, completed := completedResponse(v)
	if req.Response != nil {
		if !completed || v[1:headerLen] != string(req.Fingerprint[:]) {
			return false
		}
		// Compared decoded, so that bytes the decoder reads but the encoder
		// would write otherwise (a longer varint) still match.
		got, err := codec.DecodeResponse([]byte(enc))
		return err == nil && bytes.Equal(codec.EncodeResponse(got), codec.EncodeResponse(req.Response))
	}
	switch {
	case len(v) >= headerLen && (v[0] == statePending || v[0] == stateReleased):
		return false // a pending claim or a released one's tombstone, as the claim script reads them
	case completed:
		_, err := codec.DecodeResponse([]byte(enc))
		return err != nil
	}
	return true
}
