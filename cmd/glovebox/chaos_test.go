package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chaos: tests that knock Glovebox over on purpose (issue 15). Others live
// beside what they break: TestContainerFailures and TestCrashRecovery
// (containerd_test.go), TestContainerdHealthzDaemonRestart and
// TestHealthzAuditDiskFull (health_test.go).

// chaosTab opens a tab on the site's path through the API with a pion
// client as its viewer, and returns the tab's id and the client.
func chaosTab(t *testing.T, g *glovebox, site *testSite, path string) (string, *pionClient) {
	t.Helper()
	return chaosTabSized(t, g, site, path, 800, 600)
}

// chaosTabSized is chaosTab with a viewport of w×h.
func chaosTabSized(t *testing.T, g *glovebox, site *testSite, path string, w, h int) (string, *pionClient) {
	t.Helper()
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + path, "width": w, "height": h})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	return out["tab"].(string), newPionClient(t, g, api, out["token"].(string))
}

// last returns the last message of type typ the client received, or nil.
func (c *pionClient) last(typ string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i]["t"] == typ {
			return c.msgs[i]
		}
	}
	return nil
}

// tabClicks counts the clicks tab's remote page reported (the site's
// app.js reports each click on the page's body), from the egress audit,
// which names the tab of each request.
func tabClicks(g *glovebox, tab string) int {
	n := 0
	for _, e := range g.audit.events() {
		if e["event"] == "egress_request" && e["tab"] == tab && strings.Contains(fmt.Sprint(e["url"]), "/report?event=click") {
			n++
		}
	}
	return n
}

// clickTab clicks the body of tab's remote page (the site's index) through
// its viewer c, and waits for the page to report it: the tab still takes
// input and runs its page. The click is made again every 2 s until then: a
// page whose script the site served may not have run it yet.
func clickTab(t *testing.T, g *glovebox, c *pionClient, tab string) {
	t.Helper()
	before := tabClicks(g, tab)
	var sent time.Time
	waitFor(t, 30*time.Second, "tab "+tab+"'s page to report the click", func() (bool, string) {
		if time.Since(sent) > 2*time.Second {
			c.sendJSON(t, map[string]any{"t": "mouse", "type": "down", "x": 600, "y": 400, "button": "left", "buttons": 1, "clicks": 1})
			c.sendJSON(t, map[string]any{"t": "mouse", "type": "up", "x": 600, "y": 400, "button": "left", "buttons": 0, "clicks": 1})
			sent = time.Now()
		}
		return tabClicks(g, tab) > before, fmt.Sprint(tabClicks(g, tab))
	})
}

// tabEnd is tab's tab_end event, or nil.
func tabEnd(g *glovebox, tab string) map[string]any {
	for _, e := range g.audit.events() {
		if e["event"] == "tab_end" && e["tab"] == tab {
			return e
		}
	}
	return nil
}

// tabBrowser is the id of the browser (container) that serves tab.
func tabBrowser(t *testing.T, g *glovebox, tab string) string {
	t.Helper()
	for _, e := range tabStarts(g) {
		if e["tab"] == tab {
			return fmt.Sprint(e["browser"])
		}
	}
	t.Fatalf("no tab_start for %s", tab)
	return ""
}

// waitEnded waits for c to be told its tab ended, and returns the message.
func waitEnded(t *testing.T, c *pionClient, what string) map[string]any {
	t.Helper()
	waitFor(t, 60*time.Second, what, func() (bool, string) { return c.last("ended") != nil, "" })
	return c.last("ended")
}

// passThrough makes an allowed request through the proxy to origin and
// checks that the origin's own script comes back.
func passThrough(t *testing.T, g *glovebox, origin *testSite) {
	t.Helper()
	resp, err := g.proxied.Get(origin.URL + "/app.js")
	if err != nil {
		t.Fatalf("an allowed request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), origin.marker) {
		t.Fatalf("an allowed request: %s %q", resp.Status, b)
	}
}

// allowOrigin2 allows 127.0.0.2, where the tests' pass-through origin is.
func allowOrigin2(c *Config) {
	c.Proxy.Policy.Rules = append(c.Proxy.Policy.Rules, proxyRule("loopback-2", "127.0.0.2"))
}

// egressElements is what the firewall's egress set holds: one element per
// attached container.
func egressElements(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "set", "inet", "glovebox", "egress").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list set: %v: %s", err, out)
	}
	if _, el, ok := strings.Cut(string(out), "elements = {"); ok {
		return strings.TrimSpace(el)
	}
	return ""
}

