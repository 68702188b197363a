package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/idemkit/idemkit/core"
	"github.com/redis/go-redis/v9"
)

// ErrReplicaAcks reports a write that fewer replicas acknowledged than
// [WithReplicaAcks] asks for, within its timeout. It is wrapped together
// with [core.ErrStoreUnavailable].
var ErrReplicaAcks = errors.New("redisstore: too few replica acknowledgements")

// runAcked runs script on the primary that holds rkey, followed on the same
// connection and in the same round trip by WAIT. It returns the script's
// reply and a function that reports whether enough replicas acknowledged
// (called only when the script wrote something worth waiting for).
func (s *Store) runAcked(ctx context.Context, script *redis.Script, rkey string, args ...any) (any, func() error, error) {
	node, err := s.primaryFor(ctx, rkey)
	if err != nil {
		return nil, nil, err
	}
	run, wait := s.pipeAcked(ctx, node, script, rkey, false, args)
	if err := run.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		run, wait = s.pipeAcked(ctx, node, script, rkey, true, args)
	}
	reply, err := run.Result()
	if err != nil {
		if cc, ok := s.client.(*redis.ClusterClient); ok && isRedirect(err) {
			// The node client does not follow redirects: refresh the slot
			// map for the next call, and let this one fail (503).
			cc.ReloadState(ctx)
		}
		return nil, nil, err
	}
	acked := func() error {
		n, err := wait.Result()
		if err != nil {
			return fmt.Errorf("%w: %w: WAIT %d: %w", core.ErrStoreUnavailable, ErrReplicaAcks, s.cfg.acks, err)
		}
		if n < int64(s.cfg.acks) {
			return fmt.Errorf("%w: %w: %d of %d replicas acknowledged within %v",
				core.ErrStoreUnavailable, ErrReplicaAcks, n, s.cfg.acks, s.cfg.ackTimeout)
		}
		return nil
	}
	return reply, acked, nil
}

// pipeAcked sends script (EVALSHA, or EVAL when eval is set) and WAIT in
// one pipeline on node.
func (s *Store) pipeAcked(ctx context.Context, node *redis.Client, script *redis.Script, rkey string, eval bool, args []any) (*redis.Cmd, *redis.IntCmd) {
	pipe := node.Pipeline()
	var run *redis.Cmd
	if eval {
		run = script.Eval(ctx, pipe, []string{rkey}, args...)
	} else {
		run = script.EvalSha(ctx, pipe, []string{rkey}, args...)
	}
	wait := redis.NewIntCmd(ctx, "wait", s.cfg.acks, s.cfg.ackTimeout.Milliseconds())
	_ = pipe.Process(ctx, wait)
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	return run, wait
}

// primaryFor returns the client of the primary that holds rkey: the store's
// client itself, or the master of rkey's slot in a cluster.
func (s *Store) primaryFor(ctx context.Context, rkey string) (*redis.Client, error) {
	switch c := s.client.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, rkey)
	}
	return nil, fmt.Errorf("redisstore: replica acknowledgements need a *redis.Client or a *redis.ClusterClient, not %T", s.client)
}

func isRedirect(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}
