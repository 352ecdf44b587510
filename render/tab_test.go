package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/internal/testenv"
)

// browser is the Chromium that the tests share, as chromedp's own tests do;
// server serves the test pages.
var (
	browser    *testBrowser
	server     *httptest.Server
	skipReason string
)

// The shared browser's window differs from the tests' viewports, so the
// first frames come at the wrong size and the tests see them dropped.
const windowW, windowH = 800, 600

func TestMain(m *testing.M) {
	server = httptest.NewServer(testPages())
	if _, err := os.Stat(chromiumPath); err != nil {
		skipReason = "no Chromium: " + err.Error()
	} else if b, err := startBrowser(windowW, windowH); err != nil {
		fmt.Fprintln(os.Stderr, "start chromium:", err)
		os.Exit(1)
	} else {
		browser = b
	}
	code := m.Run()
	if browser != nil {
		browser.close()
	}
	server.Close()
	// Leak check: every goroutine of the package ends with its tab.
	if code == 0 {
		if g := renderGoroutines(); g != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", g)
			code = 1
		}
	}
	os.Exit(code)
}

// renderGoroutines returns the stacks of goroutines running this package's
// code, other than the test's own, after a grace period.
func renderGoroutines() string { return goroutinesIn("glovebox/render.(*Tab)") }

