package render

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
)

// EventType is the kind of an Event. Its values are fixed lowercase words
// (TestEventTypes pins them), fit for logs and for callers that compare
// them as strings.
type EventType string

// Types of Event.
const (
	// EventURL is sent when the page moved to another entry of its
	// session history (Entry, at Index), by a navigation or within the
	// document (a fragment, the History API), or the entry's URL changed.
	// Push says a navigation added the entry after the previous one.
	EventURL EventType = "url"
	// EventTitle is sent when the page's title changed to Title (at URL).
	EventTitle EventType = "title"
	// EventDialog is sent when a JavaScript dialog of kind Dialog opened
	// with Message (and, for a prompt, Default), at URL. It stays open, and
	// the page waits, until AnswerDialog answers ID (see dialog.go).
	EventDialog EventType = "dialog"
	// EventAuth is sent when a request of the page (at URL) met an HTTP
	// authentication challenge of Scheme (basic, digest) for Realm. The
	// request waits until AnswerAuth answers ID.
	EventAuth EventType = "auth"
	// EventDialogClosed is sent when the dialog or sign-in ID went away
	// (answered, closed by the browser, or its page navigated away).
	EventDialogClosed EventType = "dialog-closed"
	// EventCrashed is sent when the page's renderer crashed (at URL, with
	// Title); Done is closed after it.
	EventCrashed EventType = "crashed"
	// EventClosed is sent when the connection to the browser is gone, or
	// the page with it (at URL, with Title); Done is closed after it. Close
	// does not send it. A page that closed itself sends EventPageClosed.
	EventClosed EventType = "closed"
)

// Event tells what happened to the page. Each type fills the fields its
// constant names.
type Event struct {
	// Type is one of EventURL, EventTitle, EventDialog, EventCrashed,
	// EventClosed, EventPopup and EventPageClosed.
	Type EventType
	// URL is the page's URL; for a dialog, the URL of the frame that
	// opened it.
	URL string
	// Title is the page's title, as Chromium's tab strip shows it: the URL
	// when the page has none.
	Title string
	// Message is a dialog's text.
	Message string
	// Dialog is a dialog's kind: "alert", "confirm", "prompt" or
	// "beforeunload".
	Dialog string
	// Entry is the unique id of the page's history entry, Index its
	// position in the page's session history, and Push says a navigation
	// added it right after the one the page was on (see EventURL).
	Entry int64
	Index int
	Push  bool
	// How says how the page came to the entry (EventURL): HowLink,
	// HowTyped, HowForm, HowReload, HowBackForward, HowRedirect or
	// HowOther; "" when it stayed on its entry (a fragment).
	How string
	// TargetID is a popup's page (EventPopup).
	TargetID string

	// The agent's events (agent.go): Cursor is a CSS cursor keyword;
	// Select a <select>'s popup; ContextMenu a context menu's element;
	// Picker a date, time or colour picker; Fullscreen whether the page is
	// in fullscreen.
	Cursor      string
	Select      *Select
	ContextMenu *ContextMenu
	Picker      *Picker
	Fullscreen  bool
	// Text is what the page copied (EventCopy).
	Text string
	// Download is a download's (EventDownload, download.go), Chooser a
	// file chooser's (EventFileChooser, upload.go).
	Download *Download
	Chooser  *FileChooser
	// ID names a dialog or sign-in in the answer to it.
	ID string
	// Default is a prompt's default text.
	Default string
	// Realm and Scheme are a sign-in's (the server's WWW-Authenticate).
	Realm, Scheme string
}

// maxURL is Chromium's own limit on the length of a URL.
const maxURL = 2 << 20

// Navigate loads url in the page and returns once the navigation has been
// committed or has failed (an error wrapping ErrNavigation); it does not
// wait for the page to load. Only http, https and about:blank are allowed:
// other schemes (file, chrome, javascript, data) would reach into the
// browser rather than the web.
func (t *Tab) Navigate(ctx context.Context, rawURL string) error {
	if err := checkURL(rawURL); err != nil {
		return err
	}
	res := new(page.NavigateResult)
	err := t.callResult(ctx, page.CommandNavigate, page.NavigateParams{URL: rawURL, TransitionType: page.TransitionTypeTyped}, res)
	if err != nil {
		return fmt.Errorf("navigate to %s: %w", rawURL, err)
	}
	if res.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %w: %s", rawURL, ErrNavigation, res.ErrorText)
	}
	return nil
}

