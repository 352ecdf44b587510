package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/tab"
)

// fakeTabs is the proxy's side of the console: a seam the console owns.
type fakeTabs struct {
	mu    sync.Mutex
	tabs  []tab.Info
	ended map[string]string // id → reason
	// shadowed counts the viewers ShadowTab made and not yet stopped;
	// dones are their done channels.
	shadowed int
	dones    []chan struct{}
}

func (f *fakeTabs) TabList() []tab.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tab.Info(nil), f.tabs...)
}

func (f *fakeTabs) ShadowTab(_ context.Context, id, _ string, _ bool) (string, func(), <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tabs {
		if t.Tab == id {
			f.shadowed++
			done := make(chan struct{})
			var once sync.Once
			f.dones = append(f.dones, done)
			return "v=0 answer", func() {
				once.Do(func() {
					f.mu.Lock()
					f.shadowed--
					f.mu.Unlock()
					close(done)
				})
			}, done, nil
		}
	}
	return "", nil, nil, tab.ErrNoTab
}

func (f *fakeTabs) EndTab(id, reason string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range f.tabs {
		if t.Tab == id {
			f.tabs = append(f.tabs[:i], f.tabs[i+1:]...)
			f.ended[id] = reason
			return true
		}
	}
	return false
}

// lockedBuffer is the audit log the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) events(name string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["event"] == name {
			out = append(out, m)
		}
	}
	return out
}

