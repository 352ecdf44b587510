package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/isolate/netns"
)

// soakFigures is what a soak watches: this process's (Glovebox runs in the
// test's process, through serve), and what Glovebox made on the host.
type soakFigures struct {
	rssKiB, heapKiB int64 // VmRSS after debug.FreeOSMemory; live heap after that GC
	goroutines, fds int
	containers      int // containerd's containers in Glovebox's namespace
	tasks           int // and their tasks
	procs           int // processes in Glovebox's cgroups
	veths           int // host ends (gbh*)
	nftRules        int // rules in the inet glovebox table
	nftElems        int // elements of its egress set: one per container link
	cgroups         int // directories under <controller>/glovebox/, all controllers
}

func (f soakFigures) String() string {
	return fmt.Sprintf("rss %d MiB, heap %.1f MiB, goroutines %d, fds %d, containers %d, tasks %d, procs %d, veths %d, nft rules %d, nft elements %d, cgroups %d",
		f.rssKiB>>10, float64(f.heapKiB)/1024, f.goroutines, f.fds, f.containers, f.tasks, f.procs, f.veths, f.nftRules, f.nftElems, f.cgroups)
}

// host is the part of f that must come back exactly.
func (f soakFigures) host() [7]int {
	return [7]int{f.containers, f.tasks, f.procs, f.veths, f.nftRules, f.nftElems, f.cgroups}
}

// Tolerances of the soak, against the figures after the warm-up.
const (
	// soakGoroutineSlack: none. Every connection the soak makes is closed
	// (apiCall closes its idle ones, the test site keeps none alive, the
	// peers are closed), the pool is full and idle at both measurements,
	// so the same goroutines remain (27 between every two tabs, measured);
	// the settle waits for the closing ones to finish.
	soakGoroutineSlack = 0
	// soakFDSlack: two. Between tabs, with every other figure unchanged,
	// the count was seen at 30, 32 and 34: one loopback connection, both
	// of whose ends are in this process, open now and then. A tab's
	// descriptors left behind (its peer's sockets, its DevTools and egress
	// connections) are more than two per tab.
	soakFDSlack = 2
	// soakHeapSlackKiB bounds the live heap's growth: what the test site
	// keeps of its reports (a few dozen bytes a tab) and the caches that
	// fill on first use in any path the warm-up did not take. A leak of a
	// tab's state (its peer, encoder buffers, audit or DevTools objects:
	// hundreds of KiB each) over the soak's tabs is well past it.
	soakHeapSlackKiB = 8 << 10
	// soakRSSSlackKiB bounds RSS growth over the loop's second half. RSS
	// is mostly not Go's heap: over the first 10 to 15 tabs it rises by
	// about 120 MiB (measured 122 to 231 MiB without -race) as the C
	// allocator's per-thread arenas of the cgo encoders fill, then stays
	// flat (231 to 242 MiB over tabs 10 to 41), and -race adds its
	// detector's memory, which is not given back either. So RSS is
	// compared with its value half-way through the loop, not after the
	// warm-up; a tab's encoder left behind (MiBs of frame buffers) over
	// the second half's tabs is past the bound. Under -race RSS still
	// climbs in the second half of make test's 60 s (half-way to end:
	// +7 and +45 MiB in two runs), so the bound is wider there
	// (soakRSSSlackRaceKiB).
	soakRSSSlackKiB     = 48 << 10
	soakRSSSlackRaceKiB = 128 << 10
)

// soakDuration is GLOVEBOX_SOAK (a Go duration), or the short soak of make
// test.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("GLOVEBOX_SOAK")
	if s == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("GLOVEBOX_SOAK=%q: want a duration such as 30m", s)
	}
	return d
}

