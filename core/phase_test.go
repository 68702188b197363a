package core_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// phaseLog is an Observer that also traces phases.
type phaseLog struct {
	recorder
	mu     sync.Mutex
	phases []string
}

type phaseKey struct{}

func (p *phaseLog) StartPhase(ctx context.Context, phase core.Phase, keyHash string) (context.Context, func(error)) {
	p.mu.Lock()
	p.phases = append(p.phases, "start "+string(phase))
	p.mu.Unlock()
	return context.WithValue(ctx, phaseKey{}, phase), func(err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		end := "end " + string(phase)
		if err != nil {
			end += " (error)"
		}
		p.phases = append(p.phases, end)
	}
}

func (p *phaseLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.phases
	p.phases = nil
	return out
}

func TestPhaseObserverSeesEveryStep(t *testing.T) {
	log := &phaseLog{}
	e := core.New(newStore(t), core.WithObserver(log))
	x := newFake("k", "b", created)
	var inHandler any
	x.during = func(ctx context.Context) { inHandler = ctx.Value(phaseKey{}) }
	e.Serve(x)
	want := []string{"start claim", "end claim", "start handler", "end handler", "start complete", "end complete"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("phases of a new key = %q; want %q", got, want)
	}
	if inHandler != core.PhaseHandler {
		t.Errorf("the handler's context carries %v; want the context StartPhase returned for the handler phase", inHandler)
	}
	e.Serve(newFake("k", "b", created))
	if got, want := log.take(), []string{"start claim", "end claim"}; !slices.Equal(got, want) {
		t.Errorf("phases of a replay = %q; want %q", got, want)
	}
	y := newFake("k2", "b", func([]byte) (*core.Response, error) {
		return &core.Response{Status: http.StatusBadGateway, Header: http.Header{}}, nil
	})
	e.Serve(y)
	want = []string{"start claim", "end claim", "start handler", "end handler", "start release", "end release"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("phases of a released 502 = %q; want %q", got, want)
	}
	z := newFake("k3", "b", func([]byte) (*core.Response, error) { return nil, errors.New("hijacked") })
	e.Serve(z)
	want = []string{"start claim", "end claim", "start handler", "end handler (error)", "start release", "end release"}
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("phases of a failed capture = %q; want %q", got, want)
	}
}