func hash(t testing.TB, pass string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

type fixture struct {
	c     *Console
	tabs  *fakeTabs
	audit *lockedBuffer
	aud   *audit.Audit
}

func newFixture(t *testing.T, cfg Config, recDir string) *fixture {
	t.Helper()
	if cfg.RecentEvents == 0 {
		cfg.RecentEvents = 100
	}
	f := &fixture{tabs: &fakeTabs{ended: map[string]string{}}, audit: &lockedBuffer{}}
	f.tabs.tabs = []tab.Info{{Tab: "t1", User: "alice", ClientIP: "192.0.2.1", URL: "http://a.test/", CurrentURL: "http://a.test/next",
		Title: "Next", Started: time.Now().Add(-time.Hour), LastActive: time.Now().Add(-90 * time.Second), Runtime: "process", Browser: "pid 42",
		Attached: true}}
	m := &f.tabs.tabs[0].Media
	m.Codec, m.FramesSent, m.BytesSent, m.TargetBitrate, m.RTT, m.Width, m.Height = "vp8", 120, 50000, 800000, 20*time.Millisecond, 800, 600
	f.aud = audit.New(f.audit)
	ring := NewRing(cfg.RecentEvents)
	f.aud.AddTap(ring.Add)
	c, err := New(cfg, Options{Tabs: f.tabs, Audit: f.aud, Events: ring, RecordingDir: recDir})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

// do sends one request to the console from 127.0.0.1 (from, if set).
func (f *fixture) do(method, target string, body io.Reader, mod func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://admin.test"+target, body)
	r.RemoteAddr = "127.0.0.1:5555"
	if body != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	f.c.ServeHTTP(w, r)
	return w
}

// signIn signs root in and returns the cookie and the page's CSRF token.
func (f *fixture) signIn(t *testing.T, name, pass string) (*http.Cookie, string) {
	t.Helper()
	w := f.do("POST", "/console/login", strings.NewReader(url.Values{"name": {name}, "password": {pass}}.Encode()), nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/" {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	var ck *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/", ck)
	}
	page := f.do("GET", "/console/", nil, func(r *http.Request) { r.AddCookie(ck) })
	if page.Code != 200 {
		t.Fatalf("console page: %d", page.Code)
	}
	body := page.Body.String()
	i := strings.Index(body, `name="csrf-token" content="`)
	if i < 0 {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	tok := body[i+len(`name="csrf-token" content="`):]
	return ck, tok[:strings.IndexByte(tok, '"')]
}

// TestConsoleNeedsSignIn: without credentials the API says 401, the page
// sends to the sign-in, and nothing is ended.
func TestConsoleNeedsSignIn(t *testing.T) {
	f := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}}}, "")
	for _, tc := range []struct{ method, path string }{
		{"GET", "/console/api/tabs"}, {"GET", "/console/api/events"}, {"GET", "/console/api/recordings"},
		{"POST", "/console/api/tabs/t1/end"}, {"GET", "/console/recordings/a.webm"}, {"POST", "/console/logout"},
	} {
		w := f.do(tc.method, tc.path, nil, nil)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: %d, want 401", tc.method, tc.path, w.Code)
		}
	}
	// A forged session cookie is none.
	w := f.do("GET", "/console/api/tabs", nil, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: cookieName, Value: "forged"}) })
	if w.Code != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d, want 401", w.Code)
	}
	if w := f.do("GET", "/console/", nil, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/login" {
		t.Errorf("the page without a session: %d %q, want 303 to the sign-in", w.Code, w.Header().Get("Location"))
	}
	if len(f.tabs.ended) != 0 {
		t.Errorf("a tab was ended without credentials: %v", f.tabs.ended)
	}
	login := f.do("GET", "/console/login", nil, nil)
	if login.Code != 200 || !strings.Contains(login.Body.String(), `action="/console/login"`) {
		t.Errorf("sign-in page: %d %s", login.Code, login.Body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := login.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestConsoleSignIn: bcrypt decides; a wrong password and an unknown name
// are refused alike and are audit events (the unknown name not logged);
// the signed-in administrator lists and ends tabs, each an audit event
// naming them; ending needs the CSRF token and a same-origin request.
func TestConsoleSignIn(t *testing.T) {
	f := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}}}, "")
	for _, creds := range [][2]string{{"root", "wrong"}, {"hunter2", "s3cret"}, {"root", ""}} {
		w := f.do("POST", "/console/login", strings.NewReader(url.Values{"name": {creds[0]}, "password": {creds[1]}}.Encode()), nil)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong name or password") {
			t.Errorf("sign-in as %q/%q: %d, want 401 saying so", creds[0], creds[1], w.Code)
		}
		if len(w.Result().Cookies()) != 0 {
			t.Errorf("a failed sign-in set a cookie")
		}
	}
	ck, csrf := f.signIn(t, "root", "s3cret")
	withCookie := func(r *http.Request) { r.AddCookie(ck) }

	w := f.do("GET", "/console/api/tabs", nil, withCookie)
	var list struct{ Tabs []tabJSON }
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 || len(list.Tabs) != 1 {
		t.Fatalf("tabs: %d %s", w.Code, w.Body)
	}
	got := list.Tabs[0]
	if got.User != "alice" || got.ClientIP != "192.0.2.1" || got.CurrentURL != "http://a.test/next" || got.Title != "Next" ||
		got.Container != "pid 42" || got.IdleS != 90 || got.Media.Codec != "vp8" || got.Media.FramesSent != 120 || got.Media.RTTms != 20 {
		t.Errorf("tab listed as %+v", got)
	}

	// Without the token, from another site, or with a token of no
	// session: refused, and the tab lives.
	for name, mod := range map[string]func(*http.Request){
		"no token": withCookie,
		"another site": func(r *http.Request) {
			withCookie(r)
			r.Header.Set("X-CSRF-Token", csrf)
			r.Header.Set("Origin", "http://evil.test")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		},
		"a wrong token": func(r *http.Request) { withCookie(r); r.Header.Set("X-CSRF-Token", csrf+"x") },
	} {
		if w := f.do("POST", "/console/api/tabs/t1/end", nil, mod); w.Code != http.StatusForbidden {
			t.Errorf("end with %s: %d, want 403", name, w.Code)
		}
	}
	if len(f.tabs.ended) != 0 {
		t.Fatalf("ended without the token: %v", f.tabs.ended)
	}
	w = f.do("POST", "/console/api/tabs/t1/end", nil, func(r *http.Request) {
		withCookie(r)
		r.Header.Set("X-CSRF-Token", csrf)
		r.Header.Set("Origin", "http://admin.test")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	if w.Code != 200 || f.tabs.ended["t1"] != tab.ReasonAdmin {
		t.Fatalf("end: %d %s; ended %v", w.Code, w.Body, f.tabs.ended)
	}
	if w := f.do("POST", "/console/api/tabs/t1/end", nil, func(r *http.Request) { withCookie(r); r.Header.Set("X-CSRF-Token", csrf) }); w.Code != 404 {
		t.Errorf("ending it again: %d, want 404", w.Code)
	}

	var actions []string
	for _, e := range f.audit.events(audit.EventAdmin) {
		actions = append(actions, fmt.Sprintf("%s %s %s %s %v", e["admin"], e["action"], e["tab"], e["target"], e["status"]))
		if e["client_ip"] != "127.0.0.1" {
			t.Errorf("admin_action without the client address: %v", e)
		}
	}
	want := []string{
		"root sign_in   401", "(unknown) sign_in   401", "root sign_in   401", "root sign_in   200",
		"root view_console   200", "root list_tabs   200", "root end_tab t1 alice 200", "root end_tab t1  404",
	}
	if strings.Join(actions, "\n") != strings.Join(want, "\n") {
		t.Errorf("admin actions:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(f.audit.b.String(), "s3cret") || strings.Contains(f.audit.b.String(), "hunter2") || strings.Contains(f.audit.b.String(), ck.Value) {
		t.Error("a password, a name tried or the session cookie is in the audit log")
	}

	// Signed out, the cookie is worth nothing.
	if w := f.do("POST", "/console/logout", nil, func(r *http.Request) { withCookie(r); r.Header.Set("X-CSRF-Token", csrf) }); w.Code != 200 {
		t.Errorf("sign out: %d", w.Code)
	}
	if w := f.do("GET", "/console/api/tabs", nil, withCookie); w.Code != http.StatusUnauthorized {
		t.Errorf("after signing out: %d, want 401", w.Code)
	}
}

// TestConsoleSignInThrottled: failed sign-ins are limited per address.
func TestConsoleSignInThrottled(t *testing.T) {
	f := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}}}, "")
	var last int
	for i := range 11 {
		w := f.do("POST", "/console/login", strings.NewReader(url.Values{"name": {"root"}, "password": {fmt.Sprint("guess", i)}}.Encode()), nil)
		last = w.Code
	}
	w := f.do("POST", "/console/login", strings.NewReader("name=root&password=s3cret"), nil)
	if last != http.StatusTooManyRequests || w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("past the limit: %d, then the right password %d, want 429", last, w.Code)
	}
}

