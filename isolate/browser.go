// Package isolate runs the disposable browsers that serve Glovebox's tabs:
// one Chromium per tab, started by a runtime and destroyed with everything the
// site left in it when the tab closes.
//
// A runtime returns a *Browser whatever it runs on (a container, or a child
// process for development), and the caller reaches the browser only through its
// DevTools address. The package knows nothing of HTTP, WebRTC or chromedp.
package isolate

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sync"

	"github.com/glovebox/glovebox/isolate/netns"
)

// Default window size of a browser whose Spec gives none, in CSS pixels. A
// warm browser is started before any client has told its size.
const (
	DefaultWidth  = 1280
	DefaultHeight = 720
)

// maxWindow bounds each side of a window, in CSS pixels.
const maxWindow = 16384

// ErrClosed is returned by a runtime's Start after its Close.
var ErrClosed = errors.New("isolate: runtime closed")

// ErrCapacity reports a start refused because a limit is reached, not
// because something failed: a later start may succeed. The errors of such
// starts wrap it, netns.ErrSubnetFull's among them (it is netns's own
// sentinel, as netns imports nothing of isolate's).
var ErrCapacity = netns.ErrCapacity

// Spec describes the browser one tab needs.
type Spec struct {
	// TabID is the tab the browser serves. It labels logs (and, in other
	// runtimes, containers) so that one id joins a request to its browser.
	TabID string
	// Width and Height are the initial window size in CSS pixels. Zero means
	// DefaultWidth×DefaultHeight. The first screencast frames come at this
	// size, so match it to the client's viewport when it is known.
	Width, Height int
	// Scale is the device scale factor of the browser's screen, 0.25 to 4;
	// zero means 1. Headless Chromium captures frames at its screen's
	// factor whatever a page emulates, so a client with a devicePixelRatio
	// of 2 gets sharp frames only from a browser started with Scale 2.
	Scale float64
}

// normalize fills in the default size and checks the rest.
func (s Spec) normalize() (Spec, error) {
	if s.Width == 0 && s.Height == 0 {
		s.Width, s.Height = DefaultWidth, DefaultHeight
	}
	if s.Width <= 0 || s.Height <= 0 || s.Width > maxWindow || s.Height > maxWindow {
		return s, fmt.Errorf("isolate: window size %dx%d: each side must be between 1 and %d", s.Width, s.Height, maxWindow)
	}
	if s.Scale == 0 {
		s.Scale = 1
	}
	if math.IsNaN(s.Scale) || s.Scale < 0.25 || s.Scale > 4 {
		return s, fmt.Errorf("isolate: scale %v is not between 0.25 and 4", s.Scale)
	}
	return s, nil
}

// Browser is one running Chromium that serves exactly one tab. All runtimes
// return this type.
type Browser struct {
	// ID names the browser on this host (a profile directory, a container).
	ID string
	// Runtime is the name of the runtime that started it, such as "process".
	Runtime string
	// DevToolsURL is the browser's DevTools websocket address, such as
	// ws://127.0.0.1:PORT/devtools/browser/UUID, reachable from the host.
	// When DevToolsSocket is set, its host is only the Host header to send
	// (localhost) and the connection goes to the socket.
	DevToolsURL string
	// DevToolsSocket is the path of a unix socket, open to Glovebox's user
	// only, that reaches the browser's DevTools: the containerd runtime's
	// way, so that no TCP port of the host leads to a tab's browser.
	// Empty for the process runtime (development only), whose DevTools is
	// on the host's loopback.
	DevToolsSocket string
	// Addr is the browser's own address as the egress proxy sees it: the
	// source address of every request the browser makes. It is nil when the
	// browser has no network of its own (the process runtime, or a
	// container runtime without a Networker).
	Addr net.IP
	// AudioPath is the FIFO on the host to which the browser's sound
	// device writes what the browser plays: s16le, AudioChannels channels
	// at AudioRate, nothing while it plays nothing. Reading it is for
	// Glovebox's user only. Empty when the runtime gives browsers no
	// sound device (its pulseaudio setting is empty): they are muted.
	AudioPath string
	// FilesDir is the host directory of the files that cross between the
	// browser and its user: downloads it saves there, uploads Glovebox
	// puts there for it. It is the browser's user's, removed with the
	// browser; Glovebox (root) reads and writes it. FilesPath is the same
	// directory as the browser sees it (inside its container).
	FilesDir  string
	FilesPath string
	// Node is the Kubernetes node the browser's pod runs on; empty for
	// the other runtimes.
	Node string
	// Warm reports that the browser was started ahead by the pool, before
	// any tab asked for it. The pool sets it; runtimes leave it false.
	Warm bool

	done     chan struct{}
	doneOnce sync.Once

	closeOnce sync.Once
	closeErr  error
	// stop is the runtime's teardown: it kills every process of the browser
	// and removes what it wrote. Close calls it once.
	stop func() error
	// oom reports whether the kernel killed a process of the browser for
	// going over its memory limit; nil where the runtime cannot tell.
	oom func() bool
}

// newBrowser returns a Browser whose Close calls stop.
func newBrowser(id, runtime string, stop func() error) *Browser {
	return &Browser{ID: id, Runtime: runtime, done: make(chan struct{}), stop: stop}
}

// exited marks the browser as gone. It is safe to call more than once.
func (b *Browser) exited() { b.doneOnce.Do(func() { close(b.done) }) }

// Done returns a channel that is closed when the browser has exited for any
// reason: a crash, a kill from outside, or Close. The runtime does not clean
// up by itself; call Close after Done.
func (b *Browser) Done() <-chan struct{} { return b.done }

// OutOfMemory reports whether the kernel killed one of the browser's
// processes (a renderer, or the browser itself) because it went over its
// memory limit (isolate.containerd.memory_mb): a page that allocated too
// much. Ask it before Close, which removes the record. Only the containerd
// runtime limits and counts; the others report false.
func (b *Browser) OutOfMemory() bool { return b.oom != nil && b.oom() }

// Close kills the browser and all its processes and removes its profile. It
// is idempotent, safe after a partial start, and returns the first call's
// error on later calls.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		if b.stop != nil {
			b.closeErr = b.stop()
		}
		b.exited()
	})
	return b.closeErr
}

// browserSet is the browsers a runtime started and has not closed, each with
// the runtime's state of it: what Running counts and Close closes. Once
// closed it takes no more. The zero value is an empty, open set.
type browserSet[T any] struct {
	mu     sync.Mutex
	closed bool
	m      map[*Browser]T
}

// add records b and its state v. It records nothing and returns false once
// the set is closed: the start that made b then fails with ErrClosed.
func (s *browserSet[T]) add(b *Browser, v T) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = make(map[*Browser]T)
	}
	s.m[b] = v
	return true
}

// remove forgets b, once it is closed.
func (s *browserSet[T]) remove(b *Browser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, b)
}

// get returns the state recorded with b.
func (s *browserSet[T]) get(b *Browser) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[b]
	return v, ok
}

// isClosed reports whether close was called.
func (s *browserSet[T]) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// running returns how many of the browsers have not exited.
func (s *browserSet[T]) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for b := range s.m {
		select {
		case <-b.Done():
		default:
			n++
		}
	}
	return n
}

// close closes the set to new browsers and returns those in it, for the
// runtime to close.
func (s *browserSet[T]) close() []*Browser {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	bs := make([]*Browser, 0, len(s.m))
	for b := range s.m {
		bs = append(bs, b)
	}
	return bs
}
