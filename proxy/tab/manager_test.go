package tab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/stream"
)

// blockingIsolator is a runtime whose Start waits until the tab ends (or
// fails with err at once): a tab of it stays starting for as long as a test
// needs, with no browser.
type blockingIsolator struct{ err error }

func (blockingIsolator) Name() string { return "fake" }

func (b blockingIsolator) Start(ctx context.Context, _ isolate.Spec) (*isolate.Browser, error) {
	if b.err != nil {
		return nil, b.err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// noPeers is a Streamer that makes no peers.
type noPeers struct{}

func (noPeers) NewPeer(stream.PeerOptions) (*stream.Peer, error) {
	return nil, errors.New("no peers in this test")
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestManager(t *testing.T, iso Isolator, edit func(*Config)) *Manager {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m := NewManager(cfg, iso, noPeers{}, nil, quiet())
	t.Cleanup(m.Close)
	return m
}

func request(u string) Request { return Request{URL: u, Width: 800, Height: 600, DPR: 1} }

// TestManagerCapacityAndOwner: tabs.max and tabs.max_per_user hold, a
// token works only for its owner (another owner gets exactly the
// unknown-token answer), and an ended tab tells its owner why.
func TestManagerCapacityAndOwner(t *testing.T) {
	m := newTestManager(t, blockingIsolator{}, func(c *Config) { c.Max = 3; c.MaxPerUser = 2 })
	alice1, err := m.Create(request("https://a.test/"), "192.0.2.1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(request("https://a.test/2"), "192.0.2.1", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(request("https://a.test/3"), "192.0.2.1", "alice"); !errors.Is(err, ErrUserLimit) {
		t.Errorf("alice's third tab: %v, want ErrUserLimit", err)
	}
	if _, err := m.Create(request("https://b.test/"), "192.0.2.2", "bob"); err != nil {
		t.Errorf("bob's first tab: %v", err)
	}
	if _, err := m.Create(request("https://c.test/"), "192.0.2.3", "carol"); !errors.Is(err, ErrCapacity) {
		t.Errorf("past tabs.max: %v, want ErrCapacity", err)
	}
	if m.Count() != 3 || len(m.List()) != 3 {
		t.Errorf("Count %d, List %d, want 3", m.Count(), len(m.List()))
	}
	for _, in := range m.List() {
		if in.Tab == alice1.ID() && (in.User != "alice" || in.ClientIP != "192.0.2.1" || in.URL != "https://a.test/" ||
			!in.Starting || in.Browser != "" || in.LastActive.IsZero()) {
			t.Errorf("List: alice's starting tab is %+v", in)
		}
	}

	if got, err := m.Lookup(alice1.Token(), Owner("alice", "192.0.2.1")); err != nil || got != alice1 {
		t.Errorf("alice's own token: %v, %v", got, err)
	}
	_, unknown := m.Lookup("no-such-token", Owner("bob", "192.0.2.2"))
	_, foreign := m.Lookup(alice1.Token(), Owner("bob", "192.0.2.2"))
	if !errors.Is(foreign, ErrNoTab) || foreign.Error() != unknown.Error() {
		t.Errorf("bob with alice's token: %v, want the unknown-token answer %v", foreign, unknown)
	}
	// Without authentication the owner is the address: the same user
	// name from another address is someone else.
	if _, err := m.Lookup(alice1.Token(), Owner("", "192.0.2.1")); !errors.Is(err, ErrNoTab) {
		t.Errorf("the address without the user: %v", err)
	}

	if !m.EndByID(alice1.ID(), "ended by the test") {
		t.Fatal("EndByID found no tab")
	}
	waitCount(t, m, 2)
	var ended *EndedError
	if _, err := m.Lookup(alice1.Token(), Owner("alice", "192.0.2.1")); !errors.As(err, &ended) || ended.Reason != "ended by the test" {
		t.Errorf("alice's ended tab: %v, want EndedError with the reason", err)
	}
	if _, err := m.Lookup(alice1.Token(), Owner("bob", "192.0.2.2")); err == nil || errors.As(err, &ended) {
		t.Errorf("bob learns why alice's tab ended: %v", err)
	}
	if _, err := m.Create(request("https://c.test/"), "192.0.2.3", "carol"); err != nil {
		t.Errorf("a place after a tab ended: %v", err)
	}
}

// TestManagerHandoff: a hand-over code is claimed once, by the tab's owner,
// on the origin it was issued for, before it expires.
func TestManagerHandoff(t *testing.T) {
	m := newTestManager(t, blockingIsolator{}, func(c *Config) { c.ReattachGrace = time.Minute })
	tb, err := m.Create(request("https://a.test/"), "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	owner := Owner("", "192.0.2.1")
	code := m.Handoff(tb, "https://b.test:443")
	if _, err := m.Claim(code, Owner("", "192.0.2.9"), "https://b.test:443"); !errors.Is(err, ErrNoTab) {
		t.Errorf("another owner claims: %v", err)
	}
	if _, err := m.Claim(code, owner, "https://evil.test:443"); !errors.Is(err, ErrNoTab) {
		t.Errorf("claimed on another origin: %v", err)
	}
	if got, err := m.Claim(code, owner, "https://b.test:443"); err != nil || got != tb {
		t.Fatalf("the owner on the code's origin: %v, %v", got, err)
	}
	if _, err := m.Claim(code, owner, "https://b.test:443"); !errors.Is(err, ErrNoTab) {
		t.Errorf("a code claimed twice: %v", err)
	}

	short := newTestManager(t, blockingIsolator{}, func(c *Config) { c.ReattachGrace = 20 * time.Millisecond })
	tb2, err := short.Create(request("https://a.test/"), "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	code = short.Handoff(tb2, "https://b.test:443")
	for deadline := time.Now().Add(25 * time.Millisecond); time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the code's lifetime passing is what is tested
	}
	if _, err := short.Claim(code, owner, "https://b.test:443"); !errors.Is(err, ErrNoTab) {
		t.Errorf("an expired code: %v", err)
	}
}

// TestManagerStartFailure: a browser that cannot start ends the tab, and
// its owner is told why (so the landing page can say it).
func TestManagerStartFailure(t *testing.T) {
	m := newTestManager(t, blockingIsolator{err: errors.New("no browser today")}, nil)
	tb, err := m.Create(request("https://a.test/"), "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	waitCount(t, m, 0)
	var ended *EndedError
	_, err = m.Lookup(tb.Token(), Owner("", "192.0.2.1"))
	if !errors.As(err, &ended) || ended.StartErr == nil || !strings.Contains(ended.StartErr.Error(), "no browser today") {
		t.Errorf("Lookup after a failed start: %v", err)
	}
	if _, err := tb.Attach(t.Context(), "v=0"); err == nil {
		t.Error("Attach to a tab that failed to start succeeded")
	}
}

// TestTabExpiry: a started tab (a real Chromium from the process runtime)
// that no landing page attaches ends after tabs.reattach_grace; one that
// has no input ends at tabs.idle_timeout; any ends at tabs.max_lifetime.
func TestTabExpiry(t *testing.T) {
	const chromium = "/usr/lib/chromium/chromium"
	if _, err := os.Stat(chromium); err != nil || os.Geteuid() != 0 {
		testenv.Missing(t, "needs Debian's chromium and root for the process runtime (%v)", err)
	}
	p, err := isolate.NewProcess(isolate.DefaultProcessConfig(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		reason string
	}{
		{"reattach grace", func(c *Config) { c.ReattachGrace = 300 * time.Millisecond }, "closed by user"},
		{"idle timeout", func(c *Config) { c.IdleTimeout = 300 * time.Millisecond }, "idle timeout"},
		{"max lifetime", func(c *Config) { c.MaxLifetime = 300 * time.Millisecond }, "max lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(t, p, tc.edit)
			tb, err := m.Create(request("http://127.0.0.1:9/"), "192.0.2.1", "")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-tb.ended:
			case <-time.After(30 * time.Second):
				t.Fatal("the tab did not end")
			}
			waitCount(t, m, 0)
			var ended *EndedError
			if _, err := m.Lookup(tb.Token(), Owner("", "192.0.2.1")); !errors.As(err, &ended) || ended.Reason != tc.reason {
				t.Errorf("ended for %v, want %q", err, tc.reason)
			}
			if p.Running() != 0 {
				t.Errorf("%d browsers left running", p.Running())
			}
		})
	}
}

// waitCount waits for m to have n tabs: a tab counts until its browser is gone.
func waitCount(t *testing.T, m *Manager, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for m.Count() != n {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("%d tabs, want %d", m.Count(), n))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
