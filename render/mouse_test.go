package render

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// openPainted opens path at 400×300 and waits until the page has painted
// twice: input that comes before its first paint is dropped, and a frame
// of the screencast may still be one of the page before.
func openPainted(t *testing.T, path string) (*Tab, *sink) {
	t.Helper()
	tab, s := openTab(t, 400, 300, 1, path)
	_, err := chromedp.Run(tab.ctx, chromedp.Evaluate[bool](`new Promise((ok) => {
		const painted = () => requestAnimationFrame(() => requestAnimationFrame(() => ok(true)));
		if (document.readyState === "complete") painted(); else addEventListener("load", painted);
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("wait for the page to paint: %v", err)
	}
	return tab, s
}

// drag presses button at (x0, y0), moves to (x1, y1) in steps and releases
// it there, as the landing page sends a drag: the moves carry buttons only.
func drag(t *testing.T, tab *Tab, button string, buttons int, x0, y0, x1, y1 float64) {
	t.Helper()
	evs := []MouseEvent{
		{Type: "move", X: x0, Y: y0},
		{Type: "down", X: x0, Y: y0, Button: button, Buttons: buttons},
	}
	for i := 1; i <= 5; i++ {
		f := float64(i) / 5
		evs = append(evs, MouseEvent{Type: "move", X: x0 + (x1-x0)*f, Y: y0 + (y1-y0)*f, Buttons: buttons})
	}
	evs = append(evs, MouseEvent{Type: "up", X: x1, Y: y1, Button: button})
	for _, ev := range evs {
		if err := tab.Mouse(t.Context(), ev); err != nil {
			t.Fatalf("Mouse %+v: %v", ev, err)
		}
	}
}

func TestDragSelectsText(t *testing.T) {
	tab, _ := openPainted(t, "/drag")
	// From before the first character to past the last one.
	drag(t, tab, "left", 1, 11, 25, 390, 25)
	if got := evaluate[string](t, tab, `getSelection().toString()`); got != "drag across this text" {
		t.Errorf("selection after a drag = %q, want the paragraph", got)
	}
}

func TestDragMovesSlider(t *testing.T) {
	tab, _ := openPainted(t, "/drag")
	// The thumb sits at the left end; dragged to the right end.
	drag(t, tab, "left", 1, 16, 110, 260, 110)
	if got := evaluate[string](t, tab, `document.getElementById("r").value`); got != "100" {
		t.Errorf("slider value after a drag = %s, want 100", got)
	}
}

func TestDoubleAndMiddleClick(t *testing.T) {
	tab, _ := openPainted(t, "/drag")
	for _, ev := range []MouseEvent{
		{Type: "move", X: 50, Y: 25},
		{Type: "down", X: 50, Y: 25, Button: "left", Buttons: 1, ClickCount: 1},
		{Type: "up", X: 50, Y: 25, Button: "left", ClickCount: 1},
		{Type: "down", X: 50, Y: 25, Button: "left", Buttons: 1, ClickCount: 2},
		{Type: "up", X: 50, Y: 25, Button: "left", ClickCount: 2},
		{Type: "down", X: 50, Y: 25, Button: "middle", Buttons: 4},
		{Type: "up", X: 50, Y: 25, Button: "middle"},
	} {
		if err := tab.Mouse(t.Context(), ev); err != nil {
			t.Fatalf("Mouse %+v: %v", ev, err)
		}
	}
	if got := evaluate[string](t, tab, `clicks.join(",")`); got != "dbl,aux1" {
		t.Errorf("events = %q, want dbl,aux1", got)
	}
}

// TestDragAndDrop: an HTML drag and drop inside the page, with the mouse.
func TestDragAndDrop(t *testing.T) {
	tab, _ := openPainted(t, "/dnd")
	drag(t, tab, "left", 1, 50, 50, 250, 60)
	poll(t, tab, `dnd.join() === "start,drop:moved"`)
}

// TestTripleClickSelectsParagraph: three clicks with rising click counts
// select the paragraph, as a local triple click does.
func TestTripleClickSelectsParagraph(t *testing.T) {
	tab, _ := openPainted(t, "/drag")
	for n := 1; n <= 3; n++ {
		for _, ev := range []MouseEvent{
			{Type: "down", X: 50, Y: 25, Button: "left", Buttons: 1, ClickCount: n},
			{Type: "up", X: 50, Y: 25, Button: "left", ClickCount: n},
		} {
			if err := tab.Mouse(t.Context(), ev); err != nil {
				t.Fatalf("Mouse %+v: %v", ev, err)
			}
		}
	}
	if got := evaluate[string](t, tab, `getSelection().toString().trim()`); got != "drag across this text" {
		t.Errorf("selection after a triple click = %q, want the paragraph", got)
	}
}
