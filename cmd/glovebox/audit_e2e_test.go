package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/proxy/auth"
)

// TestAuditStory is what the SOC reads of one browsing session. First an
// idle Glovebox with a warm browser writes no audit event for 30 s (its
// browser makes no request of its own: the untabbed count stays 0). Then
// alice, signed in to the proxy in a real Chromium, opens an isolated
// page, follows a link in it and closes her tab: every event from the
// navigation to tab_end carries her tab's id and her name; the landing
// page's proxy_request names the tab it opened and tab_start that request;
// the tab's own browser requests and its navigations are among them.
func TestAuditStory(t *testing.T) {
	site := newTestSite(t)
	pw := makeHtpasswd(t, map[string]string{"alice": "alice's secret"})
	var admin string
	g := startContainerdGlovebox(t, site, 1, func(c *Config) {
		c.Proxy.Auth.Mode = auth.ModeBasic
		c.Proxy.Auth.Htpasswd = pw
		admin = adminURL(t, c)
	})
	waitFor(t, 120*time.Second, "a warm browser", func() (bool, string) {
		st := g.pool.Stats()
		return st.Ready >= 1, fmt.Sprintf("%+v", st)
	})
	before := len(g.audit.events())
	// The observation window of an idle Glovebox: nothing marks that
	// nothing happens but its end.
	time.Sleep(30 * time.Second)
	if evs := g.audit.events()[before:]; len(evs) != 0 {
		t.Errorf("an idle Glovebox wrote %d audit events in 30 s: %v", len(evs), evs)
	}
	if _, m := getBody(t, admin+"/metrics", ""); strings.Contains(m, "glovebox_egress_untabbed_total{") {
		t.Errorf("the warm browser made requests of its own:\n%s", grepLines(m, "untabbed"))
	}

	bctx := userBrowser(t, g.addr)
	tctx := signedIn(t, bctx, "alice", "alice's secret", nil, nil)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitForColour(t, tctx, 600, 400, green, 120*time.Second)
	// The page's link (yellow, top left) to /next, which is blue.
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(100, 50)); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 600, 400, blue, 60*time.Second)
	var tabID string
	for _, e := range g.audit.events() {
		if e["event"] == "tab_start" && e["user"] == "alice" {
			tabID, _ = e["tab"].(string)
		}
	}
	if tabID == "" {
		t.Fatal("no tab_start of alice")
	}
	chromedp.Cancel(tctx) // alice closes her tab: it ends after reattach_grace
	var story []map[string]any
	waitFor(t, 60*time.Second, "tab_end", func() (bool, string) {
		story = nil
		for _, e := range g.audit.events() {
			if e["tab"] == tabID {
				story = append(story, e)
			}
		}
		return len(story) > 0 && story[len(story)-1]["event"] == "tab_end", fmt.Sprint(len(story), " events")
	})

	count := map[string]int{}
	var nav, start map[string]any
	for _, e := range story {
		count[e["event"].(string)]++
		if e["user"] != "alice" {
			t.Errorf("an event of alice's tab names user %q: %v", e["user"], e)
		}
		switch e["event"] {
		case "proxy_request":
			nav = e
		case "tab_start":
			start = e
		case "tab_navigate":
			t.Logf("tab_navigate %v %v %q", e["how"], e["url"], e["title"])
		}
	}
	if nav == nil || nav["url"] != site.URL+"/" || nav["action"] != "isolate" || nav["status"] != 200.0 {
		t.Errorf("the navigation's proxy_request does not name the tab: %v", nav)
	}
	if start == nil || nav == nil || start["request_id"] != nav["request_id"] || start["request_id"] == "" {
		t.Errorf("tab_start's request_id %v, the navigation's %v", start["request_id"], nav["request_id"])
	}
	if count["egress_request"] < 2 {
		t.Errorf("%d egress_request events of the tab's browser, want its page and style at least", count["egress_request"])
	}
	var navs []string
	for _, e := range story {
		if e["event"] == "tab_navigate" {
			navs = append(navs, fmt.Sprintf("%v %v %v", e["how"], e["url"], e["title"]))
		}
	}
	if want := []string{"typed " + site.URL + "/ Glovebox Test Page", "link " + site.URL + "/next Next Page"}; strings.Join(navs, "|") != strings.Join(want, "|") {
		t.Errorf("tab_navigate events:\n%s\nwant\n%s", strings.Join(navs, "\n"), strings.Join(want, "\n"))
	}
	if first := story[0]["event"]; first != "proxy_request" {
		t.Errorf("the story starts with %v, want the navigation's proxy_request", first)
	}
	t.Logf("alice's tab %s: %v", tabID, count)
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
