package tieredstore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// tieredFake is a minimal core.Exchange for engine tests here.
type tieredFake struct {
	key, body string
	sent      *core.Response
	runs      int
}

func (x *tieredFake) Context() context.Context { return context.Background() }
func (x *tieredFake) Method() string           { return http.MethodPost }
func (x *tieredFake) Path() string             { return "/p" }
func (x *tieredFake) RawQuery() string         { return "" }
func (x *tieredFake) Native() any              { return x }
func (x *tieredFake) Next()                    {}
func (x *tieredFake) Body() (io.Reader, int64) {
	return bytes.NewReader([]byte(x.body)), int64(len(x.body))
}
func (x *tieredFake) Header(name string) []string {
	return http.Header{core.KeyHeader: {x.key}}.Values(name)
}
func (x *tieredFake) Send(resp *core.Response) {
	cp := *resp
	cp.Header = resp.Header.Clone()
	x.sent = &cp
}

// TestCorruptHotCopyIsDiscarded puts a record no engine stores (status
// 101) in the hot tier over a sound durable record: the engine refuses
// it, the tiered store discards the hot copy alone, and the retry replays
// the durable record without running the handler again.
func TestCorruptHotCopyIsDiscarded(t *testing.T) {
	hot, durable := newMem(t), newMem(t)
	s := tieredstore.New(hot, durable)
	var keys []string
	e := core.New(s, core.WithObserver(core.ObserverFunc(func(_ context.Context, ev core.Event) {
		if ev.Outcome == core.OutcomeExecuted {
			keys = append(keys, ev.KeyHash)
		}
	})))
	x := &tieredFake{key: "k", body: "b"}
	e.Serve(x)
	if x.runs != 1 || len(keys) != 1 {
		t.Fatalf("first request: runs=%d executed=%d; want 1", x.runs, len(keys))
	}
	fp := core.DefaultFingerprint(x, []byte("b"))
	if err := hot.Put(context.Background(), keys[0], fp, &core.Response{Status: 101, Header: http.Header{}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	y := &tieredFake{key: "k", body: "b"}
	e.Serve(y)
	if y.runs != 0 || y.sent.Status != http.StatusCreated || y.sent.Extra.Get(core.DefaultReplayHeader) != "true" {
		t.Errorf("retry over a corrupt hot copy: runs=%d status=%d; want the durable record replayed", y.runs, y.sent.Status)
	}
}

func (x *tieredFake) Capture(_ context.Context, body []byte) (*core.Response, bool, error) {
	x.runs++
	return &core.Response{Status: http.StatusCreated, Header: http.Header{}, Body: []byte("made")}, true, nil
}

// flushed waits for the hot tier's warm-ups after every claim, so that a
// claim's outcome never depends on one still running.
type flushed struct{ *tieredstore.Store }

func (s flushed) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	c, err := s.Store.Claim(ctx, req)
	s.Flush()
	return c, err
}

func TestDiscarderOverMemory(t *testing.T) {
	conformance.TestDiscarder(t, func(t *testing.T) core.Store {
		return flushed{tieredstore.New(newMem(t), newMem(t))}
	})
}