// TestSoak opens tabs one after another with the containerd runtime and the
// warm pool on, uses each (a click, typing, a navigation, frames at a real
// WebRTC peer) and closes it, for GLOVEBOX_SOAK (60 s by default; make soak
// runs 30 minutes). After the loop, once everything has settled, this
// process's goroutines and file descriptors, and Glovebox's containers,
// tasks, container processes, veths, nftables rules and set elements and
// cgroups are what they were after the warm-up, exactly; the live heap is
// within its bound of the warm-up's, RSS within its bound of the loop's
// half-way figure. A line of figures every
// GLOVEBOX_SOAK_EVERY tabs (10) and at the end, in -v output.
func TestSoak(t *testing.T) {
	d := soakDuration(t)
	every := 10
	if n, err := strconv.Atoi(os.Getenv("GLOVEBOX_SOAK_EVERY")); err == nil && n > 0 {
		every = n
	}
	site := newTestSite(t)
	// Connection: close on every answer of the site: the egress proxy's
	// idle connections to it (up to 16, for 90 s) are a bounded cache, not
	// a leak, and would make the counts drift with timing.
	site.Config.SetKeepAlivesEnabled(false)
	const pool = 1
	g := startContainerdGlovebox(t, site, pool, func(c *Config) {
		c.Proxy.Tabs.ReattachGrace = 500 * time.Millisecond
		c.Log.Level = "warn"
	})
	api := site.URL + "/.glovebox/api"

	tabs := 0
	for range 3 { // warm-up: first-use caches, the pool's first refills
		soakTab(t, g, site, api, tabs)
		tabs++
	}
	base, baseStacks := soakSettle(t, g, pool, nil)
	start := time.Now()
	t.Logf("soak: %v of tabs; baseline after %d warm-up tabs: %v", d, tabs, base)
	var mid soakFigures
	for time.Since(start) < d {
		soakTab(t, g, site, api, tabs)
		tabs++
		if (tabs-3)%every == 0 {
			t.Logf("soak: %v elapsed, %d tabs: %v", time.Since(start).Round(time.Second), tabs-3, soakMeasure(t, g))
		}
		if mid.rssKiB == 0 && time.Since(start) >= d/2 {
			mid, _ = soakSettle(t, g, pool, &base)
			t.Logf("soak: half-way, %d tabs: %v", tabs-3, mid)
		}
	}
	loop := time.Since(start)
	end, _ := soakSettle(t, g, pool, &base)
	st := g.pool.Stats()
	t.Logf("soak: done, %d tabs in %v (pool: %d warm claims, %d cold starts); after settling: %v",
		tabs-3, loop.Round(time.Second), st.Claims, st.Misses, end)
	if end.goroutines > base.goroutines+soakGoroutineSlack {
		t.Errorf("goroutines %d after %d tabs, %d at the baseline; grown:\n%s", end.goroutines, tabs-3, base.goroutines, grownStacks(baseStacks, goroutineStacks()))
	}
	if end.fds > base.fds+soakFDSlack {
		t.Errorf("file descriptors %d after %d tabs, %d at the baseline: %s", end.fds, tabs-3, base.fds, openFDs())
	}
	if end.host() != base.host() {
		t.Errorf("host state after the soak differs from the baseline:\n  base %v\n  end  %v", base, end)
	}
	if end.heapKiB > base.heapKiB+soakHeapSlackKiB {
		t.Errorf("live heap %d KiB after %d tabs, %d KiB at the baseline (bound +%d KiB)", end.heapKiB, tabs-3, base.heapKiB, soakHeapSlackKiB)
	}
	rssSlack := int64(soakRSSSlackKiB)
	if raceDetector {
		rssSlack = soakRSSSlackRaceKiB
	}
	if end.rssKiB > mid.rssKiB+rssSlack {
		t.Errorf("RSS %d KiB after %d tabs, %d KiB half-way (bound +%d KiB)", end.rssKiB, tabs-3, mid.rssKiB, rssSlack)
	}
	if st.Claims == 0 {
		t.Errorf("no tab got a warm browser (%+v): the pool was not soaked", st)
	}
}

