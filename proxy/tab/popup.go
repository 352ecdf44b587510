package tab

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/render"
)

// A window the remote page opens (window.open, target=_blank) is a page of
// the same remote browser, so that window.opener and postMessage work as
// they do locally. It becomes a tab of its own (token, peer, page) that
// shares its opener's browser, and counts against the limits as any tab
// does. The opener's landing page is told ({t:'popup', id, url}), asks for a
// hand-over code for it (POST /tabs/{token}/popup) and opens it in a new
// window of the user's browser.

// reasonClosedByPage is why a tab whose page called window.close() ended.
const reasonClosedByPage = "closed by page"

// popupClaimWait is how long a popup waits for its first landing page: the
// user's browser may have blocked the window, and the landing page then
// asks the user, who may take a while.
const popupClaimWait = 2 * time.Minute

// popupNoticeEvery bounds how often a user is told of popups refused: a
// page that opens windows in a loop does not flood them.
const popupNoticeEvery = 5 * time.Second

// onPopup makes a tab of the window the page opened, and tells the landing
// page; past a limit it closes the window and says why. It runs on render's
// event callback and must not block.
func (t *Tab) onPopup(ev render.Event) {
	p, err := t.m.createPopup(t, ev)
	if err != nil {
		go t.refusePopup(ev.TargetID, err)
		return
	}
	t.log.Info("popup", "popup_tab", p.id, "url", p.logURL)
	t.send(serverMsg{T: "popup", ID: p.id, URL: p.url})
}

// createPopup admits a tab for the popup ev of opener's page, on opener's
// browser. A popup whose URL is not an http(s) one (about:blank written
// into by a script, data:, blob:) has the opener's: the landing page opens
// at an origin the user may see, and follows the remote page from there.
func (m *Manager) createPopup(opener *Tab, ev render.Event) (*Tab, error) {
	u, err := url.Parse(ev.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		u, err = url.Parse(opener.currentURL())
		if err != nil {
			return nil, fmt.Errorf("%w: popup of a page with no URL", ErrBadRequest)
		}
	}
	w, h, s := opener.Viewport()
	p := m.newTab(u, opener.clientIP, opener.user, w, h, s)
	p.opener, p.targetID = opener, ev.TargetID
	p.SetControls(opener.Controls()) // the opener's until its landing page hands it over
	p.grace = max(popupClaimWait, m.cfg.ReattachGrace)
	m.mu.Lock()
	defer m.mu.Unlock()
	b := opener.browser
	if b == nil || m.refs[b] == 0 {
		return nil, ErrNoTab // the opener is gone with its browser
	}
	p.browser, p.addr = b, opener.addr
	m.refs[b]++ // before the popup runs: its teardown releases it
	if err := m.admit(p); err != nil {
		m.refs[b]--
		return nil, err
	}
	return p, nil
}

// currentURL is the page's URL, or the one the tab was opened for.
func (t *Tab) currentURL() string {
	select {
	case <-t.ready:
		if t.page != nil {
			if u := t.page.URL(); u != "" {
				return u
			}
		}
	default:
	}
	return t.url
}

// refusePopup closes the remote window that could not have a tab, and tells
// the user why (a few times: see popupNoticeEvery).
func (t *Tab) refusePopup(targetID string, reason error) {
	<-t.ready
	if t.page == nil {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	if err := t.page.CloseTarget(ctx, targetID); err != nil && t.ctx.Err() == nil {
		t.log.Debug("close refused popup", "err", err)
	}
	t.log.Info("popup refused", "reason", reason)
	if t.popupNotices.Allow() {
		t.send(serverMsg{T: "popup-refused", Message: popupRefusal(reason, t.m.cfg.MaxPerUser)})
	}
}

// popupRefusal is what the user is told of a window that was not opened.
func popupRefusal(err error, maxPerUser int) string {
	const head = "This page tried to open a new window, which Glovebox did not open: "
	switch {
	case errors.Is(err, ErrUserLimit):
		return head + fmt.Sprintf("you have %d isolated tabs open, the most one person may have. Close one of them and try again.", maxPerUser)
	case errors.Is(err, ErrRateLimited):
		return head + "isolated tabs are being opened too fast. Wait a few seconds and try again."
	case errors.Is(err, ErrCapacity):
		return head + "every isolated tab is in use. Close another isolated tab or try again in a minute."
	case errors.Is(err, ErrClosing):
		return head + "Glovebox is restarting."
	}
	return head + "it could not be isolated."
}

// release says that t no longer uses its browser, and reports whether it
// was the last tab to: then the caller closes the browser.
func (m *Manager) release(b *isolate.Browser) bool {
	if b == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.refs[b]
	if !ok {
		return false
	}
	if n <= 1 {
		delete(m.refs, b)
		return true
	}
	m.refs[b] = n - 1
	return false
}

// Popup returns the popup tab id of opener's page.
func (m *Manager) Popup(opener *Tab, id string) (*Tab, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tabs {
		if t.id == id && t.opener == opener && t.owner == opener.owner {
			return t, nil
		}
	}
	return nil, ErrNoTab
}

// waitingPopups are the popups of opener's page that no landing page has
// attached to yet.
func (m *Manager) waitingPopups(opener *Tab) []*Tab {
	m.mu.Lock()
	var out []*Tab
	for _, t := range m.tabs {
		if t.opener == opener {
			out = append(out, t)
		}
	}
	m.mu.Unlock()
	waiting := out[:0]
	for _, t := range out {
		t.mu.Lock()
		if !t.attached {
			waiting = append(waiting, t)
		}
		t.mu.Unlock()
	}
	return waiting
}
