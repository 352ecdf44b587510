// Package render drives the one page of a remote Chromium through the
// DevTools protocol, with chromedp: it navigates, screencasts, injects the
// user's input, keeps the viewport at the client's size and reports
// navigation, dialogs and crashes.
//
// It knows nothing of how the browser was started (it gets a DevTools
// address) nor of where frames and events go (it calls the funcs of Options).
package render

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
)

// Errors that callers branch on. Returned errors wrap them.
var (
	// ErrBadInput reports an invalid event, option or URL from the client.
	ErrBadInput = errors.New("render: bad input")
	// ErrClosed reports a call on a tab that is closed or gone.
	ErrClosed = errors.New("render: tab closed")
	// ErrNavigation reports a navigation that failed, such as a network error.
	ErrNavigation = errors.New("render: navigation failed")
)

// Limits of the viewport.
const (
	maxViewport = 8192 // CSS px on each side
	maxScale    = 4.0  // device scale factor
)

// DefaultQuality is the screencast JPEG quality when Options gives none.
const DefaultQuality = 80

// Options configures a Tab.
type Options struct {
	// Width and Height are the viewport in CSS pixels (the client's window).
	Width, Height int
	// Scale is the device scale factor (the client's devicePixelRatio,
	// already capped by the caller), 0.25 to 4. Zero means 1. The page
	// renders at it; the frames have at most the browser screen's own
	// scale factor (see Frame.Data).
	Scale float64
	// Quality is the screencast JPEG quality, 1 to 100. Zero means
	// DefaultQuality.
	Quality int
	// OnFrame is called for every screencast frame of the viewport's size,
	// from one goroutine. It must not block and must not call Close. Set it
	// before Open, so that no frame is missed.
	OnFrame func(Frame)
	// OnEvent is called for URL, title, dialog, sign-in, crash and close
	// events, one call at a time. It must not block and must not call Close.
	OnEvent func(Event)
	// HTTPAuth makes requests of the page that meet an HTTP authentication
	// challenge wait for AnswerAuth (EventAuth) instead of failing. It
	// enables DevTools interception (Fetch), through which every request of
	// the page then passes: about a millisecond each, measured on loopback;
	// only documents pause (see fetchPatterns).
	HTTPAuth bool
	// Log receives the tab's logs. Nil discards them.
	Log *slog.Logger
	// DevToolsSocket, when set, is the unix socket that reaches the
	// browser's DevTools; the address given to Open then names only the
	// path and Host of its websocket.
	DevToolsSocket string
	// TargetID, when set, names the page to attach to: a popup of another
	// Tab of the same browser (see EventPopup). Open fails when the browser
	// has no such page. Empty means the browser's blank page, or a new one.
	TargetID string
	// DownloadDir, when set, is the directory (as the browser sees it)
	// into which the browser saves downloads, each named by its GUID, and
	// the Tab reports them (EventDownload). Empty means the browser
	// refuses every download. A popup's Tab (TargetID set) leaves the
	// browser's downloads to its opener's.
	DownloadDir string
}

