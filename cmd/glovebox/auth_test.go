package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/glovebox/glovebox/proxy/auth"
	"golang.org/x/crypto/bcrypt"
)

// makeHtpasswd writes an htpasswd file with Apache's own htpasswd -B when it
// is installed (make test installs apache2-utils), so the format
// administrators produce is the one tested; else with Go's bcrypt.
func makeHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "htpasswd")
	if _, err := exec.LookPath("htpasswd"); err == nil {
		for u, p := range users {
			args := []string{"-B", "-b", path, u, p}
			if _, err := os.Stat(path); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command("htpasswd", args...).CombinedOutput(); err != nil {
				t.Fatalf("htpasswd: %v: %s", err, out)
			}
		}
		return path
	}
	t.Log("htpasswd (apache2-utils) is not installed: writing bcrypt entries with Go")
	var b strings.Builder
	for u, p := range users {
		h, _ := bcrypt.GenerateFromPassword([]byte(p), 5) // htpasswd -B's cost; Glovebox refuses 4
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthAndPACConfigErrors(t *testing.T) {
	dir := t.TempDir()
	sha := filepath.Join(dir, "sha")
	os.WriteFile(sha, []byte("alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n"), 0o600)
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"bad mode", "auth:\n  mode: ldap\n", []string{"config.yaml:2: auth.mode", `"ldap"`}},
		{"basic without a file", "auth:\n  mode: basic\n", []string{"config.yaml:2: auth.htpasswd: empty"}},
		{"missing htpasswd", "auth:\n  mode: basic\n  htpasswd: " + filepath.Join(dir, "none") + "\n", []string{"config.yaml:3: auth.htpasswd", "no such file"}},
		{"non-bcrypt hash", "auth:\n  mode: basic\n  htpasswd: " + sha + "\n", []string{"config.yaml:3: auth.htpasswd", sha + `:1: user "alice": not a bcrypt hash`}},
		{"bad CIDR", "auth:\n  mode: header\n  trusted_proxies:\n    - 10.0.0.1\n    - 10.0.0.0/40\n", []string{"config.yaml:5: auth.trusted_proxies[1]", "10.0.0.0/40"}},
		{"header mode without proxies", "auth:\n  mode: header\n", []string{"config.yaml:2: auth.trusted_proxies: empty"}},
		{"unknown group in a rule", "auth:\n  groups:\n    eng: [alice]\npolicy:\n  rules:\n    - name: r\n      groups: [sales]\n      action: allow\n",
			[]string{"config.yaml:6:", `policy.rules[0] (r): groups: unknown group "sales"`}},
		{"unknown key in auth", "auth:\n  mdoe: basic\n", []string{`config.yaml:2: unknown key "auth.mdoe"`, `"mode"`}},
		{"bad pac.direct", "pac:\n  direct:\n    - 'a\"b'\n", []string{"config.yaml:3: pac.direct[0]"}},
		{"bad pac.proxy", "pac:\n  proxy: nowhere\n", []string{"config.yaml:2: pac.proxy", "host:port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tt.body), nil)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	// Group names are case-insensitive (viper lowercases map keys anyway).
	good := "auth:\n  mode: basic\n  htpasswd: " + makeHtpasswd(t, map[string]string{"alice": "pw"}) +
		"\n  groups:\n    Contractors: [alice]\npolicy:\n  rules:\n    - {name: c, groups: [CONTRACTORS], action: block}\n"
	if _, err := loadConfig(writeConfig(t, good), nil); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// authClient is an HTTP client of Glovebox from a chosen loopback address,
// with Basic proxy credentials (user "" sends none) and extra headers.
func authClient(g *glovebox, from, user, pass string, hdr http.Header) *http.Client {
	pu := &url.URL{Scheme: "http", Host: g.addr}
	if user != "" {
		pu.User = url.UserPassword(user, pass)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := &http.Transport{Proxy: http.ProxyURL(pu), DialContext: d.DialContext, ProxyConnectHeader: hdr}
	return &http.Client{Transport: headerRT{tr, hdr}, Timeout: 60 * time.Second}
}

type headerRT struct {
	http.RoundTripper
	h http.Header
}

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.h {
		r.Header[k] = v
	}
	return h.RoundTripper.RoundTrip(r)
}

func postJSON(t *testing.T, c *http.Client, u string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := c.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// TestAuthUsersAndTabs: with authentication on, the user is in the audit
// events of their requests and of their tab, and a tab is bound to its
// user: another user on the same address (a shared machine, or every user
// behind a downstream proxy) gets the unknown-token answer.
func TestAuthUsersAndTabs(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	pw := makeHtpasswd(t, map[string]string{"alice": "alice's secret", "bob": "bob's secret"})
	modes := []struct {
		name   string
		mutate func(*Config)
		// as returns alice's or bob's client; both from the same address
		as func(g *glovebox, user string) *http.Client
	}{
		{"basic", func(c *Config) {
			c.Proxy.Auth.Mode = auth.ModeBasic
			c.Proxy.Auth.Htpasswd = pw
		}, func(g *glovebox, user string) *http.Client {
			return authClient(g, "127.0.0.1", user, user+"'s secret", nil)
		}},
		{"header behind a downstream proxy", func(c *Config) {
			c.Proxy.Auth.Mode = auth.ModeHeader
			c.Proxy.Auth.TrustedProxies = []string{"127.0.0.2"}
		}, func(g *glovebox, user string) *http.Client {
			return authClient(g, "127.0.0.2", "", "", http.Header{"X-Authenticated-User": {user}})
		}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			g := startGlovebox(t, m.mutate)
			api := site.URL + "/.glovebox/api"
			alice, bob := m.as(g, "alice"), m.as(g, "bob")

			// Alice navigates: the landing page, and her name in the audit event.
			// (A client that has not signed in gets 407:
			// proxy's TestAuthRefusesAnonymous.)
			req, _ := http.NewRequest("GET", site.URL+"/", nil)
			req.Header.Set("Sec-Fetch-Mode", "navigate")
			req.Header.Set("Sec-Fetch-Dest", "document")
			resp, err := alice.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Glovebox") != "isolated" {
				t.Fatalf("alice's navigation: %d", resp.StatusCode)
			}
			// A client that runs no script: the landing page's event waits
			// for a tab that never asks (navHold, 5 s) first.
			waitFor(t, 15*time.Second, "alice's proxy_request", func() (bool, string) {
				for _, e := range g.audit.events() {
					if e["event"] == "proxy_request" && e["url"] == site.URL+"/" && e["status"] == 200.0 {
						return e["user"] == "alice", fmt.Sprint(e)
					}
				}
				return false, "none"
			})

			// Alice's tab.
			status, out := postJSON(t, alice, api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
			if status != 201 {
				t.Fatalf("alice's tab: %d %v", status, out)
			}
			token, tab := out["token"].(string), out["tab"].(string)
			status, out = postJSON(t, alice, api+"/tabs/"+token+"/handoff", map[string]string{"url": site.URL + "/next"})
			if status != 200 {
				t.Fatalf("alice's handoff: %d %v", status, out)
			}
			code := out["code"].(string)

			// Bob, from the same address, gets exactly the unknown-token answers.
			_, unknown := postJSON(t, bob, api+"/tabs/"+strings.Repeat("A", len(token))+"/offer", map[string]string{"sdp": "v=0"})
			for _, path := range []string{"/offer", "/detach", "/handoff"} {
				s, o := postJSON(t, bob, api+"/tabs/"+token+path, map[string]string{"sdp": "v=0"})
				if s != 404 || fmt.Sprint(o) != fmt.Sprint(unknown) {
					t.Errorf("bob on alice's tab %s: %d %v, want the unknown-token answer %v", path, s, o, unknown)
				}
			}
			if s, o := postJSON(t, bob, api+"/claim", map[string]string{"code": code}); s != 404 {
				t.Errorf("bob claims alice's handoff code: %d %v", s, o)
			}
			// Alice still can (the code was not used up by bob's try).
			if s, o := postJSON(t, alice, api+"/claim", map[string]string{"code": code}); s != 200 || o["tab"] != tab {
				t.Errorf("alice claims her code: %d %v", s, o)
			}

			// The tab's events carry her name; with no landing page attached it
			// ends after the reattach grace.
			var start, end map[string]any
			waitFor(t, 60*time.Second, "alice's tab to start and end", func() (bool, string) {
				for _, e := range g.audit.events() {
					if e["tab"] == tab && e["event"] == "tab_start" {
						start = e
					}
					if e["tab"] == tab && e["event"] == "tab_end" {
						end = e
					}
				}
				return start != nil && end != nil, fmt.Sprintf("start %v end %v", start, end)
			})
			if start["user"] != "alice" || end["user"] != "alice" {
				t.Errorf("tab events: %v / %v, want user alice", start, end)
			}
			// After the end: alice learns why, bob still nothing.
			if s, o := postJSON(t, alice, api+"/tabs/"+token+"/offer", map[string]string{"sdp": "v=0"}); s != 410 {
				t.Errorf("alice's ended tab: %d %v", s, o)
			}
			if s, o := postJSON(t, bob, api+"/tabs/"+token+"/offer", map[string]string{"sdp": "v=0"}); s != 404 || fmt.Sprint(o) != fmt.Sprint(unknown) {
				t.Errorf("bob on alice's ended tab: %d %v", s, o)
			}
		})
	}
}

// TestAuthInRealBrowser: the user's Chromium, challenged with 407, signs in
// (answering the challenge through DevTools, as a user would in its
// dialog), opens an isolated site and sees it; the navigation and the tab
// are audited under the user's name.
func TestAuthInRealBrowser(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	pw := makeHtpasswd(t, map[string]string{"alice": "alice's secret"})
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Auth.Mode = auth.ModeBasic
		c.Proxy.Auth.Htpasswd = pw
	})
	bctx := userBrowser(t, g.addr)

	var challenges atomic.Int32
	tctx := signedIn(t, bctx, "alice", "alice's secret", &challenges, nil)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitForColour(t, tctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
	if challenges.Load() == 0 {
		t.Errorf("the browser was never challenged")
	}
	var nav, start map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "proxy_request" && e["url"] == site.URL+"/" && e["status"] == 200.0 {
			nav = e
		}
		if e["event"] == "tab_start" {
			start = e
		}
	}
	if nav == nil || nav["user"] != "alice" || nav["action"] != "isolate" {
		t.Errorf("the navigation's audit event: %v", nav)
	}
	if start == nil || start["user"] != "alice" {
		t.Errorf("tab_start: %v", start)
	}
}

// signedIn opens a tab of the user's browser that answers Glovebox's
// proxy sign-in (basic, realm Glovebox) as user, as a user would in its
// dialog, through DevTools; challenges, when set, counts the sign-ins
// asked. intercept, when set, sees each request first and says whether it
// answered it.
func signedIn(t *testing.T, bctx context.Context, user, pass string, challenges *atomic.Int32,
	intercept func(context.Context, *fetch.EventRequestPaused) bool) context.Context {
	t.Helper()
	var tctx context.Context
	tctx, cancel := chromedp.NewContext(bctx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *fetch.EventRequestPaused:
			if intercept != nil && intercept(tctx, e) {
				return
			}
			go chromedp.Call(tctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
		case *fetch.EventAuthRequired:
			if challenges != nil {
				challenges.Add(1)
			}
			resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
			if e.AuthChallenge.Source == fetch.AuthChallengeSourceProxy && e.AuthChallenge.Realm == "Glovebox" && e.AuthChallenge.Scheme == "basic" {
				resp = &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: user, Password: pass}
			}
			go chromedp.Call(tctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: e.RequestID, AuthChallengeResponse: resp})
		}
	}))
	t.Cleanup(cancel)
	handle := true
	if err := chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handle})
		return err
	})); err != nil {
		t.Fatalf("open a signed-in tab: %v", err)
	}
	return tctx
}