// TestChaosContainerdKilled kills the managed containerd with SIGKILL while
// two users' tabs are open and streaming. The proxy serves allowed traffic
// throughout; the tabs' browsers, whose shims outlive the daemon, run on
// (neither user loses a tab, and both still take a click); the supervisor
// starts containerd again and a new tab works; and once the tabs close,
// nothing is left: no container process, veth or firewall element.
func TestChaosContainerdKilled(t *testing.T) {
	site := newTestSite(t)
	origin := newTestSiteAt(t, "127.0.0.2:0")
	var admin string
	g := startContainerdGlovebox(t, site, 0, func(c *Config) {
		allowOrigin2(c)
		admin = adminURL(t, c)
		c.Isolate.Containerd.CPUWeight = 25 // a deployment's: the proxy wins outright
	})
	tabA, a := chaosTab(t, g, site, "/")
	tabB, b := chaosTab(t, g, site, "/")
	waitFor(t, 60*time.Second, "both pages", func() (bool, string) { return site.servedCount("/app.js") >= 2, "" })
	clickTab(t, g, a, tabA)
	clickTab(t, g, b, tabB)
	if v := ourVeths(); len(v) != 2 {
		t.Fatalf("veths with two tabs: %v", v)
	}
	checkBrowsersCPUWeight(t, 25)

	old := daemonPID(t, g.dataDir)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	passThrough(t, g, origin)
	waitHealthz(t, admin+"/healthz", 60*time.Second, "/healthz ok with containerd restarted", func(code int, body string) bool {
		return code == 200
	})
	if pid := daemonPID(t, g.dataDir); pid == old {
		t.Fatalf("containerd %d still runs after SIGKILL", pid)
	}
	passThrough(t, g, origin)
	for _, v := range []struct {
		tab string
		c   *pionClient
	}{{tabA, a}, {tabB, b}} {
		if m := v.c.last("ended"); m != nil {
			t.Errorf("tab %s ended with containerd's restart: %v", v.tab, m)
		}
		clickTab(t, g, v.c, v.tab)
	}

	tabC, c := chaosTab(t, g, site, "/")
	waitFor(t, 60*time.Second, "the new tab's page", func() (bool, string) { return site.servedCount("/app.js") >= 3, "" })
	clickTab(t, g, c, tabC)

	for _, cl := range []*pionClient{a, b, c} {
		cl.pc.Close()
	}
	waitFor(t, 60*time.Second, "the tabs to end and leave nothing behind", func() (bool, string) {
		pids, veths, el := containerPIDs(), ourVeths(), egressElements(t)
		return g.srv.Tabs() == 0 && len(pids) == 0 && len(veths) == 0 && el == "",
			fmt.Sprintf("tabs %d, container processes %v, veths %v, egress set %q", g.srv.Tabs(), pids, veths, el)
	})
	for _, tab := range []string{tabA, tabB, tabC} {
		if e := tabEnd(g, tab); e == nil || e["reason"] != "closed by user" {
			t.Errorf("tab %s's end: %v, want closed by user", tab, e)
		}
	}
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/glovebox/glovebox-*"); len(cgs) > 0 {
		t.Errorf("cgroups left: %v", cgs)
	}
}

