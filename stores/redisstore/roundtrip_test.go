package redisstore

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/redis/go-redis/v9"
)

// commandLog is a go-redis hook that records every command sent.
type commandLog struct {
	mu   sync.Mutex
	cmds []string
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.mu.Lock()
		l.cmds = append(l.cmds, cmd.Name())
		l.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		l.mu.Lock()
		l.cmds = append(l.cmds, "pipeline")
		l.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cmds
	l.cmds = nil
	return c
}

// TestOneRoundTrip checks that, once the scripts are cached on the server,
// every store call is exactly one EVALSHA: claim, replay, in-flight,
// mismatch, complete, renew and release.
func TestOneRoundTrip(t *testing.T) {
	opt := singleClient(t).Options()
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	log := &commandLog{}
	client.AddHook(log)
	s := New(client, WithPrefix(uniquePrefix(t)))
	ctx := context.Background()

	// Warm up: the first run of each script may need EVAL after NOSCRIPT.
	k0, t0 := newKey(t), newToken(t)
	claim(t, s, k0, fp(1), t0, time.Minute)
	_ = s.Renew(ctx, k0, t0, time.Minute)
	_ = s.Complete(ctx, k0, t0, sampleResponse(), time.Minute)
	_ = s.Release(ctx, k0, t0)
	log.take()

	key, tok := newKey(t), newToken(t)
	steps := []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { claim(t, s, key, fp(1), tok, time.Minute); return nil }},
		{"ClaimInFlight", func() error { claim(t, s, key, fp(1), newToken(t), time.Minute); return nil }},
		{"ClaimMismatch", func() error { claim(t, s, key, fp(2), newToken(t), time.Minute); return nil }},
		{"Renew", func() error { return s.Renew(ctx, key, tok, time.Minute) }},
		{"Complete", func() error { return s.Complete(ctx, key, tok, sampleResponse(), time.Minute) }},
		{"ClaimReplay", func() error {
			if c := claim(t, s, key, fp(1), newToken(t), time.Minute); c.Status != core.ClaimReplay || c.Response == nil {
				t.Errorf("Claim = %v; want replay with the response in the same round trip", c.Status)
			}
			return nil
		}},
		{"Release", func() error {
			k, tk := newKey(t), newToken(t)
			claim(t, s, k, fp(1), tk, time.Minute)
			log.take()
			return s.Release(ctx, k, tk)
		}},
	}
	for _, st := range steps {
		if err := st.call(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := log.take(); len(got) != 1 || got[0] != "evalsha" {
			t.Errorf("%s sent %v; want exactly one evalsha", st.name, got)
		}
	}
}