// TestDownloadOtherUser: a download's one-time URL, taken from alice's
// landing page before her browser fetched it, gives bob (from the same
// address) nothing and leaves it to alice, who gets it once.
func TestDownloadOtherUser(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	pw := makeHtpasswd(t, map[string]string{"alice": "alice's secret", "bob": "bob's secret"})
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Auth.Mode = auth.ModeBasic
		c.Proxy.Auth.Htpasswd = pw
		c.Proxy.Policy.Defaults.Download = "allow"
	})
	bctx := userBrowser(t, g.addr)
	offered := make(chan string, 4)
	tctx := signedIn(t, bctx, "alice", "alice's secret", nil, func(ctx context.Context, e *fetch.EventRequestPaused) bool {
		if !strings.Contains(e.Request.URL, "/.glovebox/files/") {
			return false
		}
		// The test takes the file's URL; her browser does not fetch it.
		offered <- e.Request.URL
		go chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: network.ErrorReasonAborted})
		return true
	})
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/downloads")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitForColour(t, tctx, cleanArea[0], cleanArea[1], blue, 60*time.Second)
	click(t, tctx, cleanArea)
	var u string
	select {
	case u = <-offered:
	case <-time.After(60 * time.Second):
		t.Fatalf("no file offered; the bar: %s", downloadBar(tctx))
	}

	get := func(c *http.Client) (int, []byte) {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	alice, bob := authClient(g, "127.0.0.1", "alice", "alice's secret", nil), authClient(g, "127.0.0.1", "bob", "bob's secret", nil)
	if s, _ := get(bob); s != http.StatusNotFound {
		t.Errorf("bob fetches alice's file: HTTP %d, want 404", s)
	}
	if s, b := get(alice); s != http.StatusOK || !bytes.Equal(b, cleanFile) {
		t.Errorf("alice fetches her file: HTTP %d, %d bytes; want 200 and the %d served", s, len(b), len(cleanFile))
	}
	if s, _ := get(alice); s != http.StatusNotFound {
		t.Errorf("alice replays the URL: HTTP %d, want 404", s)
	}
}
