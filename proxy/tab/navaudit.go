package tab

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/render"
)

// titleWait is how long a navigation's tab_navigate waits for the new
// page's title before it is written without it.
const titleWait = 2 * time.Second

// navAudit writes a tab's tab_navigate events: each when the page's title
// for it is known (the title comes after the URL), or titleWait after it.
type navAudit struct {
	mu      sync.Mutex
	pending *audit.NavigateEvent
	rawURL  string
	timer   *time.Timer
	// The last title event: the page's title may come before the url
	// event of its navigation (they are read apart).
	title, titleURL string
}

// auditURL is a url event of the page: a move to another entry starts a
// navigation event; one before it is written first.
func (t *Tab) auditURL(ev render.Event) {
	if ev.How == "" {
		return // within the entry (a fragment)
	}
	e := audit.NavigateEvent{Tab: t.id, ClientIP: t.clientIP, User: t.user, URL: ev.URL, How: ev.How}
	if u, err := url.Parse(ev.URL); err == nil {
		e.URL, e.Host = audit.LogURL(u), u.Hostname()
	}
	n := &t.navAudit
	n.mu.Lock()
	prev := n.flushLocked()
	var now *audit.NavigateEvent
	if n.titleURL == ev.URL && !placeholderTitle(n.title, ev.URL) {
		e.Title = n.title // its title came first
		now = &e
	} else {
		n.pending, n.rawURL = &e, ev.URL
		n.timer = time.AfterFunc(titleWait, func() { t.auditTitle(render.Event{URL: ev.URL, Title: t.pageTitle()}, true) })
	}
	n.mu.Unlock()
	for _, e := range []*audit.NavigateEvent{prev, now} {
		if e != nil {
			t.m.audit.Navigate(*e)
		}
	}
}

// auditTitle is a title event of the page: it completes the navigation
// to its URL (late: whatever title there is).
func (t *Tab) auditTitle(ev render.Event, late bool) {
	n := &t.navAudit
	n.mu.Lock()
	if !late {
		n.title, n.titleURL = ev.Title, ev.URL
	}
	if n.pending == nil || (!late && ev.URL != "" && ev.URL != n.rawURL) {
		n.mu.Unlock()
		return
	}
	if late && ev.URL != n.rawURL {
		// A newer navigation's timer is the one that counts.
		n.mu.Unlock()
		return
	}
	if !late && placeholderTitle(ev.Title, n.rawURL) {
		// Chromium names a page by its URL until its own title comes.
		n.mu.Unlock()
		return
	}
	n.pending.Title = ev.Title
	e := n.flushLocked()
	n.mu.Unlock()
	if e != nil {
		t.m.audit.Navigate(*e)
	}
}

// placeholderTitle says whether title is what Chromium shows for a page
// of rawURL that has no title (yet): the URL, without its scheme.
func placeholderTitle(title, rawURL string) bool {
	if title == "" || title == rawURL {
		return true
	}
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		return title == rest || title == strings.TrimSuffix(rest, "/")
	}
	return false
}

// flushNavAudit writes a navigation still waiting for its title (the tab
// ends).
func (t *Tab) flushNavAudit() {
	n := &t.navAudit
	n.mu.Lock()
	e := n.flushLocked()
	n.mu.Unlock()
	if e != nil {
		t.m.audit.Navigate(*e)
	}
}

func (n *navAudit) flushLocked() *audit.NavigateEvent {
	e := n.pending
	n.pending, n.rawURL = nil, ""
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	return e
}

// pageTitle is the remote page's title now, "" when unknown.
func (t *Tab) pageTitle() string {
	select {
	case <-t.ready:
		if t.page != nil {
			return t.page.Title()
		}
	default:
	}
	return ""
}

// auditDialog writes the user's answer to dialog id, before it is given:
// only for a dialog or sign-in that is waiting for it (an answer to
// another, or a second one, is nothing the page asked).
func (t *Tab) auditDialog(m clientMsg) {
	var pending *render.Event
	for _, ev := range t.page.Pending() {
		if ev.ID == m.ID && (ev.Type == render.EventAuth) == (m.T == "auth") {
			pending = &ev
		}
	}
	if pending == nil {
		return
	}
	kind := pending.Dialog
	if pending.Type == render.EventAuth {
		kind = "http_auth"
	}
	answer := "dismiss"
	if (m.T == "auth" && !m.Cancel) || (m.T != "auth" && m.Accept) {
		answer = "accept"
	}
	e := audit.DialogEvent{Tab: t.id, ClientIP: t.clientIP, User: t.user, Kind: kind, Answer: answer, URL: pending.URL}
	if u, err := url.Parse(pending.URL); err == nil {
		e.URL, e.Host = audit.LogURL(u), u.Hostname()
	}
	t.m.audit.Dialog(e)
}
