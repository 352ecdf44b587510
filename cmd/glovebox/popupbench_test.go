package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/coder/websocket"
)

// popupFrameProbe runs in the popup's local tab (see pauseNewTabs, and
// again once attached): on the landing page it keeps
// in window.__popupFrame the wall-clock time (performance.timeOrigin +
// the frame's time) of the first presented video frame whose centre shows
// the popup's orange. A video that has a frame already when the probe
// starts sets window.__popupMissed instead: its first frame went unseen.
const popupFrameProbe = `(() => {
  // Once a document (the document: a landing page of the opener's origin
  // keeps the Window of the tab's first about:blank).
  if (document.__popupProbe) return;
  document.__popupProbe = true;
  const start = () => {
    const v = document.querySelector('video');
    if (!v || !v.requestVideoFrameCallback) return;
    if (v.readyState >= 2) { window.__popupMissed = true; return; }
    const c = document.createElement('canvas');
    c.width = 1; c.height = 1;
    const g = c.getContext('2d', {willReadFrequently: true});
    const onFrame = (now) => {
      g.drawImage(v, v.videoWidth >> 1, v.videoHeight >> 1, 1, 1, 0, 0, 1, 1);
      const d = g.getImageData(0, 0, 1, 1).data;
      if (Math.abs(d[0] - 255) + Math.abs(d[1] - 128) + Math.abs(d[2] - 0) < 60) {
        window.__popupFrame = performance.timeOrigin + now;
        return;
      }
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})()`

// BenchmarkPopupFirstFrame is the time from a remote window.open (the
// opener's click handler, on the remote Chromium's clock) to the first
// frame of the popup's page in the new local tab (requestVideoFrameCallback
// in the user's page, on its clock: both are this machine's wall clock).
// Process runtime, loopback; the median over the popups, and how many of
// them the probe came too late for (not counted in the median; none are
// expected, see pauseNewTabs).
func BenchmarkPopupFirstFrame(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	g := startGlovebox(b, func(c *Config) { c.Proxy.Tabs.CreatePerMinute = 1000 })
	// The profile, to find the browser's debugging port in. Removed after
	// the browser ends (cleanups run last first), when it may still be
	// writing: so not b.TempDir, which fails on that.
	dir, err := os.MkdirTemp("", "glovebox-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	bctx := userBrowser(b, g.addr, chromedp.UserDataDir(dir), remote.WebSocket)
	opener := openOpener(b, bctx, site, "")
	created := pauseNewTabs(b, dir, popupFrameProbe)

	var ms []float64
	missed := 0
	for b.Loop() {
		click(b, opener, openArea)
		var id target.ID
		select {
		case id = <-created:
		case <-time.After(60 * time.Second):
			b.Fatal("no local tab for the popup in 60 s")
		}
		ptab, cancel := chromedp.NewContext(bctx, chromedp.WithTargetID(id))
		// Again: nothing when pauseNewTabs's run took, else at least a
		// clear miss.
		if _, err := chromedp.Run(ptab, chromedp.Evaluate[any](popupFrameProbe)); err != nil {
			b.Fatalf("probe the popup's tab: %v", err)
		}
		type probe struct {
			Frame  float64 `json:"frame"`
			Missed bool    `json:"missed"`
		}
		var p probe
		waitFor(b, 60*time.Second, "the popup's first frame", func() (bool, string) {
			var err error
			p, err = chromedp.Run(ptab, chromedp.Evaluate[probe](`({frame: window.__popupFrame || 0, missed: !!window.__popupMissed})`))
			if err != nil {
				return false, err.Error()
			}
			return p.Frame > 0 || p.Missed, ""
		})
		var opened float64
		waitFor(b, 30*time.Second, "the opener's click time", func() (bool, string) {
			v, err := strconv.ParseFloat(site.lastReport("popups-click"), 64)
			opened = v
			return err == nil && v > 0, site.lastReport("popups-click")
		})
		site.mu.Lock()
		delete(site.reports, "popups-click")
		site.mu.Unlock()
		if p.Missed {
			missed++
		} else {
			ms = append(ms, p.Frame-opened)
		}

		// The popup closes itself on a click: its tab and local tab go.
		click(b, ptab, [2]int{400, 300})
		waitLocalTabGone(b, bctx, ptab)
		cancel()
		waitTabs(b, g, 1)
	}
	b.ReportMetric(median(ms), "ms-popup-first-frame")
	b.ReportMetric(float64(missed), "popups-missed")
	b.ReportMetric(0, "ns/op")
}

// pauseNewTabs runs script in the first http(s) document of every tab the
// user's browser (its profile in dir) opens from now on, as soon as it is
// committed, and sends the tab's id then. Each new tab waits, before its
// first navigation, until its navigations are reported. (A script added
// to each new document would miss it: a landing page of the opener's
// origin keeps the Window of the tab's first about:blank.) It holds a
// DevTools connection of its own, as chromedp cannot answer a target that
// waits on the browser's auto-attach; the browser must have a debugging
// port (remote.WebSocket).
func pauseNewTabs(b *testing.B, dir, script string) <-chan target.ID {
	b.Helper()
	port, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Fields(string(port))
	if len(lines) != 2 {
		b.Fatalf("DevToolsActivePort: %q", port)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+lines[0]+lines[1], nil)
	if err != nil {
		b.Fatal(err)
	}
	ws.SetReadLimit(-1)
	b.Cleanup(func() { ws.CloseNow() })
	var mu sync.Mutex
	id := 0
	send := func(session, method string, params any) error {
		mu.Lock()
		id++
		msg := map[string]any{"id": id, "method": method, "params": params}
		mu.Unlock()
		if session != "" {
			msg["sessionId"] = session
		}
		data, _ := json.Marshal(msg)
		return ws.Write(ctx, websocket.MessageText, data)
	}
	created := make(chan target.ID, 16)
	go func() {
		pages := map[string]target.ID{} // by session, until probed
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Method    string          `json:"method"`
				SessionID string          `json:"sessionId"`
				Params    json.RawMessage `json:"params"`
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			switch m.Method {
			case "Target.attachedToTarget":
				var e target.EventAttachedToTarget
				if json.Unmarshal(m.Params, &e) != nil || !e.WaitingForDebugger {
					continue
				}
				session := string(e.SessionID)
				if e.TargetInfo.Type == "page" {
					pages[session] = e.TargetInfo.TargetID
					// A session runs its commands in order: the tab's
					// navigations are reported from its start.
					send(session, "Page.enable", map[string]any{})
				}
				send(session, "Runtime.runIfWaitingForDebugger", map[string]any{})
			case "Page.frameNavigated":
				var e page.EventFrameNavigated
				id, ok := pages[m.SessionID]
				if !ok || json.Unmarshal(m.Params, &e) != nil || e.Frame.ParentID != "" || !strings.HasPrefix(e.Frame.URL, "http") {
					continue
				}
				// The landing page's document is committed: in with the
				// probe before its scripts are done and long before a frame.
				delete(pages, m.SessionID)
				send(m.SessionID, "Runtime.evaluate", map[string]any{"expression": script})
				select {
				case created <- id:
				default:
				}
			}
		}
	}()
	if err := send("", "Target.setAutoAttach", map[string]any{"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}); err != nil {
		b.Fatal(err)
	}
	return created
}