// goroutinesIn waits up to a second for no goroutine to have any of funcs
// in its stack, and returns the stacks of those that still do.
func goroutinesIn(funcs ...string) string {
	var leaked []string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			for _, f := range funcs {
				if strings.Contains(g, f) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.Join(leaked, "\n\n")
}

func testPages() http.Handler {
	mux := http.NewServeMux()
	page := func(path, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		})
	}
	const full = `<style>html,body{margin:0;width:100%;height:100%}</style>`
	page("/solid", `<!doctype html>`+full+`<body style="background:#ff0000"
		onclick="document.body.style.background='#00ff00'"></body>`)
	page("/link", `<!doctype html>`+full+`<body><a id=a href="/target"
		style="display:block;width:100%;height:100%;background:#0000ff">go</a></body>`)
	page("/target", `<!doctype html><title>Target</title><p>target</p>`)
	page("/title", `<!doctype html><title>First</title><p>title</p>`)
	page("/input", `<!doctype html><form id=f onsubmit="event.preventDefault(); window.submitted=true">
		<input id=i autofocus style="position:absolute;left:10px;top:10px;width:200px;height:30px">
		<input id=j style="position:absolute;left:10px;top:60px;width:200px;height:30px">
		<button style="position:absolute;left:10px;top:110px">Send</button></form>`)
	page("/tall", `<!doctype html><body style="margin:0;height:5000px;background:linear-gradient(#fff,#000)"></body>`)
	// A page that changes on every animation frame and moves its URL's
	// fragment ten times a second: frames and events keep coming.
	page("/anim", `<!doctype html>`+full+`<body><script>
		let i = 0;
		(function paint() { document.body.style.background = i++ % 2 ? "#ff0000" : "#0000ff"; requestAnimationFrame(paint) })();
		setInterval(() => { location.hash = "f" + i }, 100);
		</script></body>`)
	page("/drag", `<!doctype html><body style="margin:0;font:20px/30px monospace">
		<p id=p style="margin:10px">drag across this text</p>
		<input id=r type=range min=0 max=100 value=0 style="position:absolute;left:10px;top:100px;width:200px;margin:0">
		<script>window.clicks = []; addEventListener("dblclick", () => clicks.push("dbl"));
		addEventListener("auxclick", (e) => clicks.push("aux" + e.button))</script></body>`)
	page("/image", `<!doctype html><body style="margin:0">
		<img id=i style="position:absolute;left:20px;top:20px;width:80px;height:60px" src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='8' height='6'%3E%3Crect width='8' height='6' fill='%23e03010'/%3E%3C/svg%3E">
		<textarea id=f style="position:absolute;left:150px;top:20px;width:200px;height:60px"></textarea>
		<script>f.addEventListener("paste", async (e) => {
			e.preventDefault();
			const x = e.clipboardData.files[0];
			window.got = x ? x.type + ":" + x.size + ":" + (await x.arrayBuffer()).byteLength : "none";
		});</script></body>`)
	page("/copy", `<!doctype html><body style="margin:0">
		<button id=b style="position:absolute;left:0;top:0;width:200px;height:100px">Copy</button>
		<button id=w style="position:absolute;left:200px;top:0;width:200px;height:100px">Write</button>
		<script>
		// Without the user: neither a write nor the hook's event counts.
		navigator.clipboard.writeText("on load").catch(() => {});
		document.dispatchEvent(new CustomEvent("glovebox-remote-copy", { detail: "forged on load" }));
		addEventListener("load", () => window.print());
		b.onclick = () => navigator.clipboard.writeText("Copied by the page: 42").then(() => window.copied = true);
		w.onclick = () => navigator.clipboard.write([new ClipboardItem({ "text/plain": new Blob(["written as an item"], { type: "text/plain" }) })]);
		</script></body>`)
	page("/agent", `<!doctype html><style>body{margin:0;font:20px/30px monospace} .at{position:absolute;margin:0;box-sizing:border-box;width:100px;height:40px}</style>
		<a id=link class=at href="/target" style="left:0;top:0;background:#ccf">link</a>
		<input id=text class=at style="left:100px;top:0">
		<div class=at style="left:200px;top:0;cursor:grab"></div>
		<div class=at style="left:300px;top:0;cursor:url(data:image/png;base64,iVBORw0KGgo=) 2 2, ew-resize"></div>
		<div class=at style="left:0;top:50px;user-select:none"></div>
		<select id=sel class=at style="left:0;top:100px;width:200px"><option>One<optgroup label="Group &amp; co"><option disabled>Two<option value=3>Three
Three</optgroup></select>
		<button id=fs class=at style="left:0;top:150px" onclick="document.documentElement.requestFullscreen()">fs</button>
		<textarea class=at style="left:200px;top:200px;width:100px;height:60px"></textarea>
		<input id=col type=color value="#112233" class=at style="left:200px;top:100px">
		<input id=day type=date value="2026-12-03" min="2026-01-01" class=at style="left:200px;top:150px;width:200px">
		<script>window.changes = []; const s = document.getElementById("sel");
		s.addEventListener("input", () => changes.push("input:" + s.value)); s.addEventListener("change", () => changes.push("change:" + s.value));
		document.getElementById("col").addEventListener("change", (e) => changes.push("colour:" + e.target.value))</script>`)
	page("/dnd", `<!doctype html><body style="margin:0">
		<div id=src draggable=true style="position:absolute;left:10px;top:10px;width:80px;height:80px;background:#f00"></div>
		<div id=dst style="position:absolute;left:200px;top:10px;width:100px;height:100px;background:#00f"></div>
		<script>window.dnd = []; const d = document.getElementById("dst");
		document.getElementById("src").addEventListener("dragstart", (e) => { e.dataTransfer.setData("text/plain", "moved"); dnd.push("start") });
		d.addEventListener("dragover", (e) => e.preventDefault());
		d.addEventListener("drop", (e) => { e.preventDefault(); dnd.push("drop:" + e.dataTransfer.getData("text/plain")) })</script></body>`)
	page("/alert", `<!doctype html><script>alert("hello"); document.title = "confirm:" + confirm("sure?")</script>`)
	page("/alert-once", `<!doctype html><script>alert("once"); document.title = "went on"</script>`)
	page("/prompt", `<!doctype html><script>document.title = "prompt:" + prompt("name?", "dflt")</script>`)
	page("/long-alert", `<!doctype html><script>alert("é".repeat(5000)); document.title = "after"</script>`)
	// Chromium sends the credentials it has for a path to every path under
	// the same directory, and for a realm to every challenge of that realm
	// on the origin: each test has its own directory and realm.
	basic := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if u, p, ok := r.BasicAuth(); !ok || u != "zoë" || p != "pa ss" {
			w.Header().Set("WWW-Authenticate", `Basic realm="Test Realm `+strings.Split(r.URL.Path, "/")[1]+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, "<!doctype html><title>denied</title>")
			return
		}
		fmt.Fprint(w, "<!doctype html><title>signed in</title>")
	}
	mux.HandleFunc("/basic-signed-in/", basic)
	mux.HandleFunc("/basic-cancel/", basic)
	mux.HandleFunc("/basic-off/", basic)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><p>slow")
		w.(http.Flusher).Flush()
		select { // the page never finishes loading while the test runs
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	return mux
}

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// sink collects a tab's frames (the newest only, acking the ones it drops,
// as a real consumer does) and its events. Once closed is set, it counts
// the calls that still come in late.
type sink struct {
	frames chan Frame
	events chan Event
	closed atomic.Bool
	late   atomic.Int64
}

