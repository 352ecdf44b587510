// Package console is the operators' and analysts' console, served on the
// admin address (admin.listen) and never on the users' proxy port: the
// live tabs (who, from where, what page, idle for how long, their media,
// their browser) with a way to end one, the recent audit events filtered
// by user, host, event, action or tab, and the session recordings to play.
// It has its own sign-in (admin.users, bcrypt) or believes the name a
// trusted reverse proxy puts in admin.header; every action in it is an
// admin_action audit event naming the administrator.
//
// It is plain HTML and one script of its own, under a strict Content
// Security Policy; what changes state is a POST, checked for its origin
// (http.CrossOriginProtection) and for the session's CSRF token.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/tab"
)

// Config is the console's part of admin.*.
type Config struct {
	// Users may sign in to the console with their password, which is kept
	// only as its bcrypt hash.
	Users []User `mapstructure:"users"`
	// Header is the request header in which a reverse proxy in front of
	// the admin address names the administrator it signed in (single
	// sign-on); believed only from TrustedProxies. Empty: off.
	Header string `mapstructure:"header"`
	// TrustedProxies are the addresses (IPs or CIDRs) of the reverse
	// proxies whose Header is believed.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// RecentEvents is how many of the latest audit events the console
	// keeps in memory to show and filter.
	RecentEvents int `mapstructure:"recent_events"`
}

