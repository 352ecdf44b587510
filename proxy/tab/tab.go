package tab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/scan"
	"github.com/glovebox/glovebox/render"
	"github.com/glovebox/glovebox/stream"
	"github.com/glovebox/glovebox/stream/record"
)

// Isolator starts one disposable browser per tab. isolate's runtimes satisfy it.
type Isolator interface {
	Name() string
	Start(ctx context.Context, spec isolate.Spec) (*isolate.Browser, error)
}

// Streamer makes one WebRTC peer per attached landing page. *stream.Server satisfies it.
type Streamer interface {
	NewPeer(opts stream.PeerOptions) (*stream.Peer, error)
}

// Config bounds the isolated tabs.
type Config struct {
	// Max is how many isolated tabs may exist at once; past it the landing page says capacity is full.
	Max int `mapstructure:"max"`
	// MaxPerUser is how many isolated tabs one user (or, without proxy
	// authentication, one client address) may have at once.
	MaxPerUser int `mapstructure:"max_per_user"`
	// CreatePerMinute bounds how fast one user (or client address) may open
	// tabs; a burst of MaxPerUser is allowed.
	CreatePerMinute int `mapstructure:"create_per_minute"`
	// IdleTimeout ends a tab that has had no input from its user for this long.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxLifetime ends a tab this long after it started, whatever it is doing.
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
	// StartTimeout bounds starting a browser for a tab.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
	// ReattachGrace keeps a tab whose landing page went away (reload, hand-over to another origin,
	// closed tab) this long for it to come back, then ends it.
	ReattachGrace time.Duration `mapstructure:"reattach_grace"`
	// MaxWidth and MaxHeight cap the remote viewport in CSS pixels.
	MaxWidth  int `mapstructure:"max_width"`
	MaxHeight int `mapstructure:"max_height"`
	// MaxScale caps the device pixel ratio honoured for HiDPI clients.
	MaxScale float64 `mapstructure:"max_scale"`
	// JPEGQuality is the screencast quality Chromium encodes frames with (1–100).
	JPEGQuality int `mapstructure:"jpeg_quality"`
	// Hidden is what a tab does while its user's landing page is hidden
	// (another tab in front, the window minimised, a phone's screen off):
	// "freeze" stops the picture and freezes the remote page (its script
	// stops until shown; a page that is playing sound the user hears, or
	// has a popup open, is only paused), "pause" stops the picture only,
	// "stream" goes on as if it were seen (hidden.go).
	Hidden string `mapstructure:"hidden"`
	// HTTPAuth gives a site's HTTP authentication a sign-in dialog (see
	// render.Options.HTTPAuth for its cost); without it the page fails to
	// load.
	HTTPAuth bool `mapstructure:"http_auth"`
	// Scanner scans the files whose rule says scan; nil refuses them
	// (scan.ErrNoScanner). Set by the wiring, not the configuration.
	Scanner scan.Scanner `mapstructure:"-"`
	// Recorder records the tabs whose rule says record (record.go); nil
	// records none. Set by the wiring from recording.*.
	Recorder Recorder `mapstructure:"-"`
	// TokenPrefix, when set, begins every token, hand-over code and file
	// key this manager issues, followed by a dot: the replica that owns
	// them (its peers forward requests naming them to it). Set by the
	// wiring.
	TokenPrefix string `mapstructure:"-"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{
		Max:             20,
		MaxPerUser:      5,
		CreatePerMinute: 30,
		IdleTimeout:     30 * time.Minute,
		MaxLifetime:     12 * time.Hour,
		StartTimeout:    30 * time.Second,
		ReattachGrace:   10 * time.Second,
		MaxWidth:        3840,
		MaxHeight:       2160,
		MaxScale:        2,
		JPEGQuality:     80,
		Hidden:          HiddenFreeze,
		HTTPAuth:        true,
	}
}

// Validate reports every bad value, each naming its key. It has no side
// effects.
func (c *Config) Validate() error {
	var errs []error
	if c.Max < 1 {
		errs = append(errs, fmt.Errorf("tabs.max: %d: must be at least 1", c.Max))
	}
	if c.MaxPerUser < 1 {
		errs = append(errs, fmt.Errorf("tabs.max_per_user: %d: must be at least 1", c.MaxPerUser))
	}
	if c.CreatePerMinute < 1 {
		errs = append(errs, fmt.Errorf("tabs.create_per_minute: %d: must be at least 1", c.CreatePerMinute))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("tabs.idle_timeout: must be positive"))
	}
	if c.MaxLifetime <= 0 {
		errs = append(errs, fmt.Errorf("tabs.max_lifetime: must be positive"))
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("tabs.start_timeout: must be positive"))
	}
	if c.ReattachGrace <= 0 {
		errs = append(errs, fmt.Errorf("tabs.reattach_grace: must be positive"))
	}
	if c.MaxWidth < 320 || c.MaxWidth > 7680 {
		errs = append(errs, fmt.Errorf("tabs.max_width: %d: want 320–7680", c.MaxWidth))
	}
	if c.MaxHeight < 240 || c.MaxHeight > 4320 {
		errs = append(errs, fmt.Errorf("tabs.max_height: %d: want 240–4320", c.MaxHeight))
	}
	switch c.Hidden {
	case HiddenFreeze, HiddenPause, HiddenStream:
	default:
		errs = append(errs, fmt.Errorf("tabs.hidden: %q: want %s, %s or %s", c.Hidden, HiddenFreeze, HiddenPause, HiddenStream))
	}
	if c.MaxScale < 1 || c.MaxScale > 4 {
		errs = append(errs, fmt.Errorf("tabs.max_scale: %v: want 1–4", c.MaxScale))
	}
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		errs = append(errs, fmt.Errorf("tabs.jpeg_quality: %d: want 1–100", c.JPEGQuality))
	}
	return errors.Join(errs...)
}

// Errors the API turns into statuses.
var (
	ErrCapacity = errors.New("all isolated tabs are in use")
	ErrNoTab    = errors.New("no such tab")
	ErrClosing  = errors.New("glovebox is shutting down")
	// ErrUserLimit: the user has tabs.max_per_user tabs open.
	ErrUserLimit = errors.New("too many isolated tabs for one user")
	// ErrRateLimited: the user opens tabs faster than tabs.create_per_minute.
	ErrRateLimited = errors.New("isolated tabs opened too fast")
)

// maxClientMessage bounds one data-channel message from a landing page; the
// largest legitimate one is a text input of maxTextInput bytes.
const maxClientMessage = 16 << 10

// Manager owns every tab: the map from secret token to tab, capacity, handoff codes.
type Manager struct {
	cfg   Config
	iso   Isolator
	st    Streamer
	audit *audit.Audit
	log   *slog.Logger

	ctx    context.Context // parent of every tab; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	gone   map[string]goneTab // ended tabs, by token, for a while: why they ended
	tabs   map[string]*Tab    // by token
	byAddr map[string]*Tab    // by the browser's own address, for the egress proxy
	codes  map[string]handoffCode
	rates  map[string]*rate.Limiter // tab creation, by owner
	files  string                   // Glovebox's directory of files in transit (download.go)
	offers map[string]*Offer        // files offered to users, by one-time key
	clips  isolatedClipboards       // clipboard.go
	// refs counts the tabs that use each browser: a tab and the popups
	// its page opened share one. The last to end closes it.
	refs   map[*isolate.Browser]int
	closed bool
}

// goneTab remembers why a tab ended, so that a landing page that comes
// late (its offer after a failed start, a reload after a crash) is told why
// rather than only that the tab does not exist.
type goneTab struct {
	owner    string
	reason   string
	startErr error
	at       time.Time
}

// goneFor is how long an ended tab's reason is kept.
const goneFor = time.Minute

// EndedError says that a tab the client owned has ended, and why.
type EndedError struct {
	Reason   string
	StartErr error // set when the tab's browser never started
}

func (e *EndedError) Error() string { return "tab ended: " + e.Reason }

// Unwrap makes a TabEndedError an ErrNoTab for callers that do not care why.
func (e *EndedError) Unwrap() error { return ErrNoTab }

type handoffCode struct {
	token   string
	owner   string
	origin  string // the origin the code was issued for: only there can it be claimed
	expires time.Time
}

// NewManager returns the manager of the tabs: iso starts their browsers, st
// their peers, aud records their starts and ends.
func NewManager(cfg Config, iso Isolator, st Streamer, aud *audit.Audit, log *slog.Logger) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, iso: iso, st: st, audit: aud, log: log,
		ctx: ctx, cancel: cancel, tabs: map[string]*Tab{}, gone: map[string]goneTab{}, byAddr: map[string]*Tab{}, codes: map[string]handoffCode{},
		rates: map[string]*rate.Limiter{}, refs: map[*isolate.Browser]int{}}
}

// Request is what a landing page asks for.
type Request struct {
	URL    string  `json:"url"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	DPR    float64 `json:"dpr"`
	// Audio lets the tab play the remote page's sound to the user: the
	// policy rule's audio. The proxy sets it from policy; a client never
	// can, so it is off unless the proxy says otherwise.
	Audio bool `json:"-"`
	// Controls say what may cross between the tab and its user: the
	// policy rule's. Set by the proxy only, as Audio.
	Controls policy.Controls `json:"-"`
	// RequestID is the request_id of the navigation whose landing page
	// asks for the tab, for tab_start. Set by the proxy.
	RequestID string `json:"-"`
}