func newSink() *sink {
	return &sink{frames: make(chan Frame, 1), events: make(chan Event, 256)}
}

func (s *sink) onFrame(f Frame) {
	if s.closed.Load() {
		s.late.Add(1)
	}
	select {
	case old := <-s.frames:
		old.Ack()
	default:
	}
	select {
	case s.frames <- f:
	default:
		f.Ack()
	}
}

func (s *sink) onEvent(ev Event) {
	if s.closed.Load() {
		s.late.Add(1)
	}
	select {
	case s.events <- ev:
	default:
	}
}

// openTab opens a tab on the shared browser at w×h@scale and navigates it.
func openTab(t *testing.T, w, h int, scale float64, path string) (*Tab, *sink) {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
	s := newSink()
	tab, err := Open(t.Context(), browser.wsURL, Options{
		Width: w, Height: h, Scale: scale,
		OnFrame: s.onFrame, OnEvent: s.onEvent, Log: testLog(), HTTPAuth: true,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := tab.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if path != "" {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := tab.Navigate(ctx, server.URL+path); err != nil {
			t.Fatalf("Navigate: %v", err)
		}
		// Leave the events to the test: a dialog or a title can come
		// before the url event.
		deadline := time.Now().Add(10 * time.Second)
		for tab.URL() != server.URL+path {
			if time.Now().After(deadline) {
				t.Fatalf("URL() = %q, want %q", tab.URL(), server.URL+path)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return tab, s
}

// waitFrame decodes frames until ok accepts one.
func waitFrame(t *testing.T, s *sink, what string, ok func(image.Image) bool) image.Image {
	t.Helper()
	return waitFrameWithin(t, s, 10*time.Second, what, ok)
}

// waitFrameWithin is waitFrame for at most d.
func waitFrameWithin(t *testing.T, s *sink, d time.Duration, what string, ok func(image.Image) bool) image.Image {
	t.Helper()
	timeout := time.After(d)
	var last image.Image
	for {
		select {
		case f := <-s.frames:
			img, err := jpeg.Decode(bytes.NewReader(f.Data))
			f.Ack()
			if err != nil {
				t.Fatalf("decode frame: %v", err)
			}
			if f.Captured.IsZero() || time.Since(f.Captured) > time.Minute {
				t.Errorf("frame captured at %v", f.Captured)
			}
			if ok(img) {
				return img
			}
			last = img
		case <-timeout:
			desc := "none"
			if last != nil {
				desc = fmt.Sprintf("%v, centre %v", last.Bounds().Size(), last.At(last.Bounds().Dx()/2, last.Bounds().Dy()/2))
			}
			t.Fatalf("no frame %s in %v; last frame: %s", what, d, desc)
			return nil
		}
	}
}

// near reports whether img's centre is within 24 of r, g, b.
func near(img image.Image, r, g, b int) bool {
	b0 := img.Bounds()
	cr, cg, cb, _ := img.At(b0.Min.X+b0.Dx()/2, b0.Min.Y+b0.Dy()/2).RGBA()
	d := func(c uint32, want int) bool { return math.Abs(float64(c>>8)-float64(want)) <= 24 }
	return d(cr, r) && d(cg, g) && d(cb, b)
}

func sized(w, h int) func(image.Image) bool {
	return func(img image.Image) bool { return img.Bounds().Dx() == w && img.Bounds().Dy() == h }
}

func waitEvent(t *testing.T, s *sink, ok func(Event) bool) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var seen []Event
	for {
		select {
		case ev := <-s.events:
			if ok(ev) {
				return ev
			}
			seen = append(seen, ev)
		case <-timeout:
			for _, ev := range seen {
				if ev.Download != nil {
					t.Logf("seen download %+v", *ev.Download)
				}
			}
			t.Fatalf("event not seen in 10s; saw %+v", seen)
			return Event{}
		}
	}
}

// evaluate runs JavaScript in the tab's page, as the test's window into it.
func evaluate[T any](t *testing.T, tab *Tab, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll evaluates expr until it is true.
func poll(t *testing.T, tab *Tab, expr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !evaluate[bool](t, tab, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is still false after 5s", expr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func click(t *testing.T, tab *Tab, x, y float64) {
	t.Helper()
	for _, ev := range []MouseEvent{
		{Type: "move", X: x, Y: y},
		{Type: "down", X: x, Y: y, Button: "left", Buttons: 1},
		{Type: "up", X: x, Y: y, Button: "left"},
	} {
		if err := tab.Mouse(t.Context(), ev); err != nil {
			t.Fatalf("Mouse %+v: %v", ev, err)
		}
	}
}

func TestScreencastAndClick(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/solid")
	img := waitFrame(t, s, "red", func(img image.Image) bool { return near(img, 255, 0, 0) })
	if got := img.Bounds().Size(); got != image.Pt(400, 300) {
		t.Errorf("frame size = %v, want 400x300", got)
	}
	click(t, tab, 200, 150)
	waitFrame(t, s, "green after the click", func(img image.Image) bool { return near(img, 0, 255, 0) })
	if got := tab.URL(); got != server.URL+"/solid" {
		t.Errorf("URL() = %q", got)
	}
}

func TestLinkAndURLEvents(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/link")
	click(t, tab, 100, 100)
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventURL && !strings.HasSuffix(ev.URL, "/link") })
	if want := server.URL + "/target"; ev.URL != want || tab.URL() != want {
		t.Errorf("url event %q, URL() %q, want %q", ev.URL, tab.URL(), want)
	}
	// A move within the document (the History API, a fragment) too.
	evaluate[string](t, tab, `location.hash = "part2"`)
	ev = waitEvent(t, s, func(ev Event) bool { return ev.Type == EventURL })
	if want := server.URL + "/target#part2"; ev.URL != want || tab.URL() != want {
		t.Errorf("url event %q, URL() %q, want %q", ev.URL, tab.URL(), want)
	}
	evaluate[chromedp.Void](t, tab, `history.pushState(null, "", "/pushed")`)
	ev = waitEvent(t, s, func(ev Event) bool { return ev.Type == EventURL })
	if want := server.URL + "/pushed"; ev.URL != want {
		t.Errorf("url event %q, want %q", ev.URL, want)
	}
}

func TestTitleEvents(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/title")
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventTitle && ev.Title == "First" })
	evaluate[string](t, tab, `document.title = "Second"`)
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventTitle })
	if ev.Title != "Second" || tab.Title() != "Second" {
		t.Errorf("title event %q, Title() %q, want Second", ev.Title, tab.Title())
	}
}

