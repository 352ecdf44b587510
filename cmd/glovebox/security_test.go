package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/glovebox/glovebox/proxy/policy"
)

// portRule matches one loopback HTTP site by its port, which is all that
// tells the test's sites apart.
func portRule(t testing.TB, name, siteURL string, action policy.Action) policy.Rule {
	return policy.Rule{Name: name, URLRegex: `^http://127\.0\.0\.1:` + portOfURL(t, siteURL) + `(/|$)`, Action: action}
}

// apiRequest sends one API request through the proxy with the given
// headers and returns the status and the JSON body (nil if not JSON).
func apiRequest(t testing.TB, g *glovebox, u string, hdr map[string]string, body any) (int, map[string]any, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := g.proxied.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// TestHandoffOnlyToIsolatedOrigins: a hand-over code is issued only for a
// URL that policy isolates for the tab's user, and claimed only on that
// origin; /.glovebox/ is the site's own path on an allowed origin, so an
// allowed site's scripts (its ads included) can neither read a code nor
// reach the API to claim one.
func TestHandoffOnlyToIsolatedOrigins(t *testing.T) {
	needChromium(t)
	isolated := newTestSite(t)
	other := newTestSite(t) // isolated too: another origin
	var allowedHits []string
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowedHits = append(allowedHits, r.Method+" "+r.URL.Path)
		http.NotFound(w, r)
	}))
	defer allowed.Close()
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Policy.Rules = []policy.Rule{portRule(t, "allowed", allowed.URL, policy.ActionAllow)}
	})
	api := isolated.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": isolated.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	token, tab := out["token"].(string), out["tab"].(string)

	// To an isolated origin: a code, claimable there only.
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/handoff", map[string]any{"url": other.URL + "/next"})
	code, _ := out["code"].(string)
	if status != 200 || code == "" || out["navigate"] != nil {
		t.Fatalf("handoff to an isolated origin: %d %v, want a code", status, out)
	}
	if s, o := apiCall(t, g, "127.0.0.1", isolated.URL+"/.glovebox/api/claim", map[string]any{"code": code}); s != 404 || o["error"] != "no_tab" {
		t.Errorf("claim on another isolated origin than the code's: %d %v, want no_tab", s, o)
	}
	// On the allowed origin the API is not Glovebox's: the site answers.
	s, o, raw := apiRequest(t, g, allowed.URL+"/.glovebox/api/claim", map[string]string{"Content-Type": "application/json"}, map[string]any{"code": code})
	if s != 404 || o["token"] != nil || len(allowedHits) != 1 || allowedHits[0] != "POST /.glovebox/api/claim" {
		t.Errorf("claim on the allowed origin: %d %q, site saw %v: want the site's own 404", s, raw, allowedHits)
	}
	if s, o := apiCall(t, g, "127.0.0.1", other.URL+"/.glovebox/api/claim", map[string]any{"code": code}); s != 200 || o["tab"] != tab {
		t.Errorf("claim on the code's origin: %d %v", s, o)
	}

	// To an allowed origin: no code, the browser is sent there plainly,
	// and the tab ends.
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/handoff", map[string]any{"url": allowed.URL + "/page?q=1"})
	if status != 200 || out["code"] != nil || out["navigate"] != allowed.URL+"/page?q=1" {
		t.Fatalf("handoff to an allowed origin: %d %v, want navigate and no code", status, out)
	}
	waitFor(t, 30*time.Second, "the tab to end", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "tab_end" && e["tab"] == tab {
				return strings.HasPrefix(fmt.Sprint(e["reason"]), "left isolation"), fmt.Sprint(e)
			}
		}
		return false, "no tab_end"
	})

	// Creating a tab from an allowed origin's page: not Glovebox's API.
	allowedHits = nil
	s, _, _ = apiRequest(t, g, allowed.URL+"/.glovebox/api/tabs", map[string]string{"Content-Type": "application/json"}, map[string]any{"url": allowed.URL + "/"})
	if s != 404 || len(allowedHits) != 1 {
		t.Errorf("tab request on the allowed origin: %d, site saw %v", s, allowedHits)
	}
}

