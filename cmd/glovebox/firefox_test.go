package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/tab"
)

const firefoxPath = "/usr/bin/firefox-esr"

// driverDir holds the Node.js test driver; make test installs its packages
// (puppeteer-core) into its node_modules with npm ci.
var driverDir = filepath.Join("..", "..", "testdata", "driver")

func needFirefox(t testing.TB) {
	t.Helper()
	needChromium(t)
	if _, err := os.Stat(firefoxPath); err != nil {
		missing(t, "needs Debian's firefox-esr at %s (make test installs it): %v", firefoxPath, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing(t, "needs Node.js for the Firefox driver: %v", err)
	}
	if _, err := os.Stat(filepath.Join(driverDir, "node_modules", "puppeteer-core")); err != nil {
		missing(t, "needs the test driver's packages in %s (make test runs npm ci there): %v", driverDir, err)
	}
}

// firefox is Firefox ESR standing in for the user's browser, with Glovebox
// as its proxy, driven by testdata/driver/firefox.mjs (puppeteer-core over
// WebDriver BiDi).
type firefox struct {
	t     testing.TB
	mu    sync.Mutex
	in    io.WriteCloser
	out   *bufio.Scanner
	cmd   *exec.Cmd
	shots string
}

func userFirefox(t testing.TB, proxyAddr string) *firefox {
	t.Helper()
	cmd := exec.Command("node", "firefox.mjs")
	cmd.Dir = driverDir
	profile := t.TempDir()
	cmd.Env = append(os.Environ(), "GLOVEBOX_PROXY="+proxyAddr, "FIREFOX="+firefoxPath, "PROFILE="+profile)
	cmd.Stderr = &testLogWriter{t: t}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the Firefox driver: %v", err)
	}
	f := &firefox{t: t, in: in, out: bufio.NewScanner(out), cmd: cmd}
	f.out.Buffer(make([]byte, 1<<20), 16<<20)
	t.Cleanup(func() {
		in.Close() // the driver closes Firefox at the end of its input
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if v, err := f.do(map[string]any{"op": "version"}); err != nil {
		t.Fatalf("Firefox did not start: %v", err)
	} else {
		t.Logf("user's browser: %s", v)
	}
	return f
}

// do runs one driver command and returns its value.
func (f *firefox) do(cmd map[string]any) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(cmd)
	if _, err := f.in.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}
	if !f.out.Scan() {
		return nil, fmt.Errorf("driver ended: %v", f.out.Err())
	}
	var a struct {
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(f.out.Bytes(), &a); err != nil {
		return nil, fmt.Errorf("driver answered %q: %w", f.out.Text(), err)
	}
	if !a.OK {
		return nil, fmt.Errorf("%s: %s", cmd["op"], a.Error)
	}
	return a.Value, nil
}

func (f *firefox) must(cmd map[string]any) json.RawMessage {
	f.t.Helper()
	v, err := f.do(cmd)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// eval evaluates the expression js in the page and decodes its value into v.
func (f *firefox) eval(js string, v any) error {
	raw, err := f.do(map[string]any{"op": "eval", "js": js})
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// pixel reads the video's colour at CSS point (x, y), as videoPixel does in
// Chromium.
func (f *firefox) pixel(x, y int) (rgb, bool, error) {
	var res []int
	if err := f.eval(fmt.Sprintf(videoPixelJS, x, y), &res); err != nil {
		return rgb{}, false, err
	}
	if len(res) != 3 {
		return rgb{}, false, nil
	}
	return rgb{res[0], res[1], res[2]}, true, nil
}

func (f *firefox) waitForColour(x, y int, want rgb, d time.Duration) {
	f.t.Helper()
	waitFor(f.t, d, "Firefox: video colour "+want.String(), func() (bool, string) {
		c, ok, err := f.pixel(x, y)
		if err != nil {
			return false, err.Error()
		}
		if !ok {
			var state string
			f.eval(`(() => { const v = document.querySelector('video'); const s = document.getElementById('glovebox-status');
				return 'video readyState ' + (v && v.readyState) + ', status: ' + (s && !s.hidden ? s.textContent : ''); })()`, &state)
			return false, "no video yet: " + state
		}
		return c.near(want, 40), c.String()
	})
}

// TestFirefoxUser is issue 11's Firefox ESR as the user's browser: the
// landing page plays the remote page's video in it, a click and typing reach
// the remote page, a confirm() answered in the landing page's dialog is what
// the remote page gets, and Firefox's picture-in-picture button stays off
// the video, which is the page and not a film.
func TestFirefoxUser(t *testing.T) {
	needFirefox(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	ff := userFirefox(t, g.addr)
	ff.must(map[string]any{"op": "goto", "url": site.URL + "/"})
	ff.waitForColour(600, 400, rgb{0, 160, 0}, 60*time.Second)
	var title string
	waitFor(t, 20*time.Second, "the remote title in Firefox", func() (bool, string) {
		ff.eval(`document.title`, &title)
		return title == "Glovebox Test Page", title
	})

	ff.must(map[string]any{"op": "click", "x": 600, "y": 400})
	ff.waitForColour(600, 400, rgb{200, 0, 0}, 30*time.Second)
	if got := site.lastReport("click"); got != "clicked" {
		t.Errorf("the remote click handler reported %q, want clicked", got)
	}

	ff.must(map[string]any{"op": "click", "x": 100, "y": 140})
	waitFor(t, 30*time.Second, "the remote input to report its focus", func() (bool, string) {
		return site.lastReport("focus") == "field", site.lastReport("focus")
	})
	ff.must(map[string]any{"op": "type", "text": "Hello Glovebox"})
	waitFor(t, 30*time.Second, "text typed in Firefox in the remote input", func() (bool, string) {
		got := site.lastReport("input")
		return got == "Hello Glovebox", got
	})

	var noPiP bool
	if err := ff.eval(`document.querySelector('video').disablePictureInPicture`, &noPiP); err != nil || !noPiP {
		t.Errorf("the landing page's video allows picture-in-picture (%v): Firefox shows its pop-out button over the page", err)
	}
	if dir := os.Getenv("GLOVEBOX_SCREENSHOTS"); dir != "" {
		ff.must(map[string]any{"op": "screenshot", "path": filepath.Join(dir, "firefox-user.png")})
	}

	// A confirm() on a click, answered OK in the landing page's dialog.
	ff.must(map[string]any{"op": "goto", "url": site.URL + "/dialogs?kind=confirm"})
	ff.waitForColour(600, 400, green, 60*time.Second)
	ff.must(map[string]any{"op": "click", "x": 600, "y": 400})
	var text string
	waitFor(t, 30*time.Second, "the remote confirm() in Firefox's landing page", func() (bool, string) {
		ff.eval(`(() => { const d = document.getElementById('glovebox-dialog'); return d && !d.hidden ? document.getElementById('glovebox-dialog-text').textContent : ''; })()`, &text)
		return text == "Proceed with the order?", text
	})
	if dir := os.Getenv("GLOVEBOX_SCREENSHOTS"); dir != "" {
		ff.must(map[string]any{"op": "screenshot", "path": filepath.Join(dir, "firefox-dialog.png")})
	}
	var ok []float64
	if err := ff.eval(`(() => { const r = document.getElementById('glovebox-dialog-ok').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`, &ok); err != nil || len(ok) != 2 {
		t.Fatalf("the dialog's OK button: %v %v", ok, err)
	}
	ff.must(map[string]any{"op": "click", "x": ok[0], "y": ok[1]})
	waitReport(t, site, "confirm", "true")
	ff.waitForColour(600, 400, red, 30*time.Second)
}

// TestFirefoxShadowNotice: with Firefox ESR as the user's browser, an
// administrator's viewer of the tab makes the landing page say that the
// session is being viewed, for as long as it is there; and a tab an
// administrator ends says so.
func TestFirefoxShadowNotice(t *testing.T) {
	needFirefox(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	ff := userFirefox(t, g.addr)
	ff.must(map[string]any{"op": "goto", "url": site.URL + "/"})
	ff.waitForColour(600, 400, green, 60*time.Second)
	badge := func() string {
		var text string
		ff.eval(`(() => { const b = document.getElementById('glovebox-viewed'); return b && !b.hidden ? b.textContent : ''; })()`, &text)
		return text
	}
	if b := badge(); b != "" {
		t.Fatalf("the page says %q before anyone views it", b)
	}
	tabs := g.srv.TabList()
	if len(tabs) != 1 {
		t.Fatalf("tabs: %+v", tabs)
	}
	_, stop, done, err := g.srv.ShadowTab(t.Context(), tabs[0].Tab, offerSDP(t), true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "Firefox's landing page to say the session is viewed", func() (bool, string) {
		b := badge()
		return b == "An administrator is viewing this session.", b
	})
	if dir := os.Getenv("GLOVEBOX_SCREENSHOTS"); dir != "" {
		ff.must(map[string]any{"op": "screenshot", "path": filepath.Join(dir, "firefox-viewed.png")})
	}
	stop()
	<-done
	waitFor(t, 20*time.Second, "the notice to go with the viewer", func() (bool, string) { b := badge(); return b == "", b })

	if !g.srv.EndTab(tabs[0].Tab, tab.ReasonAdmin) {
		t.Fatal("EndTab found no tab")
	}
	waitFor(t, 30*time.Second, "Firefox's landing page to say an administrator ended the tab", func() (bool, string) {
		var text string
		ff.eval(`document.body.innerText`, &text)
		return strings.Contains(text, "An administrator ended this isolated tab"), text
	})
	if dir := os.Getenv("GLOVEBOX_SCREENSHOTS"); dir != "" {
		ff.must(map[string]any{"op": "screenshot", "path": filepath.Join(dir, "firefox-admin-ended.png")})
	}
}
