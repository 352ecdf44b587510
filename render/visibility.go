package render

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
)

// A tab the user cannot see costs nothing: Hide stops the screencast, so
// Chromium neither captures nor encodes frames, and can freeze the page
// (the Page Lifecycle's frozen state: its timers, animation frames, network
// callbacks and workers stop, as Chromium does to background tabs it
// discards from the CPU). Show undoes both and sends a fresh frame.

// hiddenState is the tab's visibility, under Tab.resizeMu.
type hiddenState struct {
	on     bool      // the screencast is stopped
	frozen bool      // and the page is frozen
	since  time.Time // when Hide stopped it
}

// Hide stops the screencast and, with freeze, freezes the page. A frozen
// page runs no script until Show: what it would have done in the meantime
// (a chat's new messages, a video's progress) it does when it thaws, as in
// a background tab of a local Chromium. Hiding a hidden tab does nothing,
// but may freeze it.
func (t *Tab) Hide(ctx context.Context, freeze bool) error {
	t.resizeMu.Lock()
	defer t.resizeMu.Unlock()
	if !t.hidden.on {
		if err := t.call(ctx, page.CommandStopScreencast, nil); err != nil {
			return fmt.Errorf("hide: stop screencast: %w", err)
		}
		t.hidden = hiddenState{on: true, since: time.Now()}
	}
	if freeze && !t.hidden.frozen {
		// Headless Chromium keeps a page with focus emulation on visible,
		// and a visible page does not freeze (Chromium 156 says nothing and
		// the page runs on): off first.
		err := t.call(ctx, emulation.CommandSetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: false})
		if err == nil {
			err = t.call(ctx, page.CommandSetWebLifecycleState, page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateFrozen})
		}
		if err != nil {
			return fmt.Errorf("hide: freeze: %w", err)
		}
		t.hidden.frozen = true
	}
	return nil
}

// Hidden reports whether the tab is hidden, and since when.
func (t *Tab) Hidden() (bool, time.Time) {
	t.resizeMu.Lock()
	defer t.resizeMu.Unlock()
	return t.hidden.on, t.hidden.since
}

// Show thaws a frozen page, starts the screencast at the viewport in effect
// and has the page repaint, so that a frame comes even from a page that
// does not change. Showing a shown tab does nothing.
func (t *Tab) Show(ctx context.Context) error {
	t.resizeMu.Lock()
	defer t.resizeMu.Unlock()
	if !t.hidden.on {
		return nil
	}
	if t.hidden.frozen {
		err := t.call(ctx, page.CommandSetWebLifecycleState, page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateActive})
		if err == nil {
			err = t.call(ctx, emulation.CommandSetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		}
		if err != nil {
			return fmt.Errorf("show: thaw: %w", err)
		}
		t.hidden.frozen = false
	}
	t.mu.Lock()
	w, h, scale := t.width, t.height, t.scale
	t.mu.Unlock()
	if err := t.startScreencast(ctx, w, h, scale); err != nil {
		return fmt.Errorf("show: %w", err)
	}
	t.hidden = hiddenState{}
	return t.repaintLocked(ctx)
}

// HasPopups reports whether pages the tab's page opened are open: their
// script may wait on the opener's (a sign-in's window posting its answer).
func (t *Tab) HasPopups() bool {
	t.popupMu.Lock()
	defer t.popupMu.Unlock()
	return len(t.popups) > 0
}