// TestConsoleHeader: admin.header is believed from admin.trusted_proxies
// only; from elsewhere it is no sign-in.
func TestConsoleHeader(t *testing.T) {
	f := newFixture(t, Config{Header: "X-Forwarded-User", TrustedProxies: []string{"127.0.0.1/32", "::1"}}, "")
	from := func(ip, name string) func(*http.Request) {
		return func(r *http.Request) {
			r.RemoteAddr = net.JoinHostPort(ip, "4000")
			r.Header.Set("X-Forwarded-User", name)
		}
	}
	if w := f.do("GET", "/console/api/tabs", nil, from("127.0.0.1", "sso-admin")); w.Code != 200 {
		t.Errorf("from the trusted proxy: %d", w.Code)
	}
	if w := f.do("GET", "/console/api/tabs", nil, from("192.0.2.9", "sso-admin")); w.Code != http.StatusUnauthorized {
		t.Errorf("from an untrusted address: %d, want 401", w.Code)
	}
	if w := f.do("GET", "/console/api/tabs", nil, from("127.0.0.1", "bad\nname")); w.Code != http.StatusUnauthorized {
		t.Errorf("an invalid name: %d, want 401", w.Code)
	}
	// The page carries the token for the POSTs of that name.
	page := f.do("GET", "/console/", nil, from("::1", "sso-admin"))
	if page.Code != 200 || !strings.Contains(page.Body.String(), "sso-admin") || strings.Contains(page.Body.String(), "sign-out") {
		t.Fatalf("page for a header sign-in: %d", page.Code)
	}
	body := page.Body.String()
	tok := body[strings.Index(body, `name="csrf-token" content="`)+len(`name="csrf-token" content="`):]
	tok = tok[:strings.IndexByte(tok, '"')]
	if w := f.do("POST", "/console/api/tabs/t1/end", nil, func(r *http.Request) {
		from("127.0.0.1", "sso-admin")(r)
		r.Header.Set("X-CSRF-Token", tok)
	}); w.Code != 200 {
		t.Errorf("end by a header sign-in: %d %s", w.Code, w.Body)
	}
	if e := f.audit.events(audit.EventAdmin); len(e) == 0 || e[len(e)-1]["admin"] != "sso-admin" || e[len(e)-1]["action"] != "end_tab" {
		t.Errorf("admin actions: %v", e)
	}
	// No password sign-in in header mode.
	if w := f.do("POST", "/console/login", strings.NewReader("name=root&password=x"), nil); w.Code != http.StatusUnauthorized {
		t.Errorf("password sign-in in header mode: %d", w.Code)
	}
}

