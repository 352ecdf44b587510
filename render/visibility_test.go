package render

import (
	"image"
	"testing"
	"time"
)

// TestHideShow: a hidden tab sends no frames and, frozen, runs no script;
// shown again, it sends a fresh frame and its page runs on.
func TestHideShow(t *testing.T) {
	tab, s := openTab(t, 320, 240, 1, "/anim")
	waitFrame(t, s, "of the animation", sized(320, 240))
	if err := tab.Hide(t.Context(), true); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	if on, since := tab.Hidden(); !on || time.Since(since) > time.Minute {
		t.Fatalf("Hidden() = %v, %v", on, since)
	}
	// Frames already on their way when the screencast stopped may come.
	drain := time.After(300 * time.Millisecond)
	for drained := false; !drained; {
		select {
		case f := <-s.frames:
			f.Ack()
		case <-drain:
			drained = true
		}
	}
	before := tab.URL()
	select {
	case f := <-s.frames:
		f.Ack()
		t.Fatalf("a frame came from a hidden tab, captured %v", f.Captured)
	case <-time.After(time.Second):
	}
	if v := evaluate[string](t, tab, `document.visibilityState`); v != "hidden" {
		t.Errorf("a frozen page's visibilityState is %q", v)
	}
	// The page moves its fragment ten times a second while it runs.
	if after := tab.URL(); after != before {
		t.Errorf("the frozen page ran: its URL went from %s to %s", before, after)
	}
	if err := tab.Show(t.Context()); err != nil {
		t.Fatalf("Show: %v", err)
	}
	start := time.Now()
	waitFrameWithin(t, s, 5*time.Second, "after Show", func(image.Image) bool { return true })
	t.Logf("first frame %v after Show", time.Since(start))
	if on, _ := tab.Hidden(); on {
		t.Error("Hidden() after Show")
	}
	poll(t, tab, `document.visibilityState === "visible"`)
	moved := tab.URL()
	waitFor(t, "the thawed page to run", func() bool { return tab.URL() != moved })
}

// TestShowStatic: a page that does not change sends a frame when shown,
// hidden without freezing too.
func TestShowStatic(t *testing.T) {
	tab, s := openTab(t, 320, 240, 1, "/solid")
	waitFrame(t, s, "red", func(img image.Image) bool { return near(img, 255, 0, 0) })
	if err := tab.Hide(t.Context(), false); err != nil {
		t.Fatalf("Hide: %v", err)
	}
	// A page left running still answers, and a resize while hidden
	// applies when shown.
	if err := tab.Resize(t.Context(), 300, 200, 1); err != nil {
		t.Fatalf("Resize while hidden: %v", err)
	}
	for drained := false; !drained; {
		select {
		case f := <-s.frames:
			f.Ack()
		default:
			drained = true
		}
	}
	if err := tab.Show(t.Context()); err != nil {
		t.Fatalf("Show: %v", err)
	}
	waitFrameWithin(t, s, 5*time.Second, "red at the new size after Show", func(img image.Image) bool {
		return sized(300, 200)(img) && near(img, 255, 0, 0)
	})
}