// normalize fills in defaults and checks the options.
func (o Options) normalize() (Options, error) {
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.Quality == 0 {
		o.Quality = DefaultQuality
	}
	if err := checkViewport(o.Width, o.Height, o.Scale); err != nil {
		return o, err
	}
	if o.Quality < 1 || o.Quality > 100 {
		return o, fmt.Errorf("%w: quality %d is not between 1 and 100", ErrBadInput, o.Quality)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func checkViewport(w, h int, scale float64) error {
	if w < 1 || h < 1 || w > maxViewport || h > maxViewport {
		return fmt.Errorf("%w: viewport %dx%d: each side must be between 1 and %d", ErrBadInput, w, h, maxViewport)
	}
	if math.IsNaN(scale) || scale < 0.25 || scale > maxScale {
		return fmt.Errorf("%w: scale %v is not between 0.25 and %v", ErrBadInput, scale, maxScale)
	}
	return nil
}

// Tab is the page of one remote browser, attached over DevTools.
type Tab struct {
	opt Options
	log *slog.Logger

	allocCtx    context.Context
	allocCancel context.CancelFunc
	browserStop context.CancelFunc
	tabStop     context.CancelFunc
	bctx        context.Context // the chromedp context of the browser
	ctx         context.Context // the chromedp context of the page
	target      *chromedp.Target
	pageID      target.ID // set before the listener starts

	// mu guards the fields below it.
	mu        sync.Mutex
	width     int
	height    int
	scale     float64
	url       string
	title     string
	mainFrame cdp.FrameID

	// popupMu guards popups: the pages this one opened, by id, with the
	// timer of one not reported yet (nil once reported).
	popupMu sync.Mutex
	popups  map[target.ID]*time.Timer
	// agentFrames are the agent's execution contexts and their frames;
	// cursor is the last cursor reported (agent.go).
	agentFrames map[runtime.ExecutionContextID]agentFrame
	cursor      string

	// resizeMu serializes Resize and the screencast's stops and starts;
	// hidden (under it) is the screencast stopped by Hide (visibility.go).
	resizeMu sync.Mutex
	hidden   hiddenState
	// viewMu serializes View: one file opens at a time (view.go).
	viewMu sync.Mutex

	// cbMu serializes the calls of OnFrame and OnEvent, and stopped ends
	// them: no call starts after Close has set it.
	cbMu    sync.Mutex
	stopped bool

	acks      acker
	titleKick chan struct{} // capacity 1
	navKick   chan struct{} // capacity 1
	hist      history       // navLoop's, see history.go
	entry     Event         // the current history entry's url event, under mu
	closeReq  chan struct{} // capacity 1: the page asked to close
	framed    chan struct{} // closed at the first frame handed on
	frameOnce sync.Once

	// dialogMu guards ds, the open dialog and sign-ins (dialog.go).
	dialogMu sync.Mutex
	ds       dialogState

	dl           downloads // download.go
	fileChoosers choosers  // upload.go

	crashed   chan struct{}
	crashOnce sync.Once
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Open attaches to the page of the browser at devtoolsURL (its about:blank
// page, or a new one when it has none), sets the viewport and starts the
// screencast. ctx is the tab's lifetime: cancelling it disconnects, and then
// Done closes. Call Close when done with the tab.
func Open(ctx context.Context, devtoolsURL string, opt Options) (_ *Tab, retErr error) {
	opt, err := opt.normalize()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(devtoolsURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("%w: DevTools address %q is not a ws:// URL", ErrBadInput, devtoolsURL)
	}
	t := &Tab{
		opt:       opt,
		log:       opt.Log.With("component", "render"),
		width:     opt.Width,
		height:    opt.Height,
		scale:     opt.Scale,
		titleKick: make(chan struct{}, 1),
		navKick:   make(chan struct{}, 1),
		closeReq:  make(chan struct{}, 1),
		framed:    make(chan struct{}),
		crashed:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	t.acks.signal = make(chan struct{}, 1)
	defer func() {
		if retErr != nil {
			t.Close()
		}
	}()

	if opt.DevToolsSocket != "" {
		t.allocCtx, t.allocCancel = chromedp.NewAllocatorContext(ctx, &socketAllocator{socket: opt.DevToolsSocket, wsURL: devtoolsURL})
	} else {
		t.allocCtx, t.allocCancel = remote.NewAllocator(ctx, devtoolsURL, remote.NoModifyURL)
	}
	logf := func(level slog.Level) func(string, ...any) {
		return func(format string, args ...any) {
			t.log.Log(ctx, level, "chromedp: "+fmt.Sprintf(format, args...))
		}
	}
	bctx, bcancel := chromedp.NewContext(t.allocCtx,
		chromedp.WithLogf(logf(slog.LevelDebug)),
		chromedp.WithErrorf(logf(slog.LevelWarn)))
	t.browserStop = bcancel
	t.bctx = bctx

	// The first call on bctx connects, and binds the connection to bctx.
	infos, err := chromedp.Targets(bctx)
	if err != nil {
		return nil, fmt.Errorf("connect to DevTools: %w", err)
	}
	id, info := pickPage(infos)
	if opt.TargetID != "" {
		id, info = findPage(infos, target.ID(opt.TargetID))
		if id == "" {
			return nil, fmt.Errorf("%w: attach to page %s: %w", ErrClosed, opt.TargetID, errNoPage)
		}
	}
	if id == "" {
		res, err := chromedp.CallBrowser(bctx, target.CreateTarget, target.CreateTargetParams{URL: "about:blank", NewWindow: new(true)})
		if err != nil {
			return nil, fmt.Errorf("create page: %w", err)
		}
		id = res.TargetID
	} else {
		t.url, t.title = info.URL, info.Title
	}

	t.pageID = id
	// The listener is on before the first command, so that no event of
	// the attach is missed. The page outlives Close, which only detaches:
	// the browser's owner ends it.
	tctx, tcancel := chromedp.NewContext(bctx,
		chromedp.WithTargetID(id),
		chromedp.WithDetachOnCancel(),
		chromedp.WithListener(t.onCDPEvent))
	t.tabStop = tcancel
	t.ctx = tctx
	if err := chromedp.Do(tctx); err != nil {
		return nil, fmt.Errorf("attach to page %s: %w", id, err)
	}
	t.target = chromedp.FromContext(tctx).Target
	detached, err := chromedp.Detached(tctx)
	if err != nil {
		return nil, fmt.Errorf("attach to page %s: %w", id, err)
	}
	tree, err := cdp.Call(tctx, t.target, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		return nil, fmt.Errorf("read frame tree: %w", err)
	}
	t.mu.Lock()
	if t.mainFrame == "" {
		t.mainFrame = tree.FrameTree.Frame.ID
		t.url = tree.FrameTree.Frame.URL + tree.FrameTree.Frame.URLFragment
	}
	t.mu.Unlock()

	if err := t.seedHistory(tctx); err != nil {
		return nil, err
	}

	t.wg.Add(3)
	go t.ackLoop()
	go t.titleLoop()
	go t.watch(detached)
	t.wg.Add(1)
	go t.navLoop()

	// Viewport, focus and screencast do not depend on each other: they go
	// together instead of one round trip to the page after another (frames
	// of another size are dropped until the viewport applies).
	setup := []func() error{
		func() error { return t.setMetrics(tctx, opt.Width, opt.Height, opt.Scale) },
		func() error {
			// A page that is not focused gets no focus events and shows no
			// caret; the remote page stands for the user's focused tab.
			_, err := cdp.Call(tctx, t.target, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
			if err != nil {
				return fmt.Errorf("emulate focus: %w", err)
			}
			return nil
		},
		func() error { return t.startScreencast(tctx, opt.Width, opt.Height, opt.Scale) },
		func() error { return t.installAgent(tctx) },
		func() error { return t.interceptFileChoosers(tctx) },
	}
	if opt.HTTPAuth {
		setup = append(setup, func() error { return t.enableAuth(tctx) })
	}
	switch {
	case opt.TargetID != "":
	case opt.DownloadDir != "":
		setup = append(setup, func() error { return t.enableDownloads(bctx, opt.DownloadDir) })
	default:
		setup = append(setup, func() error { return t.denyDownloads(bctx) })
	}
	errs := make(chan error, len(setup))
	for _, f := range setup {
		go func() { errs <- f() }()
	}
	var setupErr error
	for range setup {
		if err := <-errs; err != nil && setupErr == nil {
			setupErr = err
		}
	}
	if setupErr != nil {
		return nil, setupErr
	}
	if opt.TargetID != "" {
		// A popup may have painted before the screencast started: a
		// static page would then send no frame at all.
		if err := t.repaint(tctx); err != nil {
			return nil, err
		}
		t.wg.Add(1)
		go t.awaitFirstFrame()
	}
	t.log.Debug("tab open", "target", id, "url", t.URL(), "width", opt.Width, "height", opt.Height, "scale", opt.Scale)
	return t, nil
}

// pickPage returns the first page target that no client is attached to, or
// else the first page target, or "" when there is none.
func pickPage(infos []*target.Info) (target.ID, *target.Info) {
	var first *target.Info
	for _, info := range infos {
		if info.Type != "page" {
			continue
		}
		if !info.Attached {
			return info.TargetID, info
		}
		if first == nil {
			first = info
		}
	}
	if first == nil {
		return "", nil
	}
	return first.TargetID, first
}

// errNoPage is why Open fails for an Options.TargetID the browser does not have.
var errNoPage = errors.New("no such page")

// findPage returns the page target id of infos, or "" when there is none.
func findPage(infos []*target.Info, id target.ID) (target.ID, *target.Info) {
	for _, info := range infos {
		if info.TargetID == id && info.Type == "page" {
			return id, info
		}
	}
	return "", nil
}

// URL returns the latest known URL of the page.
func (t *Tab) URL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.url
}

// Title returns the latest known title of the page.
func (t *Tab) Title() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.title
}

// Done returns a channel that is closed when the page crashed, was closed,
// or the connection to the browser is gone (or ctx of Open ended). Call Close
// after it.
func (t *Tab) Done() <-chan struct{} { return t.done }

// Close stops the callbacks and the screencast and disconnects. It leaves the
// page to the browser's owner, which ends it with the browser. No callback
// starts after Close returns. It is idempotent and safe after a failed Open.
func (t *Tab) Close() error {
	t.closeOnce.Do(func() {
		t.cbMu.Lock()
		t.stopped = true
		t.cbMu.Unlock()
		t.stopPopupTimers()
		if t.tabStop != nil {
			t.tabStop() // detaches, which also ends the screencast
		}
		if t.browserStop != nil {
			t.browserStop()
		}
		if t.allocCancel != nil {
			t.allocCancel()
			if c := chromedp.FromContext(t.allocCtx); c != nil && c.Allocator != nil {
				c.Allocator.Wait() // the websocket is closed
			}
		}
		t.wg.Wait()
		t.finish("")
	})
	return nil
}

// finish closes Done once, after emitting an event of type typ (unless typ
// is empty).
func (t *Tab) finish(typ EventType) {
	select {
	case <-t.done:
		return
	default:
	}
	if typ != "" {
		t.emit(Event{Type: typ, URL: t.URL(), Title: t.Title()})
	}
	close(t.done)
}

// watch closes Done when the page crashes, is detached, or the connection or
// the tab's context ends.
func (t *Tab) watch(detached <-chan struct{}) {
	defer t.wg.Done()
	for {
		select {
		case <-t.closeReq:
			if err := t.CloseTarget(t.ctx, string(t.pageID)); err != nil && t.ctx.Err() == nil {
				t.log.Debug("close page", "err", err)
			}
			continue // detached follows
		case <-t.crashed:
			t.log.Warn("page crashed", "url", t.URL())
			t.finish(EventCrashed)
		case <-detached:
			// A page that closed itself (window.close) is gone from a
			// browser that still answers; a lost connection answers nothing.
			if t.ctx.Err() == nil && t.pageGone() {
				t.log.Info("page closed itself", "url", t.URL())
				t.finish(EventPageClosed)
				return
			}
			t.log.Info("page closed", "url", t.URL())
			t.finish(EventClosed)
		case <-t.ctx.Done():
			t.finish(EventClosed)
		}
		return
	}
}

// emit calls OnEvent unless the tab is closing.
func (t *Tab) emit(ev Event) {
	t.cbMu.Lock()
	defer t.cbMu.Unlock()
	if t.stopped || t.opt.OnEvent == nil {
		return
	}
	t.opt.OnEvent(ev)
}

// call runs a command on the page, bounded by ctx and by the tab's life.
func (t *Tab) call(ctx context.Context, method string, params any) error {
	return t.callResult(ctx, method, params, nil)
}

// callResult is call that decodes the command's result into res.
func (t *Tab) callResult(ctx context.Context, method string, params, res any) error {
	select {
	case <-t.done:
		return ErrClosed
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	if err := t.target.Call(ctx, method, params, res); err != nil {
		select {
		case <-t.done:
			return fmt.Errorf("%w: %w", ErrClosed, err)
		default:
		}
		if t.ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return err
	}
	return nil
}

// setMetrics sets the viewport and the device scale factor. The new size is
// the expected frame size from before the command, so that the first frame
// of the new size is not taken for a stale one.
func (t *Tab) setMetrics(ctx context.Context, w, h int, scale float64) error {
	t.mu.Lock()
	oldW, oldH, oldScale := t.width, t.height, t.scale
	t.width, t.height, t.scale = w, h, scale
	t.mu.Unlock()
	err := t.call(ctx, emulation.CommandSetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: int64(w), Height: int64(h), DeviceScaleFactor: scale, Mobile: false,
	})
	if err != nil {
		t.mu.Lock()
		t.width, t.height, t.scale = oldW, oldH, oldScale
		t.mu.Unlock()
		return fmt.Errorf("set viewport %dx%d@%v: %w", w, h, scale, err)
	}
	return nil
}