// TestConsoleOff: without users or a header, the console says it is off.
func TestConsoleOff(t *testing.T) {
	f := newFixture(t, Config{}, "")
	if w := f.do("GET", "/console/", nil, nil); w.Code != 404 || !strings.Contains(w.Body.String(), "admin.users") {
		t.Errorf("console off: %d %s", w.Code, w.Body)
	}
}

// TestRing: the ring keeps the latest events, newest first.
func TestRing(t *testing.T) {
	r := NewRing(3)
	for i := range 5 {
		r.Add(fmt.Appendf(nil, `{"event":"tab_start","tab":"t%d"}`+"\n", i))
	}
	r.Add([]byte("not json\n"))
	// Added to while read (the audit log writes while the console reads).
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 100 {
			r.Add(fmt.Appendf(nil, `{"event":"other","tab":"x%d"}`, i))
		}
	})
	for range 100 {
		r.Recent(Filter{Event: "other"}, 10)
	}
	wg.Wait()
	for i := 2; i < 5; i++ {
		r.Add(fmt.Appendf(nil, `{"event":"tab_start","tab":"t%d"}`+"\n", i))
	}
	got, held := r.Recent(Filter{}, 10)
	if held != 3 || len(got) != 3 || string(got[0]) != `{"event":"tab_start","tab":"t4"}` || string(got[2]) != `{"event":"tab_start","tab":"t2"}` {
		t.Errorf("ring holds %d: %s", held, got)
	}
}

// TestConsoleEvents: the filters pick the recent events.
func TestConsoleEvents(t *testing.T) {
	f := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}}}, "")
	f.aud.TabStart(audit.TabEvent{Tab: "t1", User: "alice", Host: "a.example.com"})
	f.aud.Request(audit.RequestEvent{User: "bob", Host: "b.test", Action: "block", Status: 403})
	f.aud.TabEnd(audit.TabEvent{Tab: "t1", User: "alice", Host: "a.example.com", Reason: tab.ReasonAdmin})
	ck, _ := f.signIn(t, "root", "s3cret")
	list := func(q string) []string {
		t.Helper()
		w := f.do("GET", "/console/api/events?"+q, nil, func(r *http.Request) { r.AddCookie(ck) })
		var j struct {
			Events []map[string]any
			Held   int
		}
		if err := json.Unmarshal(w.Body.Bytes(), &j); err != nil || w.Code != 200 {
			t.Fatalf("events?%s: %d %s", q, w.Code, w.Body)
		}
		var out []string
		for _, e := range j.Events {
			if e["event"] == audit.EventAdmin && !strings.Contains(q, "admin") {
				continue // the console's own, as this test goes
			}
			out = append(out, fmt.Sprint(e["event"], "/", e["user"], e["admin"]))
		}
		return out
	}
	for q, want := range map[string]string{
		"":                               "tab_end/alice<nil> proxy_request/bob<nil> tab_start/alice<nil>",
		"user=ALI":                       "tab_end/alice<nil> tab_start/alice<nil>",
		"host=example.com":               "tab_end/alice<nil> tab_start/alice<nil>",
		"action=block":                   "proxy_request/bob<nil>",
		"tab=t1&event=tab_end":           "tab_end/alice<nil>",
		"tab=t0":                         "",
		"event=proxy_request&user=alice": "",
	} {
		if got := strings.Join(list(q), " "); got != want {
			t.Errorf("events?%s = %s, want %s", q, got, want)
		}
	}
	admin := list("user=root&event=admin_action")
	if len(admin) < 3 || strings.Count(strings.Join(admin, " "), "admin_action/<nil>root") != len(admin) {
		t.Errorf("root's admin actions: %v", admin)
	}
	if got := list("limit=1&event=admin_action"); len(got) != 1 {
		t.Errorf("limit=1: %v", got)
	}
	// The searches are audit events with their filter: list_events with
	// target user="ALI".
	found := false
	for _, e := range f.audit.events(audit.EventAdmin) {
		if e["action"] == "list_events" && e["target"] == `user="ALI"` {
			found = true
		}
	}
	if !found {
		t.Errorf("no list_events event naming its filter: %v", f.audit.events(audit.EventAdmin))
	}
}