// Create registers a tab and starts its browser in the background.
func (m *Manager) Create(req Request, clientIP, user string) (*Tab, error) {
	u, err := url.Parse(req.URL)
	// u.Host is ":80" for "http://:80/": a port is no host to browse to.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: url must be an absolute http or https URL with a host", ErrBadRequest)
	}
	w, h, s := m.clampViewport(req.Width, req.Height, req.DPR)
	t := m.newTab(u, clientIP, user, w, h, s)
	t.requestID = req.RequestID
	t.audio.Store(req.Audio)
	t.SetControls(req.Controls)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.admit(t); err != nil {
		return nil, err
	}
	return t, nil
}

// newTab is a tab for u, not yet admitted.
func (m *Manager) newTab(u *url.URL, clientIP, user string, w, h int, s float64) *Tab {
	t := &Tab{
		m: m, id: randomHex(8), token: m.newToken(), clientIP: clientIP, user: user, owner: Owner(user, clientIP),
		url: u.String(), logURL: audit.LogURL(u), host: u.Hostname(), created: time.Now(),
		ready: make(chan struct{}), ended: make(chan struct{}), asking: make(chan struct{}),
		inputs: make(chan clientMsg, 256), answers: make(chan clientMsg, 8), retired: map[*stream.Peer]bool{},
		width: w, height: h, scale: s, grace: m.cfg.ReattachGrace,
		popupNotices: rate.NewLimiter(rate.Every(popupNoticeEvery), 1),
	}
	t.lastActive.Store(time.Now().UnixNano())
	t.log = m.log.With("tab", t.id)
	return t
}

// admit checks the limits (tabs.max, tabs.max_per_user and
// tabs.create_per_minute), registers t and starts it. m.mu is held.
func (m *Manager) admit(t *Tab) error {
	if m.closed {
		return ErrClosing
	}
	if len(m.tabs) >= m.cfg.Max {
		return ErrCapacity
	}
	if m.ownedBy(t.owner) >= m.cfg.MaxPerUser {
		return ErrUserLimit
	}
	if !m.limiter(t.owner).Allow() {
		return ErrRateLimited
	}
	t.ctx, t.cancel = context.WithCancel(m.ctx)
	t.detachedAt = time.Now() // no landing page attached yet: the grace applies from now
	m.tabs[t.token] = t
	m.wg.Add(1)
	go t.run()
	return nil
}