func TestKeys(t *testing.T) {
	tab, _ := openTab(t, 400, 300, 1, "/input")
	click(t, tab, 50, 25) // focus #i
	poll(t, tab, `document.activeElement.id === "i"`)
	key := func(k KeyEvent) {
		t.Helper()
		for _, typ := range []string{"down", "up"} {
			k.Type = typ
			if err := tab.Key(t.Context(), k); err != nil {
				t.Fatalf("Key %+v: %v", k, err)
			}
		}
	}
	value := func(want string) {
		t.Helper()
		if got := evaluate[string](t, tab, `document.getElementById("i").value`); got != want {
			t.Errorf("value = %q, want %q", got, want)
		}
	}
	key(KeyEvent{Key: "h", Code: "KeyH", KeyCode: 72})
	key(KeyEvent{Key: "i", Code: "KeyI", KeyCode: 73})
	key(KeyEvent{Key: "Backspace", Code: "Backspace", KeyCode: 8})
	key(KeyEvent{Key: "!", Code: "Digit1", KeyCode: 49, Modifiers: ModShift})
	value("h!")

	key(KeyEvent{Key: "ArrowLeft", Code: "ArrowLeft", KeyCode: 37})
	key(KeyEvent{Key: "x", Code: "KeyX", KeyCode: 88})
	value("hx!")

	key(KeyEvent{Key: "a", Code: "KeyA", KeyCode: 65, Modifiers: ModCtrl})
	key(KeyEvent{Key: "z", Code: "KeyZ", KeyCode: 90})
	value("z")

	key(KeyEvent{Key: "Enter", Code: "Enter", KeyCode: 13})
	poll(t, tab, `window.submitted === true`)

	key(KeyEvent{Key: "Tab", Code: "Tab", KeyCode: 9})
	poll(t, tab, `document.activeElement.id === "j"`)
	if err := tab.InsertText(t.Context(), "héllo 世界"); err != nil {
		t.Fatalf("InsertText: %v", err)
	}
	if got := evaluate[string](t, tab, `document.getElementById("j").value`); got != "héllo 世界" {
		t.Errorf("#j value = %q", got)
	}
}

func TestWheel(t *testing.T) {
	tab, _ := openTab(t, 400, 300, 1, "/tall")
	err := tab.Mouse(t.Context(), MouseEvent{Type: "wheel", X: 200, Y: 150, DeltaY: 400})
	if err != nil {
		t.Fatalf("wheel: %v", err)
	}
	poll(t, tab, `window.scrollY > 0`)
}