// TestChaosBrowserKilled kills one tab's Chromium while two tabs are open:
// only that tab ends; its user's landing page says so and how to get it
// back, and a reload opens a new tab that shows the page; the other tab
// still takes a click.
func TestChaosBrowserKilled(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, nil)
	tabB, b := chaosTab(t, g, site, "/")
	waitFor(t, 60*time.Second, "the other tab's page", func() (bool, string) { return site.servedCount("/app.js") >= 1, "" })

	// The user's tab, in a real landing page.
	bctx := userBrowser(t, g.addr)
	if err := chromedp.Do(bctx, chromedp.Navigate(site.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, bctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
	var tabA string
	for _, e := range tabStarts(g) {
		if e["tab"] != tabB {
			tabA = fmt.Sprint(e["tab"])
		}
	}
	browser := browserProc(containerPIDsOf(tabBrowser(t, g, tabA)))
	if browser == 0 {
		t.Fatal("the user's tab's browser process not found")
	}
	if err := syscallKill(browser); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the landing page to say the tab ended", func() (bool, string) {
		st := landingState(bctx)
		return strings.Contains(st, "This isolated tab has ended (browser ") && strings.Contains(st, "Reload the page to open it again."), st
	})
	waitFor(t, 30*time.Second, "the killed tab's tab_end", func() (bool, string) { return tabEnd(g, tabA) != nil, "" })
	if e := tabEnd(g, tabA); e["reason"] != "browser exited" && e["reason"] != "browser disconnected" {
		t.Errorf("the killed tab's end: %v", e)
	}
	if m := b.last("ended"); m != nil || tabEnd(g, tabB) != nil {
		t.Fatalf("the other tab ended too: %v", m)
	}
	clickTab(t, g, b, tabB)

	// The way back: a reload opens a new remote tab on the page.
	if err := chromedp.Do(bctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, bctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
	if n := len(tabStarts(g)); n != 3 {
		t.Errorf("%d tabs started, want the reload's new one as the third", n)
	}
	if g.srv.Tabs() != 2 {
		t.Errorf("%d tabs open, want the other and the reloaded one", g.srv.Tabs())
	}
}

// TestChaosOutOfMemory: a page that takes memory past memory_mb has its
// renderer killed by the kernel in its container's cgroup. Only its tab
// ends, with the reason "out of memory", and its user is told the page used
// too much memory; the other tab, under the same limit, lives on.
func TestChaosOutOfMemory(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, func(c *Config) { c.Isolate.Containerd.MemoryMB = 256 })
	tabB, b := chaosTab(t, g, site, "/")
	waitFor(t, 60*time.Second, "the other tab's page", func() (bool, string) { return site.servedCount("/app.js") >= 1, "" })
	clickTab(t, g, b, tabB)

	tabA, a := chaosTab(t, g, site, "/memhog")
	waitFor(t, 60*time.Second, "the memory hog's page", func() (bool, string) { return site.servedCount("/memhog") >= 1, "" })
	// The press that starts the allocations (the page may take it before
	// its script has run: press until it reports).
	waitFor(t, 30*time.Second, "the memory hog to start", func() (bool, string) {
		a.sendJSON(t, map[string]any{"t": "mouse", "type": "down", "x": 400, "y": 300, "button": "left", "buttons": 1, "clicks": 1})
		a.sendJSON(t, map[string]any{"t": "mouse", "type": "up", "x": 400, "y": 300, "button": "left", "buttons": 0, "clicks": 1})
		return site.lastReport("hog") == "started" || a.last("ended") != nil, ""
	})
	m := waitEnded(t, a, "the memory hog's tab to end")
	if m["reason"] != "out of memory" || !strings.Contains(fmt.Sprint(m["message"]), "This page used too much memory and was closed.") {
		t.Errorf("the memory hog's user was told %v, want out of memory", m)
	}
	waitFor(t, 30*time.Second, "the memory hog's tab_end", func() (bool, string) { return tabEnd(g, tabA) != nil, "" })
	if e := tabEnd(g, tabA); e["reason"] != "out of memory" {
		t.Errorf("tab_end reason %v, want out of memory", e["reason"])
	}
	if m := b.last("ended"); m != nil || tabEnd(g, tabB) != nil {
		t.Fatalf("the other tab ended too: %v", m)
	}
	clickTab(t, g, b, tabB)
}

// checkBrowsersCPUWeight checks that the cgroup parent of the browsers'
// containers has the weight isolate.containerd.cpu_weight gave it
// (cpu.weight on cgroup v2, cpu.shares at 1024 per 100 on v1).
func checkBrowsersCPUWeight(t *testing.T, weight int) {
	t.Helper()
	f, want := "/sys/fs/cgroup/cpu/glovebox/cpu.shares", strconv.Itoa(weight*1024/100)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		f, want = "/sys/fs/cgroup/glovebox/cpu.weight", strconv.Itoa(weight)
	}
	b, err := os.ReadFile(f)
	if err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("the browsers' CPU weight %s = %q %v, want %s", f, b, err, want)
	}
}