// ownedBy counts owner's tabs. m.mu is held.
func (m *Manager) ownedBy(owner string) int {
	n := 0
	for _, t := range m.tabs {
		if t.owner == owner {
			n++
		}
	}
	return n
}

// maxRateOwners bounds the tab-creation limiters kept; past it, those that
// are full again (their owners idle) are forgotten.
const maxRateOwners = 4096

// limiter is owner's tab-creation limiter. m.mu is held.
func (m *Manager) limiter(owner string) *rate.Limiter {
	if l, ok := m.rates[owner]; ok {
		return l
	}
	burst := m.cfg.MaxPerUser
	if len(m.rates) >= maxRateOwners {
		for k, l := range m.rates {
			if l.Tokens() >= float64(burst) {
				delete(m.rates, k)
			}
		}
	}
	l := rate.NewLimiter(rate.Limit(float64(m.cfg.CreatePerMinute)/60), burst)
	m.rates[owner] = l
	return l
}

func (m *Manager) clampViewport(w, h int, dpr float64) (int, int, float64) {
	w = min(max(w, 320), m.cfg.MaxWidth)
	h = min(max(h, 240), m.cfg.MaxHeight)
	if math.IsNaN(dpr) || dpr < 1 {
		dpr = 1
	}
	dpr = min(dpr, m.cfg.MaxScale)
	return w, h, dpr
}

// Lookup returns the tab for token if owner (see Owner) owns it. A
// foreign token is answered exactly as an unknown one, so tokens cannot be
// probed.
func (m *Manager) Lookup(token, owner string) (*Tab, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tabs[token]
	if !ok {
		if g, ok := m.gone[token]; ok && g.owner == owner {
			return nil, &EndedError{Reason: g.reason, StartErr: g.startErr}
		}
		return nil, ErrNoTab
	}
	if t.owner != owner {
		return nil, ErrNoTab
	}
	return t, nil
}

// Count is how many tabs exist now, starting ones included.
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tabs)
}

// Handoff issues a one-time code with which a landing page at another origin
// takes over the tab; the code travels in the URL fragment, never to a server.
func (m *Manager) Handoff(t *Tab, origin string) string {
	code := m.newToken()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for c, h := range m.codes {
		if now.After(h.expires) {
			delete(m.codes, c)
		}
	}
	m.codes[code] = handoffCode{token: t.token, owner: t.owner, origin: origin, expires: now.Add(m.cfg.ReattachGrace)}
	return code
}

// Claim exchanges a handoff code for the tab's token, once, on the
// origin it was issued for.
func (m *Manager) Claim(code, owner, origin string) (*Tab, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.codes[code]
	if !ok || h.owner != owner || h.origin != origin || time.Now().After(h.expires) {
		return nil, ErrNoTab
	}
	delete(m.codes, code)
	t, ok := m.tabs[h.token]
	if !ok {
		return nil, ErrNoTab
	}
	return t, nil
}

func (m *Manager) remove(t *Tab) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tabs, t.token)
	if t.addr != "" && m.byAddr[t.addr] == t {
		delete(m.byAddr, t.addr)
		// The browser's requests are now another of its tabs'.
		for _, o := range m.tabs {
			if o.browser == t.browser && o.addr == t.addr {
				m.byAddr[t.addr] = o
				break
			}
		}
	}
	now := time.Now()
	for k, g := range m.gone {
		if now.Sub(g.at) > goneFor {
			delete(m.gone, k)
		}
	}
	m.gone[t.token] = goneTab{owner: t.owner, reason: t.reason, startErr: t.startErr, at: now}
}

// LookupAddr finds the tab whose browser has address ip.
func (m *Manager) LookupAddr(ip string) (*Tab, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byAddr[ip]
	return t, ok
}

// List describes the open tabs, ordered by id.
func (m *Manager) List() []Info {
	type entry struct {
		t    *Tab
		info Info
	}
	m.mu.Lock()
	tabs := make([]entry, 0, len(m.tabs))
	for _, t := range m.tabs {
		in := Info{Tab: t.id, User: t.user, ClientIP: t.clientIP, URL: t.logURL, Started: t.created,
			Runtime: m.iso.Name()}
		if t.browser != nil { // set under m.mu
			in.Browser = t.browser.ID
		}
		if t.opener != nil {
			in.Opener = t.opener.id
		}
		tabs = append(tabs, entry{t, in})
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(tabs))
	for _, e := range tabs {
		t, in := e.t, e.info
		in.LastActive = time.Unix(0, t.lastActive.Load())
		select {
		case <-t.ready:
			// The page is set before ready closes, and never again.
			if t.startErr == nil && t.page != nil {
				in.CurrentURL, in.Title = logURLOf(t.page.URL()), t.page.Title()
			}
		default:
			in.Starting = true
		}
		select {
		case <-t.ended:
			in.Ending = true // its browser is being closed
		default:
		}
		if md, ok := t.mediaStats(); ok {
			in.Attached, in.Media = md.Attached, md.Stats
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Tab, b.Tab) })
	return out
}

// ByID is the open tab with id, or nil.
func (m *Manager) ByID(id string) *Tab {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tabs {
		if t.id == id {
			return t
		}
	}
	return nil
}

// EndByID ends the tab with id, if there is one.
func (m *Manager) EndByID(id, reason string) bool {
	m.mu.Lock()
	var found *Tab
	for _, t := range m.tabs {
		if t.id == id {
			found = t
			break
		}
	}
	m.mu.Unlock()
	if found == nil {
		return false
	}
	found.End(reason)
	return true
}

