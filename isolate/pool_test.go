package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeStarter is a Starter at a seam the package owns: it makes Browser
// values without processes, so the pool's own logic is what is tested. The
// process runtime behind a real pool is tested end to end in cmd/glovebox.
type fakeStarter struct {
	mu      sync.Mutex
	started []*Browser
	closed  atomic.Int32
	fail    atomic.Bool
	full    atomic.Bool // starts refused for want of room (ErrCapacity)
	// warmGate, when set, holds the pool's own (warm) starts until it is
	// closed; the tabs' starts go through.
	warmGate chan struct{}
}

func (f *fakeStarter) Name() string { return "fake" }

func (f *fakeStarter) Start(ctx context.Context, spec Spec) (*Browser, error) {
	if f.warmGate != nil && spec.TabID == "pool" {
		select {
		case <-f.warmGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail.Load() {
		return nil, errors.New("start failed")
	}
	if f.full.Load() {
		return nil, fmt.Errorf("attach network: %w", ErrCapacity)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := newBrowser(fmt.Sprintf("fake-%d", len(f.started)), "fake", func() error { f.closed.Add(1); return nil })
	f.started = append(f.started, b)
	return b, nil
}

func (f *fakeStarter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.started)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestPoolClaimsAndRefills(t *testing.T) {
	f := &fakeStarter{}
	p := NewPool(f, PoolConfig{Size: 2, RetryDelay: 10 * time.Millisecond}, quietLog())
	waitUntil(t, "two warm browsers", func() bool { return p.Stats().Ready == 2 })

	b, err := p.Start(t.Context(), Spec{TabID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Warm {
		t.Error("claimed browser not marked warm")
	}
	waitUntil(t, "the pool to refill", func() bool { return p.Stats().Ready == 2 })
	if f.count() != 3 {
		t.Errorf("started %d browsers, want 3 (2 warm + 1 refill)", f.count())
	}
	// A claimed browser is never handed out again.
	b2, _ := p.Start(t.Context(), Spec{TabID: "t2"})
	if b2 == b {
		t.Error("the same browser was handed out twice")
	}
	s := p.Stats()
	if s.Claims != 2 || s.Misses != 0 {
		t.Errorf("stats = %+v, want 2 claims, 0 misses", s)
	}
	b.Close()
	b2.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything started is closed: the two claimed by their tabs, the rest by the pool.
	if got := int(f.closed.Load()); got != f.count() {
		t.Errorf("closed %d of %d browsers", got, f.count())
	}
	if _, err := p.Start(t.Context(), Spec{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestPoolColdWhenEmpty(t *testing.T) {
	f := &fakeStarter{warmGate: make(chan struct{})}
	p := NewPool(f, PoolConfig{Size: 1, RetryDelay: 10 * time.Millisecond}, quietLog())
	defer p.Close()
	b, err := p.Start(t.Context(), Spec{TabID: "t1"}) // the warm one is held
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Warm {
		t.Error("a cold browser is marked warm")
	}
	if s := p.Stats(); s.Misses != 1 {
		t.Errorf("stats = %+v, want 1 miss", s)
	}
}

func TestPoolReplacesDeadAndRetriesFailures(t *testing.T) {
	f := &fakeStarter{}
	f.fail.Store(true)
	p := NewPool(f, PoolConfig{Size: 1, RetryDelay: 10 * time.Millisecond}, quietLog())
	defer p.Close()
	waitUntil(t, "failures to be counted", func() bool { return p.Stats().Failures >= 2 })
	f.fail.Store(false)
	waitUntil(t, "a warm browser after the failures", func() bool { return p.Stats().Ready == 1 })

	// The warm browser dies while waiting: it is discarded and replaced.
	f.mu.Lock()
	dead := f.started[0]
	f.mu.Unlock()
	dead.exited()
	waitUntil(t, "the dead browser to be replaced", func() bool {
		s := p.Stats()
		return s.Discards == 1 && s.Ready == 1
	})
	b, err := p.Start(t.Context(), Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b == dead {
		t.Error("a dead browser was handed out")
	}
}

// TestPoolHealth: a pool whose warm starts keep failing reports it, with the
// runtime's error; once a start succeeds it is healthy again.
func TestPoolHealth(t *testing.T) {
	f := &fakeStarter{}
	f.fail.Store(true)
	p := NewPool(f, PoolConfig{Size: 2, RetryDelay: 10 * time.Millisecond}, quietLog())
	defer p.Close()
	waitUntil(t, "the pool to report failing", func() bool { return p.Health() != nil })
	err := p.Health()
	t.Log(err)
	if s := p.Stats(); s.Failures < poolFailingAfter {
		t.Errorf("failing after %d failures, want at least %d", s.Failures, poolFailingAfter)
	}
	if !strings.Contains(err.Error(), "start failed") || !strings.Contains(err.Error(), "warm starts failed") {
		t.Errorf("Health = %q, want the count and the runtime's error", err)
	}
	f.fail.Store(false)
	waitUntil(t, "the pool to recover", func() bool { return p.Health() == nil && p.Stats().Ready == 2 })
}

// TestPoolHealthAtCapacity: warm starts refused for want of room (every
// /30 of the subnet held by open tabs) are capacity, not a failing runtime:
// the pool stays healthy.
func TestPoolHealthAtCapacity(t *testing.T) {
	f := &fakeStarter{}
	f.full.Store(true)
	p := NewPool(f, PoolConfig{Size: 2, RetryDelay: 10 * time.Millisecond}, quietLog())
	defer p.Close()
	waitUntil(t, "refused warm starts", func() bool { return p.Stats().Failures >= 2*poolFailingAfter })
	if err := p.Health(); err != nil {
		t.Errorf("Health at capacity = %v, want healthy", err)
	}
}