// soakTab is one user's tab: opened through the API with a pion peer, its
// first frames received, a click on the page, text typed in its field, a
// link followed (the url message and a new frame), then closed by the peer
// and ended as closed by the user.
func soakTab(t *testing.T, g *glovebox, site *testSite, api string, n int) {
	t.Helper()
	// The audit and log buffers would hold every tab's lines: each tab
	// reads only its own.
	g.audit.reset()
	g.logs.reset()
	var closers []func()
	defer func() {
		for _, f := range closers {
			f()
		}
	}()
	loaded, clicks, focus, nexts := site.servedCount("/app.js"), site.reportCount("click"), site.reportCount("focus"), site.servedCount("/next")
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("tab %d: create: %d %v", n, status, out)
	}
	tab, _ := out["tab"].(string)
	c := dialPionClient(t, g, api, out["token"].(string), func(f func()) { closers = append(closers, f) })
	waitFor(t, 60*time.Second, "the page and its first frame", func() (bool, string) {
		return site.servedCount("/app.js") > loaded && c.frames.Load() > 0, fmt.Sprintf("frames %d", c.frames.Load())
	})
	click := func(x, y int) {
		c.sendJSON(t, map[string]any{"t": "mouse", "type": "down", "x": x, "y": y, "button": "left", "buttons": 1, "clicks": 1})
		c.sendJSON(t, map[string]any{"t": "mouse", "type": "up", "x": x, "y": y, "button": "left", "buttons": 0, "clicks": 1})
	}
	// The first frame can come before the page's script has run: a click
	// is sent again each second until the page reports it.
	clickUntil := func(x, y int, what string, done func() bool) {
		last := time.Time{}
		waitFor(t, 20*time.Second, what, func() (bool, string) {
			if done() {
				return true, ""
			}
			if time.Since(last) > time.Second {
				click(x, y)
				last = time.Now()
			}
			return false, ""
		})
	}
	clickUntil(600, 400, "the page's click handler", func() bool { return site.reportCount("click") > clicks })
	clickUntil(100, 140, "the field's focus", func() bool { return site.reportCount("focus") > focus })
	text := fmt.Sprintf("soak %d", n)
	c.sendJSON(t, map[string]any{"t": "text", "text": text})
	waitFor(t, 20*time.Second, "the typed text in the remote field", func() (bool, string) {
		got := site.lastReport("input")
		return got == text, got
	})
	framesBefore := c.frames.Load()
	click(100, 50) // the link to /next
	waitFor(t, 20*time.Second, "the navigation: url message and a new frame", func() (bool, string) {
		return site.servedCount("/next") > nexts && c.sawURL(site.URL+"/next") && c.frames.Load() > framesBefore, fmt.Sprintf("frames %d", c.frames.Load())
	})
	c.pc.Close()
	waitFor(t, 30*time.Second, "the tab to end", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "tab_end" && e["tab"] == tab {
				return e["reason"] == "closed by user" && g.srv.Tabs() == 0, fmt.Sprint(e["reason"])
			}
		}
		return false, fmt.Sprintf("no tab_end, %d tabs", g.srv.Tabs())
	})
}

// sawURL reports whether Glovebox told the peer the remote page is at u.
func (c *pionClient) sawURL(u string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m["t"] == "url" && m["url"] == u {
			return true
		}
	}
	return false
}

// soakSettle waits until no tab is open, the pool is full and starting
// nothing, and Glovebox's host state is one warm container's; then, against
// base when given, until goroutines and descriptors are back within the
// slack (a closed peer's or connection's goroutines end a moment after the
// close). It returns the figures and the goroutine stacks then.
func soakSettle(t *testing.T, g *glovebox, pool int, base *soakFigures) (soakFigures, map[string]int) {
	t.Helper()
	var f soakFigures
	waitFor(t, 60*time.Second, "Glovebox to settle", func() (bool, string) {
		s := g.pool.Stats()
		if g.srv.Tabs() != 0 || s.Ready != pool || s.Starting != 0 {
			return false, fmt.Sprintf("tabs %d, pool %+v", g.srv.Tabs(), s)
		}
		f = soakMeasure(t, g)
		if f.containers != pool || f.tasks != pool || f.veths != pool || f.nftElems != pool {
			return false, f.String()
		}
		if base != nil && (f.goroutines > base.goroutines+soakGoroutineSlack || f.fds > base.fds+soakFDSlack || f.host() != base.host()) {
			return false, f.String()
		}
		return true, ""
	})
	return f, goroutineStacks()
}