// Close ends every tab and waits for their browsers to be gone.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	tabs := make([]*Tab, 0, len(m.tabs))
	for _, t := range m.tabs {
		tabs = append(tabs, t)
	}
	m.mu.Unlock()
	for _, t := range tabs {
		t.End("shutdown")
	}
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	dir := m.files
	m.mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Tab is one isolated browser tab: a browser, the chromedp page on it, and at
// most one attached WebRTC peer at a time.
type Tab struct {
	m     *Manager
	log   *slog.Logger
	id    string // appears in logs and audit events
	token string // secret: only the owning landing page knows it
	// requestID is the proxy_request that opened the tab, for tab_start.
	requestID string
	navAudit  navAudit // its tab_navigate events (navaudit.go)
	clientIP  string
	user      string
	owner     string // who may use the token: see tabOwner
	url       string
	logURL    string // url as it may be logged: no credentials
	host      string
	created   time.Time

	ctx    context.Context
	cancel context.CancelFunc

	ready    chan struct{} // closed once the browser and page are up, or failed
	startErr error
	// opener is the tab whose page opened this one's (a popup), which
	// shares its browser; targetID is then the popup's page. Both are set
	// before the tab starts.
	opener   *Tab
	targetID string
	browser  *isolate.Browser
	addr     string // the browser's own address (containers), set under m.mu
	page     *render.Tab

	asking     chan struct{} // closed when the page first asks the user something
	askOnce    sync.Once
	inputs     chan clientMsg
	answers    chan clientMsg // dialog and sign-in answers: see applyLoop
	lastActive atomic.Int64

	audio    atomic.Bool                      // the user may hear the tab (policy): peers get an audio track
	controls atomic.Pointer[policy.Controls]  // what may cross (policy): see controls.go
	sound    soundReader                      // tabsound.go
	loudAt   atomic.Int64                     // when the user last heard the page (unix ns): hidden.go
	rec      atomic.Pointer[record.Recording] // the tab's recording, if its rule says record (record.go)
	running  atomic.Bool                      // run has begun: teardown will close the recording

	mu           sync.Mutex
	peer         *stream.Peer
	detachedAt   time.Time
	lastJPEG     []byte
	width        int
	height       int
	scale        float64
	touch        int                   // the user's device's touch points, as the page sees them
	focusBusy    bool                  // a FocusedField is under way
	stats        stream.Stats          // summed over peers that have gone
	retired      map[*stream.Peer]bool // true once the peer's counters are in stats
	errorsSent   int
	grace        time.Duration        // how long the tab waits for a landing page
	attached     bool                 // a landing page has attached once
	downloads    map[string]*download // the browser's, by GUID (download.go)
	toldKeyboard bool                 // the user was told typing is off (clipboard.go)
	printing     bool                 // a print is under way (print.go)
	// lastRemoteCopy and lastPagePrint are when the page last copied or
	// asked to print on its own (clipboard.go, print.go).
	lastRemoteCopy, lastPagePrint time.Time
	// popupNotices bounds the popups refused that the user is told of.
	popupNotices *rate.Limiter

	endOnce sync.Once
	ended   chan struct{}
	reason  string
}

// run starts the browser, then watches the tab until it ends, then tears it
// down. Only run touches the browser and page after start, so teardown never
// races with a start in progress.
func (t *Tab) run() {
	defer t.m.wg.Done()
	defer t.teardown()
	t.running.Store(true)
	t.startRecording()
	err := t.start()
	t.startErr = err
	close(t.ready)
	if err != nil {
		t.log.Warn("tab failed to start", "err", err)
		t.End("start failed: " + err.Error())
		return
	}
	var opener string
	if t.opener != nil {
		opener = t.opener.id
	}
	t.m.audit.TabStart(audit.TabEvent{Tab: t.id, ClientIP: t.clientIP, User: t.user, URL: t.logURL, Host: t.host,
		Runtime: t.m.iso.Name(), Browser: t.browser.ID, Node: t.browser.Node, Warm: t.browser.Warm, Duration: time.Since(t.created),
		RequestID: t.requestID, Opener: opener})

	go t.applyLoop(t.inputs, t.apply)
	go t.applyLoop(t.answers, t.answer)
	// A browser has one sound device, which its first tab reads: a popup,
	// sharing its opener's browser, is heard through the opener's tab (a
	// FIFO read by two would give each half of the sound).
	if t.opener == nil {
		t.sound.start(t)
		defer t.sound.end()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			t.End("shutdown")
			return
		case <-t.ended:
			return
		case <-t.browser.Done():
			t.End(t.deathReason("browser exited"))
			return
		case <-t.page.Done():
			t.End(t.deathReason("browser disconnected"))
			return
		case now := <-tick.C:
			t.m.dropOffers(t, false)
			if r := t.expired(now); r != "" {
				t.End(r)
				return
			}
		}
	}
}