// TestConsoleRecordings: the recordings of the directory are listed and
// served with ranges; no name reaches a file outside it.
func TestConsoleRecordings(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.webm")
	os.WriteFile(outside, []byte("SECRET"), 0o644)
	os.MkdirAll(filepath.Join(dir, "2026", "12"), 0o755)
	os.WriteFile(filepath.Join(dir, "a.webm"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(dir, "2026", "12", "b.mkv"), []byte("matroska"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("text"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "link.webm"))
	os.Symlink(filepath.Dir(outside), filepath.Join(dir, "out"))
	f := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}}}, dir)
	ck, _ := f.signIn(t, "root", "s3cret")
	withCookie := func(r *http.Request) { r.AddCookie(ck) }

	w := f.do("GET", "/console/api/recordings", nil, withCookie)
	var j struct {
		Recordings []recordingJSON
		Configured bool
	}
	json.Unmarshal(w.Body.Bytes(), &j)
	var names []string
	for _, r := range j.Recordings {
		names = append(names, r.Name)
	}
	if w.Code != 200 || !j.Configured || len(names) != 2 || !strings.Contains(strings.Join(names, " "), "a.webm") ||
		!strings.Contains(strings.Join(names, " "), "2026/12/b.mkv") {
		t.Errorf("recordings: %d %v, want a.webm and 2026/12/b.mkv", w.Code, names)
	}

	w = f.do("GET", "/console/recordings/a.webm", nil, func(r *http.Request) { withCookie(r); r.Header.Set("Range", "bytes=2-4") })
	if w.Code != http.StatusPartialContent || w.Body.String() != "234" || w.Header().Get("Content-Type") != "video/webm" {
		t.Errorf("range of a.webm: %d %q %q", w.Code, w.Body, w.Header().Get("Content-Type"))
	}
	if w := f.do("GET", "/console/recordings/2026/12/b.mkv", nil, withCookie); w.Code != 200 || w.Body.String() != "matroska" {
		t.Errorf("b.mkv: %d %q", w.Code, w.Body)
	}
	for _, p := range []string{"notes.txt", "link.webm", "out/secret.webm", "..%2f" + filepath.Base(filepath.Dir(outside)) + "%2fsecret.webm",
		"%2e%2e/secret.webm", "nope.webm", "2026"} {
		w := f.do("GET", "/console/recordings/"+p, nil, withCookie)
		if w.Code == 200 || w.Code == 206 || strings.Contains(w.Body.String(), "SECRET") {
			t.Errorf("GET /console/recordings/%s: %d %q, want it refused", p, w.Code, w.Body)
		}
	}
	played := 0
	for _, e := range f.audit.events(audit.EventAdmin) {
		if e["action"] == "play_recording" && e["target"] == "a.webm" && e["admin"] == "root" {
			played++
		}
	}
	if played != 1 {
		t.Errorf("play_recording events of a.webm: %d, want 1", played)
	}

	// No directory configured: said so.
	f2 := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}}}, "")
	ck2, _ := f2.signIn(t, "root", "s3cret")
	if w := f2.do("GET", "/console/api/recordings", nil, func(r *http.Request) { r.AddCookie(ck2) }); !strings.Contains(w.Body.String(), `"configured":false`) {
		t.Errorf("no recording.dir: %s", w.Body)
	}
}

// TestConfigValidate: each bad value names its key.
func TestConfigValidate(t *testing.T) {
	good := hash(t, "x")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"not bcrypt", Config{Users: []User{{Name: "root", PasswordHash: "plain"}}}, "users[0].password_hash: not a bcrypt hash"},
		{"no name", Config{Users: []User{{PasswordHash: good}}}, "users[0].name"},
		{"colon", Config{Users: []User{{Name: "a:b", PasswordHash: good}}}, "users[0].name"},
		{"twice", Config{Users: []User{{Name: "a", PasswordHash: good}, {Name: "a", PasswordHash: good}}}, `users[1].name: "a" is there twice`},
		{"header alone", Config{Header: "X-Forwarded-User"}, "trusted_proxies: empty"},
		{"bad header", Config{Header: "X Bad", TrustedProxies: []string{"10.0.0.1"}}, "header:"},
		{"cookie header", Config{Header: "Cookie", TrustedProxies: []string{"10.0.0.1"}}, "header:"},
		{"proxies alone", Config{TrustedProxies: []string{"10.0.0.1"}}, "admin.header is empty"},
		{"bad proxy", Config{Header: "X-User", TrustedProxies: []string{"10.0.0.300"}}, "trusted_proxies[0]"},
		{"events", Config{RecentEvents: -1}, "recent_events"},
	} {
		if tc.cfg.RecentEvents == 0 {
			tc.cfg.RecentEvents = 10
		}
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := Config{Users: []User{{Name: "root", PasswordHash: good}}, Header: "X-Forwarded-User", TrustedProxies: []string{"10.0.0.0/8", "::1"}, RecentEvents: 10}
	if err := ok.Validate(); err != nil {
		t.Errorf("a good config: %v", err)
	}
}