// TestForgedTabRequests: a page on one site cannot open tabs in the user's
// name: not with a text/plain body (no CORS preflight), not with another
// site's Origin or Sec-Fetch-Site, not for a URL on another host; and one
// client's tabs are bounded by tabs.max_per_user and a creation rate.
func TestForgedTabRequests(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	other := newTestSite(t)
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Tabs.MaxPerUser = 2
		c.Proxy.Tabs.CreatePerMinute = 1
	})
	api := site.URL + "/.glovebox/api/tabs"
	good := map[string]any{"url": site.URL + "/", "width": 800, "height": 600}
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		body   any
		status int
		code   string
	}{
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, good, 415, "bad_request"},
		{"no content type", map[string]string{}, good, 415, "bad_request"},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, good, 415, "bad_request"},
		{"cross-site origin", map[string]string{"Content-Type": "application/json", "Origin": other.URL}, good, 403, "cross_origin"},
		{"null origin", map[string]string{"Content-Type": "application/json", "Origin": "null"}, good, 403, "cross_origin"},
		{"cross-site fetch", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, good, 403, "cross_origin"},
		{"same-site fetch", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, good, 403, "cross_origin"},
		{"URL on another host", map[string]string{"Content-Type": "application/json"}, map[string]any{"url": other.URL + "/"}, 403, "wrong_origin"},
	} {
		s, o, raw := apiRequest(t, g, api, tc.hdr, tc.body)
		if s != tc.status || o["error"] != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, s, raw, tc.status, tc.code)
		}
	}
	if n := len(g.srv.TabList()); n != 0 {
		t.Fatalf("%d tabs were opened by forged requests", n)
	}

	// The landing page's own request: same origin, JSON.
	same := map[string]string{"Content-Type": "application/json", "Origin": site.URL, "Sec-Fetch-Site": "same-origin"}
	for i := range 2 {
		if s, _, raw := apiRequest(t, g, api, same, good); s != 201 {
			t.Fatalf("tab %d from the landing page: %d %s", i+1, s, raw)
		}
	}
	// A third is past max_per_user for this client.
	if s, o, raw := apiRequest(t, g, api, same, good); s != 429 || o["error"] != "too_many_tabs" {
		t.Errorf("third tab of one client: %d %s, want 429 too_many_tabs", s, raw)
	}
	// Another client (another address) is not held back by the first.
	if s, o := apiCall(t, g, "127.0.0.2", api, good); s != 201 {
		t.Errorf("another client's first tab: %d %v", s, o)
	}
	if s, o := apiCall(t, g, "127.0.0.2", api, good); s != 201 {
		t.Errorf("another client's second tab (within the burst): %d %v", s, o)
	}
	// Its third: within max_per_user once a tab has closed, but past the
	// rate (1 a minute after a burst of 2).
	for _, tm := range g.srv.TabList() {
		if tm.ClientIP == "127.0.0.2" {
			g.srv.EndTab(tm.Tab, "test")
			break
		}
	}
	waitFor(t, 30*time.Second, "a tab of 127.0.0.2 to end", func() (bool, string) {
		n := 0
		for _, tm := range g.srv.TabList() {
			if tm.ClientIP == "127.0.0.2" {
				n++
			}
		}
		return n == 1, fmt.Sprint(n)
	})
	if s, o := apiCall(t, g, "127.0.0.2", api, good); s != 429 || o["error"] != "rate_limited" {
		t.Errorf("a tab past the creation rate: %d %v, want 429 rate_limited", s, o)
	}
}

// TestNavigationToAllowedSite: when the remote page goes to a site that
// policy allows, the user's browser goes there itself, with no hand-over
// code in its URL for that site to read, and the isolated tab ends.
func TestNavigationToAllowedSite(t *testing.T) {
	needChromium(t)
	allowed := newTestSite(t)
	leaving := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<title>leaving</title><script>addEventListener('load', () => location.href = %q)</script>`, allowed.URL+"/next")
	}))
	defer leaving.Close()
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Policy.Rules = []policy.Rule{portRule(t, "allowed", allowed.URL, policy.ActionAllow)}
	})
	bctx := userBrowser(t, g.addr)
	if err := chromedp.Do(bctx, chromedp.Navigate(leaving.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the user's browser at the allowed site itself", func() (bool, string) {
		loc, _ := chromedp.Run(bctx, chromedp.Evaluate[string]("location.href"))
		body, _ := chromedp.Run(bctx, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
		// The allowed site's own page, marker and all: not a landing page.
		return loc == allowed.URL+"/next" && strings.Contains(body, allowed.marker), loc
	})
	waitFor(t, 30*time.Second, "the isolated tab to end", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "tab_end" && strings.HasPrefix(fmt.Sprint(e["reason"]), "left isolation") {
				return true, ""
			}
		}
		return false, g.audit.String()
	})
	for _, e := range g.audit.events() {
		if u := fmt.Sprint(e["url"]); strings.Contains(u, "glovebox-handoff") {
			t.Errorf("a hand-over code went to %s", u)
		}
	}
}