// start starts the tab's browser (a popup has its opener's already) and
// opens its page. teardown releases the browser, also after a failed start.
func (t *Tab) start() error {
	b := t.browser
	if t.opener == nil {
		startCtx, cancel := context.WithTimeout(t.ctx, t.m.cfg.StartTimeout)
		defer cancel()
		var err error
		b, err = t.m.iso.Start(startCtx, isolate.Spec{TabID: t.id, Width: t.width, Height: t.height, Scale: t.scale})
		if err != nil {
			return fmt.Errorf("start browser: %w", err)
		}
		t.m.mu.Lock()
		t.browser = b
		t.m.refs[b]++
		if b.Addr != nil {
			t.addr = b.Addr.String()
			t.m.byAddr[t.addr] = t
		}
		t.m.mu.Unlock()
	}
	page, err := render.Open(t.ctx, b.DevToolsURL, render.Options{
		Width: t.width, Height: t.height, Scale: t.scale, Quality: t.m.cfg.JPEGQuality,
		OnFrame: t.onFrame, OnEvent: t.onEvent, Log: t.log, DevToolsSocket: b.DevToolsSocket,
		TargetID: t.targetID, HTTPAuth: t.m.cfg.HTTPAuth, DownloadDir: b.FilesPath,
	})
	if err != nil {
		return fmt.Errorf("open page: %w", err)
	}
	t.page = page
	if t.opener != nil {
		return nil // the popup loads what its opener asked for
	}
	// The start waits for the first navigation to commit, unless the page
	// asks the user something first (an HTTP sign-in holds the commit):
	// then the landing page must attach to answer, and the navigation goes
	// on meanwhile, for as long as the tab lives.
	nav := make(chan error, 1)
	go func() { nav <- page.Navigate(t.ctx, t.url) }()
	timeout := time.NewTimer(t.m.cfg.StartTimeout)
	defer timeout.Stop()
	logNav := func(err error) {
		if err != nil && t.ctx.Err() == nil {
			// Chromium shows its own error page (DNS failure, refused,
			// …): the user sees it in the video, as they would locally.
			t.log.Info("navigation failed", "url", t.logURL, "err", err)
		}
	}
	select {
	case err := <-nav:
		logNav(err)
	case <-t.asking:
		go func() { logNav(<-nav) }()
	case <-timeout.C:
		go func() { logNav(<-nav) }()
		t.log.Info("navigation not committed in time", "url", t.logURL, "timeout", t.m.cfg.StartTimeout)
	}
	return nil
}

func (t *Tab) expired(now time.Time) string {
	if now.Sub(t.created) > t.m.cfg.MaxLifetime {
		return "max lifetime"
	}
	if now.Sub(time.Unix(0, t.lastActive.Load())) > t.m.cfg.IdleTimeout {
		return "idle timeout"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peer == nil && !t.detachedAt.IsZero() && now.Sub(t.detachedAt) > t.grace {
		if !t.attached && t.opener != nil {
			return "popup not opened"
		}
		return "closed by user"
	}
	return ""
}

// Attach answers a landing page's offer and makes its peer the tab's only one.
func (t *Tab) Attach(ctx context.Context, offer string) (string, error) {
	var peer *stream.Peer
	peer, err := t.m.st.NewPeer(stream.PeerOptions{
		Log:            t.log,
		MaxMessage:     maxClientMessage,
		OnMessage:      func(b []byte) { t.onMessage(peer, b) },
		OnOpen:         func() { t.onOpen(peer) },
		OnMessageError: func(err error) { t.sendError(peer, err) },
		// Without it the answer has no audio and the browser's sound is
		// never read (tabsound.go): nothing of it leaves the sandbox.
		Audio:    t.audio.Load(),
		Recorder: peerRecorder{t: t, peer: &peer},
	})
	if err != nil {
		return "", fmt.Errorf("new peer: %w", err)
	}
	answer, err := peer.Answer(ctx, offer)
	if err != nil {
		peer.Close()
		return "", err
	}
	select {
	case <-t.ready:
	case <-ctx.Done():
		peer.Close()
		return "", ctx.Err()
	}
	if t.startErr != nil {
		peer.Close()
		return "", t.startErr
	}
	t.mu.Lock()
	select {
	case <-t.ended:
		t.mu.Unlock()
		peer.Close()
		return "", ErrNoTab
	default:
	}
	old := t.peer
	t.peer = peer
	t.detachedAt = time.Time{}
	t.attached = true
	t.grace = t.m.cfg.ReattachGrace
	last := t.lastJPEG
	t.mu.Unlock()
	if old != nil {
		old.Send(encodeServerMsg(serverMsg{T: "ended", Reason: "opened in another window"}))
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		old.Flush(fctx)
		cancel()
		t.dropPeer(old)
	}
	if last != nil {
		// A static page sends no new frames: give the new peer the last one.
		peer.Submit(last, time.Now(), func() {})
	}
	t.showForNewPeer()
	t.lastActive.Store(time.Now().UnixNano())
	go func() {
		select {
		case <-peer.Done():
			t.dropPeer(peer)
		case <-t.ended:
		}
	}()
	return answer, nil
}

// dropPeer detaches and closes p if it is still the tab's peer; the tab then
// waits ReattachGrace for a landing page to come back.
func (t *Tab) dropPeer(p *stream.Peer) {
	t.mu.Lock()
	if t.peer == p {
		t.peer = nil
		t.detachedAt = time.Now()
	}
	t.mu.Unlock()
	t.retire(p)
}

// retire closes p and adds its counters to the tab's, once per peer.
func (t *Tab) retire(p *stream.Peer) {
	t.mu.Lock()
	if _, ok := t.retired[p]; ok {
		t.mu.Unlock()
		return
	}
	t.retired[p] = false // closing: media still counts it live
	t.mu.Unlock()
	p.Close()
	s := p.Stats()
	t.mu.Lock()
	t.retired[p] = true
	addCounters(&t.stats, s)
	if s.FramesSent > 0 { // the last peer that sent anything
		t.stats.TargetBitrate, t.stats.RTT, t.stats.FractionLost, t.stats.PacketsLost, t.stats.Codec =
			s.TargetBitrate, s.RTT, s.FractionLost, s.PacketsLost, s.Codec
	}
	if s.MinTarget > 0 && (t.stats.MinTarget == 0 || s.MinTarget < t.stats.MinTarget) {
		t.stats.MinTarget = s.MinTarget
	}
	t.mu.Unlock()
}

// addCounters adds the counters of s to sum; the link's state (bitrate,
// RTT, loss) is not a sum and is left to the caller.
func addCounters(sum *stream.Stats, s stream.Stats) {
	sum.FramesEncoded += s.FramesEncoded
	sum.Keyframes += s.Keyframes
	sum.BytesSent += s.BytesSent
	sum.FramesIn += s.FramesIn
	sum.FramesSent += s.FramesSent
	sum.FramesSkipped += s.FramesSkipped
	sum.EncodeTime += s.EncodeTime
	sum.AudioFrames += s.AudioFrames
	sum.AudioPackets += s.AudioPackets
	sum.AudioBytes += s.AudioBytes
	sum.AudioEncodeTime += s.AudioEncodeTime
}

// Media is the media of one open tab, for metrics.
type Media struct {
	Tab, User string
	// Attached says a landing page's peer is attached now.
	Attached bool
	// Stats has the counters summed over the tab's peers, as tab_end
	// does. The rest (size, bitrate, RTT, loss, packets lost, codec) is
	// the attached peer's now, zero when none is.
	Stats stream.Stats
}

// mediaStats returns the tab's media stats, or false if it has ended or never
// had a peer. Counters never go down while the tab lives: a peer being
// retired counts live until retire has added it to t.stats.
func (t *Tab) mediaStats() (Media, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.ended:
		return Media{}, false
	default:
	}
	if t.peer == nil && len(t.retired) == 0 {
		return Media{}, false
	}
	var sum stream.Stats
	addCounters(&sum, t.stats)
	for p, added := range t.retired {
		if !added {
			addCounters(&sum, p.Stats())
		}
	}
	tm := Media{Tab: t.id, User: t.user, Attached: t.peer != nil}
	if t.peer != nil {
		s := t.peer.Stats()
		addCounters(&sum, s)
		sum.Width, sum.Height = s.Width, s.Height
		sum.TargetBitrate, sum.MinTarget = s.TargetBitrate, s.MinTarget
		sum.RTT, sum.FractionLost, sum.PacketsLost, sum.Codec = s.RTT, s.FractionLost, s.PacketsLost, s.Codec
	}
	tm.Stats = sum
	return tm, true
}