func TestResize(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/solid")
	waitFrame(t, s, "400x300", sized(400, 300))
	if err := tab.Resize(t.Context(), 640, 480, 1); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	waitFrame(t, s, "640x480", sized(640, 480))
	// The shared browser's screen has a scale factor of 1: the page gets
	// devicePixelRatio 2, the frames stay at 1 pixel per CSS px.
	if err := tab.Resize(t.Context(), 320, 200, 2); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	waitFrame(t, s, "320x200", sized(320, 200))
	if got := evaluate[string](t, tab, `innerWidth + "x" + innerHeight + "@" + devicePixelRatio`); got != "320x200@2" {
		t.Errorf("viewport = %s, want 320x200@2", got)
	}
}

func TestHighDPI(t *testing.T) {
	b := ownBrowser(t, "--force-device-scale-factor=2")
	s := newSink()
	tab, err := Open(t.Context(), b.wsURL, Options{Width: 320, Height: 200, Scale: 2, OnFrame: s.onFrame, Log: testLog()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tab.Close()
	if err := tab.Navigate(t.Context(), server.URL+"/solid"); err != nil {
		t.Fatalf("Navigate: %v", err)
	}
	waitFrame(t, s, "640x400 (320x200 at scale 2)", sized(640, 400))
	// A smaller scale than the screen's: the frames are scaled down.
	if err := tab.Resize(t.Context(), 400, 300, 1); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	waitFrame(t, s, "400x300 (at scale 1)", sized(400, 300))
}

func TestNavigate(t *testing.T) {
	tab, _ := openTab(t, 400, 300, 1, "")
	// Navigate returns on commit: a page that never finishes loading
	// does not hold it.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := tab.Navigate(ctx, server.URL+"/slow"); err != nil {
		t.Fatalf("Navigate /slow: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Navigate waited %v for a page that never loads", d)
	}
	// A network error is an error.
	l := httptest.NewServer(http.NotFoundHandler())
	dead := l.URL
	l.Close()
	err := tab.Navigate(ctx, dead+"/")
	if !errors.Is(err, ErrNavigation) || !strings.Contains(err.Error(), "ERR_CONNECTION_REFUSED") {
		t.Errorf("Navigate to a closed port: %v, want ErrNavigation with net::ERR_CONNECTION_REFUSED", err)
	}
}

func TestBadInput(t *testing.T) {
	tab, _ := openTab(t, 400, 300, 1, "")
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"mouse type", func() error { return tab.Mouse(ctx, MouseEvent{Type: "click"}) }},
		{"mouse button", func() error { return tab.Mouse(ctx, MouseEvent{Type: "down", Button: "fourth"}) }},
		{"mouse NaN", func() error { return tab.Mouse(ctx, MouseEvent{Type: "move", X: math.NaN()}) }},
		{"mouse Inf", func() error { return tab.Mouse(ctx, MouseEvent{Type: "move", Y: math.Inf(1)}) }},
		{"mouse far", func() error { return tab.Mouse(ctx, MouseEvent{Type: "move", X: 1e9}) }},
		{"wheel delta", func() error { return tab.Mouse(ctx, MouseEvent{Type: "wheel", DeltaY: math.NaN()}) }},
		{"buttons", func() error { return tab.Mouse(ctx, MouseEvent{Type: "down", Buttons: 64}) }},
		{"click count", func() error { return tab.Mouse(ctx, MouseEvent{Type: "down", ClickCount: -1}) }},
		{"mouse modifiers", func() error { return tab.Mouse(ctx, MouseEvent{Type: "move", Modifiers: 16}) }},
		{"key type", func() error { return tab.Key(ctx, KeyEvent{Type: "press", Key: "a"}) }},
		{"no key", func() error { return tab.Key(ctx, KeyEvent{Type: "down"}) }},
		{"control key", func() error { return tab.Key(ctx, KeyEvent{Type: "down", Key: "\x00"}) }},
		{"long key", func() error { return tab.Key(ctx, KeyEvent{Type: "down", Key: strings.Repeat("a", 100)}) }},
		{"bad code", func() error { return tab.Key(ctx, KeyEvent{Type: "down", Key: "a", Code: "Key A"}) }},
		{"key code", func() error { return tab.Key(ctx, KeyEvent{Type: "down", Key: "a", KeyCode: 1000}) }},
		{"text", func() error { return tab.InsertText(ctx, "\xff") }},
		{"url scheme", func() error { return tab.Navigate(ctx, "file:///etc/passwd") }},
		{"url chrome", func() error { return tab.Navigate(ctx, "chrome://settings") }},
		{"url js", func() error { return tab.Navigate(ctx, "javascript:alert(1)") }},
		{"resize", func() error { return tab.Resize(ctx, 0, 300, 1) }},
		{"resize scale", func() error { return tab.Resize(ctx, 400, 300, 100) }},
		{"open size", func() error { _, err := Open(ctx, browser.wsURL, Options{Width: -1, Height: 10}); return err }},
		{"open quality", func() error {
			_, err := Open(ctx, browser.wsURL, Options{Width: 10, Height: 10, Quality: 101})
			return err
		}},
		{"open url", func() error { _, err := Open(ctx, "http://127.0.0.1:1/", Options{Width: 10, Height: 10}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrBadInput) {
				t.Errorf("error = %v, want ErrBadInput", err)
			}
		})
	}
	// The tab still works.
	if err := tab.Mouse(ctx, MouseEvent{Type: "move", X: 1, Y: 1}); err != nil {
		t.Errorf("Mouse after bad input: %v", err)
	}
}

