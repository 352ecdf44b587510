package render

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// Types of Event about windows.
const (
	// EventPopup is sent when the page opened a new window (window.open, a
	// target=_blank link or form): TargetID names its page in the same
	// browser, which Open attaches to with Options.TargetID, and URL is
	// its first URL (the opener's own when it stays about:blank, as a
	// window a script writes into does).
	EventPopup EventType = "popup"
	// EventPageClosed is sent when the page itself is gone while the
	// browser lives on (window.close(), or CloseTarget); Done is closed
	// after it. EventClosed is sent instead when the connection is lost.
	EventPageClosed EventType = "page-closed"
)

// popupURLWait is how long a new window that is still about:blank is given
// to start its first navigation before it is reported with the opener's URL.
const popupURLWait = time.Second

// closeTimeout bounds the commands that close a target or check for one.
const closeTimeout = 5 * time.Second

// onTargetInfo reports a page whose opener is this tab's page, once: at
// once when it has a URL, else at its first navigation or after
// popupURLWait. It runs on the listener's goroutine.
func (t *Tab) onTargetInfo(info *target.Info) {
	if info == nil || info.Type != "page" || info.OpenerID != t.pageID || info.TargetID == t.pageID {
		return
	}
	t.popupMu.Lock()
	defer t.popupMu.Unlock()
	if t.popups == nil {
		t.popups = map[target.ID]*time.Timer{}
	}
	timer, seen := t.popups[info.TargetID]
	if seen && timer == nil {
		return // reported already
	}
	if info.URL == "" || info.URL == "about:blank" {
		if !seen {
			id := info.TargetID
			t.popups[id] = time.AfterFunc(popupURLWait, func() { t.reportPopup(id, "") })
		}
		return
	}
	if timer != nil {
		timer.Stop()
	}
	t.popups[info.TargetID] = nil
	t.emit(Event{Type: EventPopup, TargetID: string(info.TargetID), URL: info.URL})
}

// reportPopup reports a popup still about:blank with the opener's URL,
// unless it was reported meanwhile.
func (t *Tab) reportPopup(id target.ID, u string) {
	t.popupMu.Lock()
	if timer, ok := t.popups[id]; !ok || timer == nil {
		t.popupMu.Unlock()
		return
	}
	t.popups[id] = nil
	t.popupMu.Unlock()
	if u == "" {
		u = t.URL()
	}
	t.emit(Event{Type: EventPopup, TargetID: string(id), URL: u})
}

// onTargetDestroyed forgets a popup that is gone, reported or not: no event
// of it comes after this one, and HasPopups counts only open ones.
func (t *Tab) onTargetDestroyed(id target.ID) {
	t.popupMu.Lock()
	defer t.popupMu.Unlock()
	if timer := t.popups[id]; timer != nil {
		timer.Stop()
	}
	delete(t.popups, id)
}

// stopPopupTimers stops the timers of popups not yet reported.
func (t *Tab) stopPopupTimers() {
	t.popupMu.Lock()
	defer t.popupMu.Unlock()
	for _, timer := range t.popups {
		if timer != nil {
			timer.Stop()
		}
	}
}

// refusedClose is Chromium's warning when it refuses a page's
// window.close(). Chromium closes by script only a window opened by script
// or one whose history has a single entry; the remote page's history has
// two (the browser's about:blank, then the tab's URL) where the user's own
// tab would have one, so render closes the page itself. A page cannot fake
// the warning: console.warn goes to Runtime.consoleAPICalled, not to the
// Log domain.
const refusedClose = "Scripts may close only the windows that were opened by them."

func isRefusedClose(e *log.Entry) bool {
	return e != nil && e.Source == log.EntrySourceJavascript && e.Level == log.EntryLevelWarning && e.Text == refusedClose
}

// requestClose makes watch close the page, off the listener's goroutine.
func (t *Tab) requestClose() {
	select {
	case t.closeReq <- struct{}{}:
	default:
	}
}

// repaint makes Chromium draw the page anew, so that the screencast sends
// a frame of a page that painted before it started and does not change:
// the viewport grows by a pixel and back (the page sees two resize events).
// Frames of the passing size are dropped as any of another size.
func (t *Tab) repaint(ctx context.Context) error {
	t.resizeMu.Lock()
	defer t.resizeMu.Unlock()
	return t.repaintLocked(ctx)
}

// repaintLocked is repaint with resizeMu held.
func (t *Tab) repaintLocked(ctx context.Context) error {
	t.mu.Lock()
	w, h, scale := t.width, t.height, t.scale
	t.mu.Unlock()
	for _, hh := range []int{h + 1, h} {
		err := t.call(ctx, emulation.CommandSetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: int64(w), Height: int64(hh), DeviceScaleFactor: scale, Mobile: false,
		})
		if err != nil {
			return fmt.Errorf("repaint: %w", err)
		}
	}
	return nil
}

// firstFrameWait is how long a popup's page is given to send its first
// frame before its screencast is started again, and firstFrameTries how
// many times that is done.
const (
	firstFrameWait  = time.Second
	firstFrameTries = 5
)

// awaitFirstFrame starts the screencast of a popup's page again, and
// repaints it, while no frame has come. A popup is attached to while its
// first navigation may still commit, and the screencast started before it
// can send nothing afterwards: the user would wait on a blank window.
func (t *Tab) awaitFirstFrame() {
	defer t.wg.Done()
	for try := 1; try <= firstFrameTries; try++ {
		select {
		case <-t.framed:
			return
		case <-t.ctx.Done():
			return
		case <-time.After(firstFrameWait):
		}
		t.log.Debug("no frame from the popup yet: screencast started again", "try", try)
		err := func() error {
			t.resizeMu.Lock()
			if t.hidden.on {
				// Show repaints and starts it again.
				t.resizeMu.Unlock()
				return nil
			}
			t.mu.Lock()
			w, h, scale := t.width, t.height, t.scale
			t.mu.Unlock()
			err := t.call(t.ctx, page.CommandStopScreencast, nil)
			if err == nil {
				err = t.startScreencast(t.ctx, w, h, scale)
			}
			t.resizeMu.Unlock()
			if err != nil {
				return err
			}
			return t.repaint(t.ctx)
		}()
		if err != nil && t.ctx.Err() == nil {
			t.log.Debug("restart the popup's screencast", "err", err)
		}
	}
}

// TargetID is the DevTools id of the tab's page.
func (t *Tab) TargetID() string { return string(t.pageID) }

// CloseTarget closes the page id of the tab's browser, such as a popup the
// caller refuses, or the tab's own page (then Done closes after
// EventPageClosed). It works until Close.
func (t *Tab) CloseTarget(ctx context.Context, id string) error {
	if t.bctx == nil {
		return ErrClosed
	}
	cctx, cancel := context.WithTimeout(t.bctx, closeTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if _, err := chromedp.CallBrowser(cctx, target.CloseTarget, target.CloseTargetParams{TargetID: target.ID(id)}); err != nil {
		return fmt.Errorf("close target %s: %w", id, err)
	}
	return nil
}

// pageGone reports whether the browser answers and no longer has the tab's
// page: the page closed, rather than the connection being lost.
func (t *Tab) pageGone() bool {
	ctx, cancel := context.WithTimeout(t.bctx, closeTimeout)
	defer cancel()
	infos, err := chromedp.Targets(ctx)
	if err != nil {
		return false
	}
	for _, info := range infos {
		if info.TargetID == t.pageID {
			return false
		}
	}
	return true
}