// Media returns the media stats of each open tab that has had a peer,
// ordered by tab id.
func (m *Manager) Media() []Media {
	m.mu.Lock()
	tabs := make([]*Tab, 0, len(m.tabs))
	for _, t := range m.tabs {
		tabs = append(tabs, t)
	}
	m.mu.Unlock()
	out := make([]Media, 0, len(tabs))
	for _, t := range tabs {
		if tm, ok := t.mediaStats(); ok {
			out = append(out, tm)
		}
	}
	slices.SortFunc(out, func(a, b Media) int { return strings.Compare(a.Tab, b.Tab) })
	return out
}

// Detach is the landing page saying it is going away (reload, hand-over, close).
func (t *Tab) Detach() {
	t.mu.Lock()
	p := t.peer
	t.mu.Unlock()
	if p != nil {
		t.dropPeer(p)
	}
}

func (t *Tab) currentPeer() *stream.Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peer
}

func (t *Tab) onFrame(f render.Frame) {
	t.mu.Lock()
	t.lastJPEG = f.Data
	p := t.peer
	t.mu.Unlock()
	if p == nil {
		f.Ack()
		return
	}
	p.Submit(f.Data, f.Captured, f.Ack)
}

func (t *Tab) onEvent(ev render.Event) {
	switch ev.Type {
	case render.EventURL:
		t.auditURL(ev)
		t.send(t.urlMsg(ev))
	case render.EventTitle:
		t.auditTitle(ev, false)
		t.send(serverMsg{T: "title", Title: ev.Title})
	case render.EventDialog, render.EventAuth:
		t.askOnce.Do(func() { close(t.asking) })
		t.send(dialogMsg(ev))
	case render.EventDialogClosed:
		t.send(serverMsg{T: "dialog-closed", ID: ev.ID})
	case render.EventCrashed:
		t.send(serverMsg{T: "error", Message: "The isolated page crashed."})
	case render.EventPopup:
		t.onPopup(ev)
	case render.EventDownload:
		t.onDownload(ev.Download)
	case render.EventFileChooser:
		t.onFileChooser(ev.Chooser)
	case render.EventCopy:
		t.onRemoteCopy(ev.Text)
	case render.EventPrint:
		t.onPagePrint()
	case render.EventPageClosed:
		// The landing page closes its window if it can; the tab ends.
		t.send(serverMsg{T: "close"})
		t.End(reasonClosedByPage)
	case render.EventCursor, render.EventSelect, render.EventPicker, render.EventContextMenu, render.EventFullscreen:
		if b := agentMessage(ev); b != nil {
			if p := t.currentPeer(); p != nil {
				p.Send(b)
			}
		}
	}
}

func (t *Tab) onOpen(p *stream.Peer) {
	<-t.ready
	if t.page == nil {
		return
	}
	if ev := t.page.Entry(); ev.URL != "" {
		p.Send(encodeServerMsg(t.urlMsg(ev)))
	} else if u := t.page.URL(); u != "" {
		p.Send(encodeServerMsg(serverMsg{T: "url", URL: u}))
	}
	if title := t.page.Title(); title != "" {
		p.Send(encodeServerMsg(serverMsg{T: "title", Title: title}))
	}
	// Popups that came while no landing page was attached.
	for _, pt := range t.m.waitingPopups(t) {
		p.Send(encodeServerMsg(serverMsg{T: "popup", ID: pt.id, URL: pt.url}))
	}
	// What waits for an answer waits for the user, who may come back
	// (reload, hand-over) within tabs.reattach_grace; past it the tab ends.
	for _, ev := range t.page.Pending() {
		p.Send(encodeServerMsg(dialogMsg(ev)))
	}
}

// dialogMsg is the message that shows the user a dialog or sign-in.
func dialogMsg(ev render.Event) serverMsg {
	if ev.Type == render.EventAuth {
		return serverMsg{T: "auth", ID: ev.ID, URL: ev.URL, Realm: ev.Realm, Scheme: ev.Scheme}
	}
	return serverMsg{T: "dialog", ID: ev.ID, Kind: ev.Dialog, Message: ev.Message, Text: ev.Default, URL: ev.URL}
}