// User is one administrator of the console.
type User struct {
	// Name is what the administrator signs in with, and what the audit
	// events name.
	Name string `mapstructure:"name"`
	// PasswordHash is the bcrypt hash of the password ($2y$…, as
	// `htpasswd -nbBC 12 NAME PASSWORD` prints after the colon).
	PasswordHash string `mapstructure:"password_hash"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{RecentEvents: 2000}
}

// Validate reports every bad value, each naming its key below admin.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, u := range c.Users {
		switch {
		case !validName(u.Name) || strings.Contains(u.Name, ":"):
			errs = append(errs, fmt.Errorf("users[%d].name: %q: want a name of printable characters without a colon", i, u.Name))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("users[%d].name: %q is there twice", i, u.Name))
		}
		seen[u.Name] = true
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("users[%d].password_hash: not a bcrypt hash (%v): make one with htpasswd -nbBC 12 %s PASSWORD and take what follows the colon", i, err, u.Name))
		}
	}
	if c.Header != "" {
		if !validHeader(c.Header) {
			errs = append(errs, fmt.Errorf("header: %q: want an HTTP header name such as X-Forwarded-User", c.Header))
		}
		if len(c.TrustedProxies) == 0 {
			errs = append(errs, fmt.Errorf("trusted_proxies: empty: admin.header needs the addresses of the reverse proxies that set %s", c.Header))
		}
	} else if len(c.TrustedProxies) > 0 {
		errs = append(errs, errors.New("trusted_proxies: set, but admin.header is empty: name the header they set"))
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.RecentEvents < 1 || c.RecentEvents > 1_000_000 {
		errs = append(errs, fmt.Errorf("recent_events: %d: want 1–1000000", c.RecentEvents))
	}
	return errors.Join(errs...)
}

// Enabled reports whether anyone can sign in to the console.
func (c *Config) Enabled() bool { return len(c.Users) > 0 || c.Header != "" }

func validHeader(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	switch textproto.CanonicalMIMEHeaderKey(h) {
	case "Cookie", "Authorization", "Host", "Origin", "Content-Type", "Content-Length":
		return false
	}
	return true
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies[%d]: %q: want an IP address or a CIDR such as 10.0.0.0/8", i, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// validName accepts what a directory may call a person (root,
// alice@corp.example, CORP\alice) and nothing that would corrupt a log
// line or a page.
func validName(s string) bool {
	if s == "" || len(s) > 256 || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Tabs is what the console needs of the proxy: *proxy.Server has it.
type Tabs interface {
	TabList() []tab.Info
	EndTab(id, reason string) bool
	// ShadowTab adds a view-only viewer of tab id's video for the offer
	// (tab.ErrNoTab, tab.ErrNotViewed); stop ends it, and done is closed
	// when it has ended, however it did.
	ShadowTab(ctx context.Context, id, offerSDP string, notice bool) (answerSDP string, stop func(), done <-chan struct{}, err error)
}

// Options are the console's dependencies.
type Options struct {
	Tabs  Tabs
	Audit *audit.Audit
	// Events are the recent audit events (a Ring fed by Audit.AddTap).
	Events *Ring
	// RecordingDir is recording.dir, the directory of the session
	// recordings (.webm, .mkv); "" when there is none.
	RecordingDir string
	// ShadowNotice (console.shadow_notice) makes a user's landing page say
	// so while an administrator views the tab.
	ShadowNotice bool
	Log          *slog.Logger
}

// Console is the console's http.Handler, for paths under Prefix.
type Console struct {
	cfg     Config
	tabs    Tabs
	audit   *audit.Audit
	events  *Ring
	recDir  string
	log     *slog.Logger
	users   map[string][]byte // name → bcrypt hash
	dummy   []byte            // a hash to compare unknown names against, as long to check
	header  string
	trusted []netip.Prefix
	limit   *auth.Throttle
	sem     chan struct{} // bounds concurrent bcrypt work
	secret  [32]byte      // keys the CSRF tokens of header sign-ins
	handler http.Handler
	page    *template.Template
	login   *template.Template

	mu       sync.Mutex
	sessions map[string]*session // by the hash of the cookie's value
	noted    map[string]time.Time
	shadows  map[string]*shadowing // by id (shadow.go)

	shadowNotice bool
}

// Prefix is where the console is served on the admin address.
const Prefix = "/console/"

// Sessions of signed-in administrators end after sessionIdle without a
// request, and sessionMax after the sign-in whatever they do.
const (
	sessionIdle = 30 * time.Minute
	sessionMax  = 12 * time.Hour
	maxSessions = 1000
	cookieName  = "glovebox_console"
)

// noteEvery is how often a repeated read-only action (the console's
// refresh of its lists, the Range requests of one recording) is an audit
// event again for the same administrator and target: once, not every few
// seconds.
const noteEvery = time.Minute

type session struct {
	admin   string
	csrf    string
	created time.Time
	seen    time.Time
}

//go:embed web
var web embed.FS

// New returns the console. cfg is validated.
func New(cfg Config, o Options) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trusted, _ := parsePrefixes(cfg.TrustedProxies)
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, tabs: o.Tabs, audit: o.Audit, events: o.Events, recDir: o.RecordingDir,
		log: log.With("component", "console"), users: map[string][]byte{}, trusted: trusted,
		limit: auth.NewThrottle(), sem: make(chan struct{}, 2),
		sessions: map[string]*session{}, noted: map[string]time.Time{}, shadows: map[string]*shadowing{},
		shadowNotice: o.ShadowNotice}
	if cfg.Header != "" {
		c.header = textproto.CanonicalMIMEHeaderKey(cfg.Header)
	}
	if c.events == nil {
		c.events = NewRing(cfg.RecentEvents)
	}
	cost := bcrypt.DefaultCost
	for _, u := range cfg.Users {
		c.users[u.Name] = []byte(u.PasswordHash)
		cost, _ = bcrypt.Cost([]byte(u.PasswordHash))
	}
	var err error
	if c.dummy, err = bcrypt.GenerateFromPassword([]byte("no such administrator"), cost); err != nil {
		return nil, err
	}
	rand.Read(c.secret[:])
	if c.page, err = template.ParseFS(web, "web/console.html"); err != nil {
		return nil, err
	}
	if c.login, err = template.ParseFS(web, "web/login.html"); err != nil {
		return nil, err
	}
	c.handler = c.routes()
	return c, nil
}

// Users are the names of admin.users.
func (c *Console) Users() []string {
	out := make([]string, 0, len(c.cfg.Users))
	for _, u := range c.cfg.Users {
		out = append(out, u.Name)
	}
	return out
}

// Events is the ring of recent audit events the console shows.
func (c *Console) Events() *Ring { return c.events }

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /console/{$}", c.servePage)
	mux.HandleFunc("GET /console/login", c.serveLogin)
	mux.HandleFunc("POST /console/login", c.signIn)
	mux.Handle("POST /console/logout", c.api(c.signOut, true))
	mux.HandleFunc("GET /console/static/{name}", c.serveStatic)
	mux.Handle("GET /console/api/tabs", c.api(c.listTabs, false))
	mux.Handle("POST /console/api/tabs/{id}/end", c.api(c.endTab, true))
	mux.Handle("POST /console/api/tabs/{id}/shadow", c.api(c.shadowTab, true))
	mux.Handle("POST /console/api/shadows/{sid}/stop", c.api(c.stopShadow, true))
	mux.Handle("GET /console/api/events", c.api(c.listEvents, false))
	mux.Handle("GET /console/api/recordings", c.api(c.listRecordings, false))
	mux.Handle("GET /console/recordings/{name...}", c.api(c.playRecording, false))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "A request from another site was refused: use the console's own page.")
	}))
	return cop.Handler(mux)
}

// serveStatic serves the console's script and stylesheet, which need no
// sign-in: the sign-in page has the stylesheet too.
func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	types := map[string]string{"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
	name := r.PathValue("name")
	typ, ok := types[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := web.ReadFile("web/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Write(b)
}

// ServeHTTP serves the console's paths, each with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if !c.cfg.Enabled() {
		http.Error(w, "The console is off: give it administrators (admin.users) or a trusted reverse proxy's header (admin.header).", http.StatusNotFound)
		return
	}
	c.handler.ServeHTTP(w, r)
}

// admin is who signed in to the console, for one request.
type admin struct {
	name string
	csrf string
	sid  string // the session's key; "" for a header sign-in
}

// who is the administrator making r, if any: the trusted reverse proxy's
// header, else the session's cookie.
func (c *Console) who(r *http.Request) (admin, bool) {
	ip := httpx.ClientIP(r)
	if c.header != "" {
		if vals, ok := r.Header[c.header]; ok {
			if !c.isTrusted(ip) {
				c.log.Warn("admin.header from an untrusted address ignored", "client_ip", ip, "header", c.header)
			} else if name := strings.TrimSpace(vals[0]); len(vals) == 1 && validName(name) {
				mac := hmac.New(sha256.New, c.secret[:])
				mac.Write([]byte(name))
				return admin{name: name, csrf: base64.RawURLEncoding.EncodeToString(mac.Sum(nil))}, true
			} else {
				c.log.Warn("invalid admin.header from a trusted proxy", "client_ip", ip, "header", c.header)
				return admin{}, false
			}
		}
	}
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return admin{}, false
	}
	sid := sessionKey(ck.Value)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[sid]
	if s == nil {
		return admin{}, false
	}
	if now.Sub(s.seen) > sessionIdle || now.Sub(s.created) > sessionMax {
		delete(c.sessions, sid)
		return admin{}, false
	}
	if _, still := c.users[s.admin]; !still {
		delete(c.sessions, sid)
		return admin{}, false
	}
	s.seen = now
	return admin{name: s.admin, csrf: s.csrf, sid: sid}, true
}

func (c *Console) isTrusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sessionKey is what a session is kept under: the hash of its cookie, so
// that the table holds nothing a cookie could be made from.
func sessionKey(cookie string) string {
	h := sha256.Sum256([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// api wraps an action of a signed-in administrator: 401 without one, and
// for what changes state (mutating) 403 without the CSRF token.
func (c *Console) api(fn func(w http.ResponseWriter, r *http.Request, a admin), mutating bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := c.who(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "Sign in to the console first.")
			return
		}
		if mutating && !hmac.Equal([]byte(r.Header.Get("X-CSRF-Token")), []byte(a.csrf)) {
			writeError(w, http.StatusForbidden, "This request lacks the console's CSRF token: use the console's own page.")
			return
		}
		fn(w, r, a)
	})
}

func (c *Console) servePage(w http.ResponseWriter, r *http.Request) {
	a, ok := c.who(r)
	if !ok {
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	c.note(a, r, "view_console", "", "", http.StatusOK, true)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.page.Execute(w, struct {
		Admin, CSRF string
		SignOut     bool
	}{a.name, a.csrf, a.sid != ""})
}

func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	c.login.Execute(w, struct {
		Message  string
		Users    bool
		Header   string
		Disabled bool
	}{msg, len(c.users) > 0, c.header, len(c.users) == 0})
}

// signIn checks a name and password against admin.users, with failures
// limited per address as the proxy's own sign-ins are.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	ip := httpx.ClientIP(r)
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	name, pass := r.PostForm.Get("name"), r.PostForm.Get("password")
	if len(c.users) == 0 {
		c.renderLogin(w, http.StatusUnauthorized, "Sign-in by password is off: sign in through the reverse proxy.")
		return
	}
	hash, known := c.users[name]
	ok, retry, blocked := c.limit.Check(ip, name, pass, func() bool {
		c.sem <- struct{}{}
		defer func() { <-c.sem }()
		if !known {
			bcrypt.CompareHashAndPassword(c.dummy, []byte(pass))
			return false
		}
		return bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
	})
	// The name tried is logged only if it is one: a password typed in the
	// name field must not reach the SOC's log.
	logged := name
	if !known {
		logged = "(unknown)"
	}
	if blocked {
		c.log.Warn("console: too many failed sign-ins; refusing the address for a while", "client_ip", ip, "refused_for", auth.BlockFor)
	}
	if retry > 0 {
		c.audit.Admin(audit.AdminEvent{Admin: logged, ClientIP: ip, Action: "sign_in", Status: http.StatusTooManyRequests})
		w.Header().Set("Retry-After", fmt.Sprint(int(retry.Seconds()+1)))
		c.renderLogin(w, http.StatusTooManyRequests, "Too many failed sign-ins from your address: try again in a few minutes.")
		return
	}
	if !ok {
		c.audit.Admin(audit.AdminEvent{Admin: logged, ClientIP: ip, Action: "sign_in", Status: http.StatusUnauthorized})
		c.renderLogin(w, http.StatusUnauthorized, "Wrong name or password.")
		return
	}
	cookie, csrf := randomToken(), randomToken()
	now := time.Now()
	c.mu.Lock()
	for k, s := range c.sessions {
		if now.Sub(s.seen) > sessionIdle || now.Sub(s.created) > sessionMax {
			delete(c.sessions, k)
		}
	}
	if len(c.sessions) >= maxSessions {
		// Full of live sessions: the oldest sign-in goes.
		var oldest string
		for k, s := range c.sessions {
			if oldest == "" || s.created.Before(c.sessions[oldest].created) {
				oldest = k
			}
		}
		delete(c.sessions, oldest)
	}
	c.sessions[sessionKey(cookie)] = &session{admin: name, csrf: csrf, created: now, seen: now}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie, Path: Prefix, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	c.audit.Admin(audit.AdminEvent{Admin: name, ClientIP: ip, Action: "sign_in", Status: http.StatusOK})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, a admin) {
	if a.sid != "" {
		c.mu.Lock()
		delete(c.sessions, a.sid)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	c.note(a, r, "sign_out", "", "", http.StatusOK, false)
	writeJSON(w, http.StatusOK, map[string]string{"signed_out": a.name})
}

// note writes the admin_action event of a; a repeated one (every says
// so) only once per noteEvery for the same administrator and target.
func (c *Console) note(a admin, r *http.Request, action, tabID, target string, status int, every bool) {
	c.noteFrom(a, httpx.ClientIP(r), action, tabID, target, status, every)
}

// noteFrom is note for an administrator at clientIP.
func (c *Console) noteFrom(a admin, clientIP, action, tabID, target string, status int, every bool) {
	if every {
		key := a.name + "\x00" + action + "\x00" + tabID + "\x00" + target
		now := time.Now()
		c.mu.Lock()
		last, seen := c.noted[key]
		if seen && now.Sub(last) < noteEvery {
			c.mu.Unlock()
			return
		}
		if len(c.noted) >= 10000 {
			clear(c.noted)
		}
		c.noted[key] = now
		c.mu.Unlock()
	}
	c.audit.Admin(audit.AdminEvent{Admin: a.name, ClientIP: clientIP, Action: action, Tab: tabID, Target: target, Status: status})
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
