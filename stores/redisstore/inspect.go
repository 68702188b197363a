package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/redis/go-redis/v9"
)

var _ core.Inspector = (*Store)(nil)

// Inspect implements [core.Inspector] in one round trip (GET and PTTL in a
// pipeline), reading the record by its layout (see the package
// documentation). ExpiresAt is now plus the key's PTTL, by this process's
// clock; Redis keeps no creation time. A released claim's tombstone is no
// record: it reads as absent, as it does to a claim.
func (s *Store) Inspect(ctx context.Context, key string) (core.RecordInfo, error) {
	if err := ctx.Err(); err != nil {
		return core.RecordInfo{}, unavailable("inspect", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rkey := s.recordKey(key)
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, rkey)
		pttl = p.PTTL(ctx, rkey)
		return nil
	})
	now := time.Now()
	v, gerr := get.Result()
	switch {
	case errors.Is(gerr, redis.Nil):
		return core.RecordInfo{}, fmt.Errorf("redisstore: inspect %s: %w", rkey, core.ErrNotFound)
	case gerr != nil:
		return core.RecordInfo{}, storeErr("inspect", rkey, gerr)
	case err != nil && !errors.Is(err, redis.Nil):
		return core.RecordInfo{}, storeErr("inspect", rkey, err)
	}
	if len(v) < headerLen {
		return core.RecordInfo{}, corruptErr("inspect", rkey, "record too short")
	}
	info := core.RecordInfo{Key: key, Fingerprint: core.Fingerprint([]byte(v[1:headerLen]))}
	if d := pttl.Val(); d > 0 {
		info.ExpiresAt = now.Add(d)
	}
	switch v[0] {
	case stateReleased:
		return core.RecordInfo{}, fmt.Errorf("redisstore: inspect %s: %w", rkey, core.ErrNotFound)
	case statePending:
		info.State = core.RecordPending
		return info, nil
	}
	enc, ok := completedResponse(v)
	if !ok {
		return core.RecordInfo{}, corruptErr("inspect", rkey, "malformed record")
	}
	resp, derr := codec.DecodeResponse([]byte(enc))
	if derr != nil {
		return core.RecordInfo{}, fmt.Errorf("redisstore: inspect %s: %w: %w: %w", rkey, core.ErrStoreUnavailable, core.ErrCorruptRecord, derr)
	}
	info.State = core.RecordCompleted
	info.Status = resp.Status
	info.HeaderBytes = len(codec.AppendHeader(nil, resp.Header))
	info.BodyBytes = len(resp.Body)
	info.BodyOmitted = resp.BodyOmitted
	return info, nil
}

// Delete implements [core.Inspector] with one DEL of the record's key. A
// released claim's tombstone counts as absent, but is deleted all the same.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return unavailable("delete", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rkey := s.recordKey(key)
	v, err := s.client.Get(ctx, rkey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		if e := storeErr("delete", rkey, err); !errors.Is(e, core.ErrCorruptRecord) {
			return e
		}
	}
	n, derr := s.client.Del(ctx, rkey).Result()
	if derr != nil {
		return storeErr("delete", rkey, derr)
	}
	if n == 0 || (len(v) > 0 && v[0] == stateReleased) {
		return fmt.Errorf("redisstore: delete %s: %w", rkey, core.ErrNotFound)
	}
	return nil
}