func (t *Tab) send(m serverMsg) {
	if p := t.currentPeer(); p != nil {
		p.Send(encodeServerMsg(m))
	}
}

// sendError tells the client why a message was refused, a bounded number of
// times so a flood of garbage does not become a flood of replies.
func (t *Tab) sendError(p *stream.Peer, err error) {
	t.mu.Lock()
	t.errorsSent++
	n := t.errorsSent
	t.mu.Unlock()
	if n > 100 {
		return
	}
	t.log.Debug("client message refused", "err", err)
	p.Send(encodeServerMsg(serverMsg{T: "error", Message: err.Error()}))
}

func (t *Tab) onMessage(p *stream.Peer, b []byte) {
	if t.currentPeer() != p {
		return
	}
	m, err := parseClientMsg(b)
	if err != nil {
		t.sendError(p, err)
		return
	}
	t.lastActive.Store(time.Now().UnixNano())
	queue := t.inputs
	if m.T == "dialog" || m.T == "auth" {
		queue = t.answers
	}
	select {
	case queue <- m:
	default:
		// The page is not keeping up (a busy renderer): drop rather than
		// block the data channel.
		t.sendError(p, errors.New("input dropped: the isolated page is busy"))
	}
}

// applyLoop applies the client messages of queue to the page in order, from
// one goroutine, until the tab ends: input (t.inputs, with apply), and the
// user's answers to dialogs and sign-ins (t.answers, with answer), which do
// not queue behind input: while a dialog is open the page takes no input,
// and input sent before it opened may wait for its timeout.
func (t *Tab) applyLoop(queue <-chan clientMsg, apply func(clientMsg) error) {
	for {
		select {
		case <-t.ended:
			return
		case m := <-queue:
			if err := apply(m); err != nil && t.ctx.Err() == nil {
				if p := t.currentPeer(); p != nil {
					t.sendError(p, err)
				}
			}
		}
	}
}

// answer gives the page the answer m. An answer to what is no longer open
// (the page went on meanwhile) tells the landing page to close it.
func (t *Tab) answer(m clientMsg) error {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	t.auditDialog(m)
	var err error
	if m.T == "auth" {
		// Neither the user name nor the password is logged.
		t.log.Info("http sign-in answered", "cancel", m.Cancel)
		err = t.page.AnswerAuth(ctx, m.ID, m.User, m.Pass, m.Cancel)
	} else {
		err = t.page.AnswerDialog(ctx, m.ID, m.Accept, m.Text)
	}
	if errors.Is(err, render.ErrNoDialog) {
		t.send(serverMsg{T: "dialog-closed", ID: m.ID})
		return nil
	}
	return err
}

func (t *Tab) apply(m clientMsg) error {
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	switch m.T {
	case "mouse":
		if err := t.page.Mouse(ctx, m.mouseEvent()); err != nil {
			return err
		}
		if m.Type == "up" {
			t.reportFocus()
		}
		return nil
	case "touch":
		if err := t.page.Touch(ctx, m.touchEvent()); err != nil {
			return err
		}
		if m.Type == "end" {
			t.reportFocus()
		}
		return nil
	case "compose":
		if !t.keyAllowed(m) {
			return nil
		}
		return t.page.Compose(ctx, m.Text)
	case "wheel":
		return t.page.Mouse(ctx, m.wheelEvent())
	case "key":
		if !t.keyAllowed(m) {
			return nil
		}
		return t.page.Key(ctx, m.keyEvent())
	case "text":
		if !t.keyAllowed(m) {
			return nil
		}
		return t.page.InsertText(ctx, m.Text)
	case "paste":
		return t.paste(ctx, m.Text)
	case "select":
		return t.page.ChooseOption(ctx, m.List, m.Index)
	case "picker":
		return t.page.SetPickerValue(ctx, m.List, m.Value)
	case "fullscreen":
		return t.page.ExitFullscreen(ctx)
	case "copy":
		return t.copySelection(ctx)
	case "copy-image":
		return t.copyImage(ctx, m.X, m.Y)
	case "print":
		t.print()
		return nil
	case "resize":
		w, h, s := t.m.clampViewport(m.Width, m.Height, m.DPR)
		t.mu.Lock()
		same := w == t.width && h == t.height && s == t.scale
		t.width, t.height, t.scale = w, h, s
		t.mu.Unlock()
		if !same {
			if err := t.page.Resize(ctx, w, h, s); err != nil {
				return err
			}
		}
		t.mu.Lock()
		touchChanged := m.Touch != t.touch
		t.touch = m.Touch
		t.mu.Unlock()
		if touchChanged {
			if err := t.page.SetTouch(ctx, m.Touch); err != nil {
				return err
			}
		}
		// The landing page maps input with the viewport in effect, which
		// the caps may have made smaller than the window it asked for.
		t.send(serverMsg{T: "viewport", Width: w, Height: h, DPR: s})
		return nil
	case "nav":
		return t.navigate(ctx, m)
	case "visible":
		return t.setVisible(ctx, m.On)
	}
	return nil
}

// reportFocus tells a touch device's landing page whether a text field has
// the focus now, after a tap or a click, so that it can raise or lower the
// on-screen keyboard. It reads in the background, one read at a time, so that
// a page busy in its click handler holds up no input; a desktop (no touch
// points) has no on-screen keyboard and is not asked for.
func (t *Tab) reportFocus() {
	t.mu.Lock()
	if t.touch == 0 || t.focusBusy {
		t.mu.Unlock()
		return
	}
	t.focusBusy = true
	t.mu.Unlock()
	go func() {
		defer func() {
			t.mu.Lock()
			t.focusBusy = false
			t.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
		defer cancel()
		editable, mode, err := t.page.FocusedField(ctx)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Debug("read the remote focus", "err", err)
			}
			return
		}
		t.send(serverMsg{T: "focus", Editable: editable, InputMode: mode})
	}()
}

