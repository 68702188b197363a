package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

var _ core.Inspector = (*Store)(nil)

// Inspect implements [core.Inspector]: the live record of key. memstore
// keeps no creation time.
func (s *Store) Inspect(ctx context.Context, key string) (core.RecordInfo, error) {
	sh, r, _, _, err := s.lockLive(ctx, "inspect", key)
	if err != nil {
		return core.RecordInfo{}, err
	}
	defer sh.mu.Unlock()
	if r == nil {
		return core.RecordInfo{}, fmt.Errorf("memstore: inspect: %w", core.ErrNotFound)
	}
	info := core.RecordInfo{
		Key:         key,
		State:       core.RecordPending,
		Fingerprint: r.fp,
		ExpiresAt:   s.epoch.Add(time.Duration(r.expires)),
	}
	if r.done {
		info.State = core.RecordCompleted
		info.Status = r.resp.Status
		info.HeaderBytes = len(codec.AppendHeader(nil, r.resp.Header))
		info.BodyBytes = len(r.resp.Body)
		info.BodyOmitted = r.resp.BodyOmitted
	}
	return info, nil
}

// Delete implements [core.Inspector]: it deletes the live record of key,
// pending or completed.
func (s *Store) Delete(ctx context.Context, key string) error {
	sh, r, _, _, err := s.lockLive(ctx, "delete", key)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if r == nil {
		return fmt.Errorf("memstore: delete: %w", core.ErrNotFound)
	}
	sh.remove(r)
	return nil
}
