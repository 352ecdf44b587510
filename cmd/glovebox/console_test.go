package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/console"
)

// TestConsole is issue 13's console in real Chromiums: alice browses an
// isolated site; an administrator signs in to the console on the admin
// address, sees alice's tab (her name, the page), ends it, and alice's
// landing page says an administrator ended it; the console shows the
// tab's events, and plays a recording. Without credentials the console's
// API says 401, and the users' proxy port does not serve it at all.
func TestConsole(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	pw := makeHtpasswd(t, map[string]string{"alice": "alice's secret"})
	hash, err := bcrypt.GenerateFromPassword([]byte("root's secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	recDir := t.TempDir()
	sample, err := os.ReadFile(filepath.Join("..", "..", "testdata", "recordings", "sample.webm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recDir, "alice-t1.webm"), sample, 0o644); err != nil {
		t.Fatal(err)
	}
	var admin string
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Auth.Mode = auth.ModeBasic
		c.Proxy.Auth.Htpasswd = pw
		admin = adminURL(t, c)
		c.Admin.Console.Users = []console.User{{Name: "root", PasswordHash: string(hash)}}
		c.Recording.Dir = recDir
	})

	// No credentials: 401 from the console's API, on the admin address.
	for _, p := range []string{"/console/api/tabs", "/console/api/events", "/console/recordings/alice-t1.webm"} {
		if code, _ := getBody(t, admin+p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s%s without credentials: %d, want 401", admin, p, code)
		}
	}
	// The users' proxy port has no console: not asked directly, not asked
	// through the proxy of itself (as /healthz is), whoever asks.
	for _, p := range []string{"/console/", "/console/login", "/console/api/tabs", "/console/static/console.js"} {
		if code, body := getBody(t, "http://"+g.addr+p, ""); code != http.StatusNotFound || strings.Contains(body, "console") {
			t.Errorf("proxy port GET %s: %d %q, want its 404", p, code, body)
		}
		req, _ := http.NewRequest("GET", "http://"+g.addr+p, nil)
		req.SetBasicAuth("alice", "alice's secret")
		pu, _ := url.Parse("http://" + g.addr)
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("proxy port, through itself, GET %s: %d, want 404", p, resp.StatusCode)
		}
	}

	// Alice opens an isolated tab.
	ubctx := userBrowser(t, g.addr)
	var challenges atomic.Int32
	uctx := signedIn(t, ubctx, "alice", "alice's secret", &challenges, nil)
	if err := chromedp.Do(uctx, chromedp.Navigate(site.URL+"/")); err != nil {
		t.Fatalf("navigate alice's browser: %v", err)
	}
	waitForColour(t, uctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
	tabs := g.srv.TabList()
	if len(tabs) != 1 || tabs[0].User != "alice" {
		t.Fatalf("tabs: %+v", tabs)
	}
	tabID := tabs[0].Tab

	// The administrator's browser reaches the admin address directly.
	actx := userBrowser(t, "", chromedp.Flag("proxy-server", false), chromedp.Flag("proxy-bypass-list", false),
		chromedp.WindowSize(1400, 1000))
	if err := chromedp.Do(actx, chromedp.Navigate(admin+"/console/")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(actx, chromedp.WaitVisible("#name")); err != nil {
		t.Fatal(err)
	}
	loc, _ := chromedp.Run(actx, chromedp.Location())
	if loc != admin+"/console/login" {
		t.Errorf("the console without a session is at %s, want the sign-in", loc)
	}
	// A wrong password first.
	signIn := func(pass string) {
		t.Helper()
		if err := chromedp.Do(actx, chromedp.SetValue("#name", "root"), chromedp.SetValue("#password", pass),
			chromedp.Click("#sign-in"), chromedp.WaitReady("body")); err != nil {
			t.Fatal(err)
		}
	}
	signIn("guess")
	waitFor(t, 10*time.Second, "the sign-in to refuse a wrong password", func() (bool, string) {
		msg, _ := chromedp.Run(actx, chromedp.Evaluate[string](`(document.querySelector('#message')||{}).textContent||''`))
		return strings.Contains(msg, "Wrong name or password"), msg
	})
	signIn("root's secret")

	// Alice's tab in the list: her name, the page, its media.
	var row string
	waitFor(t, 20*time.Second, "alice's tab in the console", func() (bool, string) {
		row, _ = chromedp.Run(actx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#tabs tbody tr')).map(r => r.innerText).join('\n')`))
		return strings.Contains(row, tabID) && strings.Contains(row, "alice") && strings.Contains(row, site.URL+"/") &&
			strings.Contains(row, "Glovebox Test Page") && strings.Contains(row, "vp8"), row
	})
	t.Logf("console row: %s", row)
	screenshot(t, actx, "/tmp/console-tabs.png")

	// Shadow it: the console's view-only video shows what alice sees, and
	// her landing page says an administrator is viewing (shadow_notice is
	// on by default); stopping takes the notice away.
	badge := func() bool {
		shown, _ := chromedp.Run(uctx, chromedp.Evaluate[bool](`(() => { const b = document.getElementById('glovebox-viewed'); return !!b && !b.hidden; })()`))
		return shown
	}
	if badge() {
		t.Error("alice's page says she is viewed before anyone is")
	}
	shadowButton := fmt.Sprintf(`#tabs button.shadow[data-tab=%q]`, tabID)
	if err := chromedp.Do(actx, chromedp.Click(shadowButton)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the shadow video to show alice's page", func() (bool, string) {
		// Three quarters across and down, of the console's window (1400x1000)
		// and of alice's: green on both.
		sp, ok, _ := elementPixel(actx, "#shadow-video", 1050, 750)
		up, uok, _ := videoPixel(uctx, 600, 343)
		return ok && uok && sp.near(green, 40) && sp.near(up, 20), fmt.Sprintf("shadow %v, alice %v", sp, up)
	})
	waitFor(t, 10*time.Second, "alice's page to say she is viewed", func() (bool, string) { return badge(), "" })
	screenshot(t, actx, "/tmp/console-shadow.png")
	saveShot(t, uctx, "console-shadowed-user")
	if err := chromedp.Do(actx, chromedp.Click("#shadow-stop")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "alice's notice to go with the viewer", func() (bool, string) { return !badge(), "" })

	// End it (two clicks: the button asks first).
	endButton := fmt.Sprintf(`#tabs button.danger[data-tab=%q]`, tabID)
	if err := chromedp.Do(actx, chromedp.Click(endButton), chromedp.WaitVisible(endButton+".confirm"), chromedp.Click(endButton)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "alice's landing page to say an administrator ended the tab", func() (bool, string) {
		text, _ := chromedp.Run(uctx, chromedp.Evaluate[string](`document.body.innerText`))
		return strings.Contains(text, "An administrator ended this isolated tab"), text
	})
	waitFor(t, 30*time.Second, "the tab to be gone", func() (bool, string) {
		return g.srv.Tabs() == 0, fmt.Sprint(g.srv.Tabs())
	})

	// The tab's events, filtered by its id, in the console.
	if err := chromedp.Do(actx, chromedp.SetValue(`#event-filter input[name="tab"]`, tabID), chromedp.Click(`#event-filter button[type="submit"]`)); err != nil {
		t.Fatal(err)
	}
	var events string
	waitFor(t, 20*time.Second, "the tab's events in the console", func() (bool, string) {
		events, _ = chromedp.Run(actx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#events tbody tr')).map(r => r.innerText).join('\n')`))
		return strings.Contains(events, "tab_start") && strings.Contains(events, "tab_end") &&
			strings.Contains(events, "reason=ended by an administrator") && strings.Contains(events, "end_tab"), events
	})
	if strings.Contains(events, "proxy_request\talice") && !strings.Contains(events, tabID) {
		t.Errorf("the filter let other tabs' events through:\n%s", events)
	}

	// A recording plays.
	if err := chromedp.Do(actx, chromedp.WaitVisible(`#recordings tbody button`), chromedp.Click(`#recordings tbody button`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the recording to play in the console", func() (bool, string) {
		w, _ := chromedp.Run(actx, chromedp.Evaluate[int](`document.querySelector('#video').readyState >= 2 ? document.querySelector('#video').videoWidth : 0`))
		return w == 64, fmt.Sprint("videoWidth ", w)
	})
	screenshot(t, actx, "/tmp/console-events.png")

	// Each action is an audit event naming root.
	seen := map[string]bool{}
	for _, e := range g.audit.events() {
		if e["event"] != "admin_action" {
			continue
		}
		if e["admin"] != "root" && !(e["action"] == "sign_in" && e["status"] == 401.0) {
			t.Errorf("admin_action not naming root: %v", e)
		}
		seen[fmt.Sprint(e["action"], " ", e["status"])] = true
		if (e["action"] == "end_tab" || e["action"] == "shadow") && (e["tab"] != tabID || e["target"] != "alice") {
			t.Errorf("end_tab event: %v", e)
		}
		if e["action"] == "play_recording" && e["target"] != "alice-t1.webm" {
			t.Errorf("play_recording event: %v", e)
		}
	}
	for _, want := range []string{"sign_in 401", "sign_in 200", "view_console 200", "list_tabs 200", "shadow 200", "shadow_end 200", "end_tab 200", "list_events 200", "play_recording 200"} {
		if !seen[want] {
			t.Errorf("no admin_action %s; saw %v", want, seen)
		}
	}
	var end map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "tab_end" && e["tab"] == tabID {
			end = e
		}
	}
	if end == nil || end["reason"] != "ended by an administrator" {
		t.Errorf("tab_end: %v", end)
	}
	if strings.Contains(g.logs.String(), "root's secret") || strings.Contains(g.audit.String(), "root's secret") {
		t.Error("the administrator's password is in a log")
	}
}

// screenshot saves the page of ctx as a PNG at path, for people to look at.
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the console: %s", path)
}