// End marks the tab ended, once, for reason; run tears it down.
func (t *Tab) End(reason string) {
	t.endOnce.Do(func() {
		t.mu.Lock()
		t.reason = reason
		close(t.ended)
		t.mu.Unlock()
		t.cancel()
	})
}

// teardown closes peer, page and browser and writes the tab_end event.
func (t *Tab) teardown() {
	// The tab counts against capacity until its browser is gone.
	defer t.m.remove(t)
	// Files offered and not fetched go with the tab.
	t.m.dropOffers(t, true)
	t.mu.Lock()
	p, reason := t.peer, t.reason
	t.peer = nil
	t.mu.Unlock()
	if p != nil {
		msg := serverMsg{T: "ended", Reason: reason}
		switch reason {
		case reasonClosedByPage:
			msg.Message = "The page closed itself."
		case ReasonAdmin:
			msg.Message = "An administrator ended this isolated tab. Reload the page to open it again."
		case ReasonOutOfMemory:
			msg.Message = "This page used too much memory and was closed. Reload the page to open it again."
		}
		p.Send(encodeServerMsg(msg))
		fctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.Flush(fctx)
		cancel()
		t.retire(p)
	}
	last := t.m.release(t.browser)
	if t.page != nil {
		if !last && reason != reasonClosedByPage {
			// The browser lives on for the other tabs: close this
			// one's page in it, as closing a local tab would.
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := t.page.CloseTarget(cctx, t.page.TargetID()); err != nil {
				t.log.Debug("close page", "err", err)
			}
			cancel()
		}
		t.page.Close()
	}
	browserID, node := "", ""
	if t.browser != nil {
		browserID, node = t.browser.ID, t.browser.Node
		if last {
			if err := t.browser.Close(); err != nil {
				t.log.Warn("close browser", "err", err)
			}
		}
	}
	t.flushNavAudit()
	recFile, recErr := t.endRecording()
	t.mu.Lock()
	s := t.stats
	t.mu.Unlock()
	t.m.audit.TabEnd(audit.TabEvent{Recording: recFile, RecordingError: recErr, Tab: t.id, ClientIP: t.clientIP, User: t.user, URL: t.logURL, Host: t.host,
		Runtime: t.m.iso.Name(), Browser: browserID, Node: node, Duration: time.Since(t.created),
		Frames: int64(s.FramesEncoded), Keyframes: int64(s.Keyframes), Bytes: int64(s.BytesSent), Reason: reason,
		FramesIn: int64(s.FramesIn), FramesSent: int64(s.FramesSent), FramesSkipped: int64(s.FramesSkipped),
		EncodeTime: s.EncodeTime, Bitrate: int64(s.TargetBitrate), MinBitrate: int64(s.MinTarget),
		RTT: s.RTT, Loss: s.FractionLost, PacketsLost: s.PacketsLost, Codec: s.Codec})
	t.log.Info("tab ended", "reason", reason)
}

// newToken is a random token, naming this manager's replica first when
// there are several (TokenPrefix).
func (m *Manager) newToken() string {
	if m.cfg.TokenPrefix != "" {
		return m.cfg.TokenPrefix + "." + randomToken()
	}
	return randomToken()
}

// TokenOwner is the replica a token, hand-over code or file key names
// (TokenPrefix), or "" when it names none.
func TokenOwner(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 {
		return ""
	}
	return token[:i]
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Info describes one open tab, for operators (the console).
type Info struct {
	// URL is the one the tab was opened for, as it may be logged.
	Tab, User, ClientIP, URL string
	Started                  time.Time
	// CurrentURL (as it may be logged) and Title are the remote page's
	// now; "" while the tab starts.
	CurrentURL, Title string
	// LastActive is the user's last input (tabs.idle_timeout counts from it).
	LastActive time.Time
	// Starting says the tab's browser is not up yet; Ending that the
	// tab has ended and its browser is being closed.
	Starting, Ending bool
	// Runtime and Browser name the tab's browser: the runtime's id of
	// it (a container, a profile directory); "" while it starts.
	Runtime, Browser string
	// Opener is the tab whose page opened this one (a popup), "" for none.
	Opener string
	// Attached says a landing page's peer is attached now; Media is as
	// Media.Stats, zero until a peer has attached.
	Attached bool
	Media    stream.Stats
}

// ReasonAdmin is the end reason of a tab an administrator ended (the
// console's End); its landing page says so.
const ReasonAdmin = "ended by an administrator"

// ReasonOutOfMemory is the end reason of a tab whose browser lost a
// process to the kernel for going over its memory limit: the page
// allocated too much. Its landing page says so.
const ReasonOutOfMemory = "out of memory"

// deathReason is why a tab whose browser or page went away ended: out of
// memory when the kernel killed a process of its browser for that, else
// reason.
func (t *Tab) deathReason(reason string) string {
	if t.browser.OutOfMemory() {
		return ReasonOutOfMemory
	}
	return reason
}

// Owner is who may use a tab's token: the user when proxy authentication
// says who it is (behind a downstream proxy every user shares its address),
// else the client's address.
func Owner(user, clientIP string) string {
	if user != "" {
		return "user " + user
	}
	return "ip " + clientIP
}

// ErrBadRequest is wrapped by the errors of a malformed tab request.
var ErrBadRequest = errors.New("bad request")

// ID is the tab's id, which logs and audit events name.
func (t *Tab) ID() string { return t.id }

// Token is the tab's secret, which only its landing page knows.
func (t *Tab) Token() string { return t.token }

// User is who opened the tab ("" without proxy authentication).
func (t *Tab) User() string { return t.user }

// Viewport is the tab's viewport in effect: CSS pixels and scale.
func (t *Tab) Viewport() (width, height int, scale float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.width, t.height, t.scale
}