func checkURL(raw string) error {
	if len(raw) > maxURL {
		return fmt.Errorf("%w: URL longer than %d bytes", ErrBadInput, maxURL)
	}
	if raw == "about:blank" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: URL: %w", ErrBadInput, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: URL %q: only http, https and about:blank are allowed", ErrBadInput, raw)
	}
	return nil
}

// onCDPEvent is the page's listener. It runs on the goroutine that reads
// the page's messages, from the first one: it must return quickly and run no
// command, so dialogs and acks go to their own goroutines.
func (t *Tab) onCDPEvent(ev any) {
	switch ev := ev.(type) {
	case *page.EventScreencastFrame:
		t.onFrame(ev)

	case *page.EventFrameNavigated:
		// Every frame's navigation may add a history entry; only the main
		// frame's moves the URL.
		t.kickNav()
		if ev.Frame.ParentID != "" {
			return
		}
		u := ev.Frame.URL + ev.Frame.URLFragment
		t.mu.Lock()
		t.mainFrame = ev.Frame.ID
		t.url = u
		t.mu.Unlock()
		t.onMainFrameNavigated()
		t.kickTitle()

	case *page.EventNavigatedWithinDocument:
		t.kickNav()
		t.mu.Lock()
		main := ev.FrameID == t.mainFrame
		if main {
			t.url = ev.URL
		}
		t.mu.Unlock()
		if main {
			t.kickTitle()
		}

	case *target.EventTargetInfoChanged:
		if ev.TargetInfo != nil && ev.TargetInfo.TargetID == t.pageID {
			t.kickTitle()
		}
		t.onTargetInfo(ev.TargetInfo)

	case *target.EventTargetCreated:
		t.onTargetInfo(ev.TargetInfo)

	case *target.EventTargetDestroyed:
		t.onTargetDestroyed(ev.TargetID)

	case *page.EventDomContentEventFired, *page.EventLoadEventFired:
		t.kickTitle()
		t.kickNav()

	case *page.EventJavascriptDialogOpening:
		t.onDialogOpening(ev)

	case *page.EventFileChooserOpened:
		go t.onFileChooser(ev)

	case *page.EventJavascriptDialogClosed:
		t.closeDialog()

	case *fetch.EventRequestPaused:
		t.onRequestPaused(ev)

	case *fetch.EventAuthRequired:
		t.onAuthRequired(ev)

	case *log.EventEntryAdded:
		if isRefusedClose(ev.Entry) {
			t.requestClose()
		}

	case *inspector.EventTargetCrashed:
		t.crashOnce.Do(func() { close(t.crashed) })

	default:
		t.onAgentEvent(ev)
	}
}

// titlePoll is how often the title is read when nothing suggests it changed.
const titlePoll = time.Second

// kickTitle makes titleLoop read the title now.
func (t *Tab) kickTitle() {
	select {
	case t.titleKick <- struct{}{}:
	default:
	}
}

// titleLoop reads the page's title, as Chromium's tab strip shows it (the
// URL when the page has none), and emits an event when it changes. Chromium
// sends Target.targetInfoChanged on navigation but not when a page sets
// document.title, so the title is read after navigations and loads, and
// polled. Reading it is cheap: the browser process answers, not the page,
// also while a dialog blocks the page.
func (t *Tab) titleLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(titlePoll)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.done:
			return
		case <-tick.C:
		case <-t.titleKick:
		}
		res := new(target.GetTargetInfoResult)
		err := t.callResult(t.ctx, target.CommandGetTargetInfo, target.GetTargetInfoParams{TargetID: t.pageID}, res)
		if err != nil || res.TargetInfo == nil {
			continue
		}
		title := res.TargetInfo.Title
		t.mu.Lock()
		changed := title != t.title
		t.title = title
		t.mu.Unlock()
		if changed {
			t.emit(Event{Type: EventTitle, URL: t.URL(), Title: title})
		}
	}
}