// TestConsoleShadow: a viewer of a live tab needs the session and its
// CSRF token, answers with the tab's SDP and an id that only its own
// administrator may stop; each is an admin_action; an ended tab is 404.
func TestConsoleShadow(t *testing.T) {
	f := newFixture(t, Config{Users: []User{{Name: "root", PasswordHash: hash(t, "s3cret")}, {Name: "eve", PasswordHash: hash(t, "e")}}}, "")
	ck, csrf := f.signIn(t, "root", "s3cret")
	as := func(ck *http.Cookie, csrf string) func(*http.Request) {
		return func(r *http.Request) {
			r.AddCookie(ck)
			r.Header.Set("X-CSRF-Token", csrf)
			r.Header.Set("Content-Type", "application/json")
		}
	}
	offer := `{"sdp":"v=0 offer"}`
	if w := f.do("POST", "/console/api/tabs/t1/shadow", strings.NewReader(offer), func(r *http.Request) { r.AddCookie(ck) }); w.Code != http.StatusForbidden {
		t.Errorf("shadow without the CSRF token: %d, want 403", w.Code)
	}
	if w := f.do("POST", "/console/api/tabs/t1/shadow", strings.NewReader("{"), as(ck, csrf)); w.Code != http.StatusBadRequest {
		t.Errorf("shadow with no offer: %d, want 400", w.Code)
	}
	w := f.do("POST", "/console/api/tabs/t1/shadow", strings.NewReader(offer), as(ck, csrf))
	var got struct{ SDP, Shadow string }
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 || got.SDP != "v=0 answer" || got.Shadow == "" {
		t.Fatalf("shadow: %d %s", w.Code, w.Body)
	}
	if f.tabs.shadowed != 1 {
		t.Fatalf("%d viewers, want 1", f.tabs.shadowed)
	}
	// Another administrator cannot stop root's viewer.
	eck, ecsrf := f.signIn(t, "eve", "e")
	if w := f.do("POST", "/console/api/shadows/"+got.Shadow+"/stop", nil, as(eck, ecsrf)); w.Code != http.StatusNotFound || f.tabs.shadowed != 1 {
		t.Errorf("eve stops root's viewer: %d, %d viewers", w.Code, f.tabs.shadowed)
	}
	if w := f.do("POST", "/console/api/shadows/"+got.Shadow+"/stop", nil, as(ck, csrf)); w.Code != http.StatusNoContent || f.tabs.shadowed != 0 {
		t.Errorf("root stops his viewer: %d, %d viewers", w.Code, f.tabs.shadowed)
	}
	// A viewer that ends by itself (its user left, the page closed) gives
	// its place back.
	if w := f.do("POST", "/console/api/tabs/t1/shadow", strings.NewReader(offer), as(ck, csrf)); w.Code != 200 {
		t.Fatalf("shadow again: %d %s", w.Code, w.Body)
	}
	f.tabs.mu.Lock()
	close(f.tabs.dones[len(f.tabs.dones)-1])
	f.tabs.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.c.mu.Lock()
		n := len(f.c.shadows)
		f.c.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers still held by the console after theirs ended", n)
		}
	}
	if w := f.do("POST", "/console/api/tabs/t9/shadow", strings.NewReader(offer), as(ck, csrf)); w.Code != http.StatusNotFound {
		t.Errorf("shadow of no tab: %d, want 404", w.Code)
	}
	var actions []string
	for _, e := range f.audit.events(audit.EventAdmin) {
		if a := e["action"].(string); strings.HasPrefix(a, "shadow") {
			actions = append(actions, fmt.Sprintf("%s %s %s %s %v", e["admin"], a, e["tab"], e["target"], e["status"]))
		}
	}
	want := []string{"root shadow t1 alice 200", "root shadow_end t1 alice 200", "root shadow t1 alice 200", "root shadow_end t1 alice 200", "root shadow t9  404"}
	if strings.Join(actions, "\n") != strings.Join(want, "\n") {
		t.Errorf("admin actions:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
}