// soakMeasure takes the figures. Goroutines and descriptors first, before
// the commands it runs add their own.
func soakMeasure(t *testing.T, g *glovebox) soakFigures {
	t.Helper()
	var f soakFigures
	f.goroutines = runtime.NumGoroutine()
	fds, _ := os.ReadDir("/proc/self/fd")
	f.fds = len(fds) - 1 // less the one ReadDir had open
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f.heapKiB = int64(ms.HeapAlloc >> 10)
	f.rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(procStatus(os.Getpid())["VmRSS"], " kB"), 10, 64)
	f.containers = ctrCount(t, g, "containers")
	f.tasks = ctrCount(t, g, "tasks")
	f.procs = len(containerPIDs())
	f.veths = len(ourVeths())
	f.nftRules, f.nftElems = nftCounts(t)
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/glovebox/*")
	for _, cg := range cgs {
		if fi, err := os.Stat(cg); err == nil && fi.IsDir() {
			f.cgroups++
		}
	}
	return f
}

// ctrCount counts the managed containerd's containers or tasks in the
// namespace Glovebox uses, with ctr (Debian's containerd ships it).
func ctrCount(t *testing.T, g *glovebox, what string) int {
	t.Helper()
	out, err := exec.Command("ctr", "--address", filepath.Join(g.dataDir, "daemon", "containerd.sock"),
		"--namespace", "glovebox-test", what, "ls", "-q").Output()
	if err != nil {
		t.Fatalf("ctr %s ls: %v", what, err)
	}
	return len(strings.Fields(string(out)))
}

// nftCounts counts the rules of Glovebox's nftables table and the elements
// of its egress set (the table itself is there while Glovebox runs).
func nftCounts(t *testing.T) (rules, elems int) {
	t.Helper()
	out, err := exec.Command("nft", "-j", "list", "table", "inet", netns.TableName).Output()
	if err != nil {
		t.Fatalf("nft list table inet %s: %v", netns.TableName, err)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	for _, o := range doc.Nftables {
		if _, ok := o["rule"]; ok {
			rules++
		}
		if raw, ok := o["set"]; ok {
			var set struct {
				Elem []json.RawMessage `json:"elem"`
			}
			json.Unmarshal(raw, &set)
			elems += len(set.Elem)
		}
	}
	return rules, elems
}

// goroutineStacks counts this process's goroutines by stack.
func goroutineStacks() map[string]int {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	out := map[string]int{}
	// debug=1: "N @ addrs" then the stack, records separated by a blank line.
	for _, rec := range strings.Split(b.String(), "\n\n") {
		head, stack, ok := strings.Cut(rec, "\n")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.Fields(head)[0])
		out[stack] += n
	}
	return out
}

// grownStacks lists the stacks with more goroutines now than then.
func grownStacks(then, now map[string]int) string {
	var b strings.Builder
	for stack, n := range now {
		if n > then[stack] {
			fmt.Fprintf(&b, "+%d:\n%s\n", n-then[stack], stack)
		}
	}
	return b.String()
}

// openFDs names what this process's descriptors point at.
func openFDs() string {
	fds, _ := os.ReadDir("/proc/self/fd")
	kinds := map[string]int{}
	for _, fd := range fds {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if i := strings.IndexByte(l, ':'); i > 0 && !strings.HasPrefix(l, "/") {
			l = l[:i] // socket:[n], pipe:[n], anon_inode:...
		}
		kinds[l]++
	}
	return fmt.Sprint(kinds)
}