func TestCloseAndCancel(t *testing.T) {
	// Closed while frames and events are coming. (Not openTab's path: it
	// waits for the URL without a fragment, which this page changes.)
	tab, s := openTab(t, 400, 300, 1, "")
	if err := tab.Navigate(t.Context(), server.URL+"/anim"); err != nil {
		t.Fatalf("Navigate: %v", err)
	}
	// Red or blue: the page alternates between them on every frame.
	waitFrame(t, s, "of the animation", func(img image.Image) bool { return near(img, 255, 0, 0) || near(img, 0, 0, 255) })
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventURL && strings.Contains(ev.URL, "/anim#f") })
	if err := tab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.closed.Store(true)
	if err := tab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-tab.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := tab.Mouse(t.Context(), MouseEvent{Type: "move"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Mouse after Close: %v, want ErrClosed", err)
	}
	// No callback starts after Close returns. Wait for the goroutines that
	// could call one to end: the tab's own and chromedp's target loop,
	// which runs the listener (no other tab is open in this test).
	if g := goroutinesIn("glovebox/render.(*Tab)", "chromedp.(*Target).run"); g != "" {
		t.Fatalf("goroutines still running after Close:\n%s", g)
	}
	if n := s.late.Load(); n != 0 {
		t.Errorf("%d callbacks after Close returned", n)
	}
	// Close stops the callbacks before it ends the tab's goroutines, so the
	// caller's own Close brings no closed event. (Callbacks run on their
	// goroutines before Close returns: what came is in the channel.)
	for len(s.events) > 0 {
		if ev := <-s.events; ev.Type == EventClosed {
			t.Errorf("event %+v for Close", ev)
		}
	}

	// Cancelling Open's ctx ends the tab.
	ctx, cancel := context.WithCancel(t.Context())
	s = newSink()
	tab, err := Open(ctx, browser.wsURL, Options{Width: 400, Height: 300, OnEvent: s.onEvent, Log: testLog()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tab.Close()
	cancel()
	select {
	case <-tab.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after ctx was cancelled")
	}
}

// ownBrowser starts a browser for a test that breaks it.
func ownBrowser(t *testing.T, flags ...string) *testBrowser {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
	b, err := startBrowser(400, 300, flags...)
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(b.close)
	return b
}

func TestBrowserGone(t *testing.T) {
	b := ownBrowser(t)
	s := newSink()
	tab, err := Open(t.Context(), b.wsURL, Options{Width: 400, Height: 300, OnEvent: s.onEvent, Log: testLog()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tab.Close()
	b.kill()
	select {
	case <-tab.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the browser died")
	}
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventClosed })
	if err := tab.Mouse(t.Context(), MouseEvent{Type: "move"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Mouse after the browser died: %v, want ErrClosed", err)
	}
}

func TestCrash(t *testing.T) {
	b := ownBrowser(t)
	s := newSink()
	tab, err := Open(t.Context(), b.wsURL, Options{Width: 400, Height: 300, OnEvent: s.onEvent, Log: testLog()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tab.Close()
	go cdp.Call(tab.ctx, tab.target, page.Crash, cdp.Empty{}) // never answered
	select {
	case <-tab.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the page crashed")
	}
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventCrashed })
}
