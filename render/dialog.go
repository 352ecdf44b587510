package render

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
)

// JavaScript dialogs (alert, confirm, prompt, beforeunload) and HTTP sign-in
// (Basic, Digest) block the page until someone answers. A Tab does not
// answer them itself: it reports each as an event with an id of its own
// (EventDialog, EventAuth), keeps it open until AnswerDialog or AnswerAuth
// names that id, and tells when it went away otherwise (EventDialogClosed:
// the page navigated, or the dialog was closed by the browser). Pending
// lists what is open, for a user who attaches later: nothing is answered
// for a user who is not there.

// Limits of what goes to the user and back.
const (
	// MaxDialogText bounds a dialog's message, a prompt's default text and
	// the user's answer, in bytes. Longer messages are cut (at a character
	// boundary); longer answers are refused.
	MaxDialogText = 4096
	// MaxAuthField bounds a user name and a password, in bytes.
	MaxAuthField = 1024
	// maxDialogURL bounds the URL a dialog or a sign-in names: it is shown,
	// not followed, and its origin is what matters.
	maxDialogURL = 2048
	// maxPendingAuth bounds the sign-ins waiting for an answer; past it the
	// page's request gets the 401 page, as if the user had cancelled.
	maxPendingAuth = 4
)

// ErrNoDialog reports an answer to a dialog or sign-in that is no longer
// open: the page closed it or navigated away while the user answered.
var ErrNoDialog = errors.New("render: no such dialog")

// authWait is a sign-in the page is waiting for.
type authWait struct {
	ev  Event
	req fetch.RequestID
}

// dialogState is the open dialog and the pending sign-ins; Tab.dialogMu
// guards it.
type dialogState struct {
	seq    uint64
	dialog *Event     // the JavaScript dialog open now; a page has at most one
	auths  []authWait // in the order the page asked
	view   *viewState // the file View is opening (view.go)
}

// cut returns s cut to at most n bytes, at a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// fetchPatterns pause only documents (pages and frames). Sign-in is asked
// only for requests that Fetch intercepts at the request stage, and
// intercepting a request costs a round trip to Glovebox: documents are
// few, subresources are many. A subresource behind HTTP authentication
// gets its 401, as a cross-origin one would in a local Chromium.
var fetchPatterns = []*fetch.RequestPattern{{URLPattern: "*", ResourceType: network.ResourceTypeDocument}}

// enableAuth makes Chromium ask Glovebox for HTTP credentials instead of
// failing the request (headless Chromium has no sign-in dialog of its own).
func (t *Tab) enableAuth(ctx context.Context) error {
	err := t.call(ctx, fetch.CommandEnable, fetch.EnableParams{Patterns: fetchPatterns, HandleAuthRequests: new(true)})
	if err != nil {
		return fmt.Errorf("enable HTTP authentication: %w", err)
	}
	return nil
}

// onDialogOpening runs on the listener: it records the dialog and reports it.
func (t *Tab) onDialogOpening(ev *page.EventJavascriptDialogOpening) {
	t.dialogMu.Lock()
	t.ds.seq++
	d := Event{Type: EventDialog, ID: "d" + strconv.FormatUint(t.ds.seq, 10), Dialog: string(ev.Type),
		URL: cut(ev.URL, maxDialogURL), Message: cut(ev.Message, MaxDialogText)}
	if ev.Type == page.DialogTypePrompt {
		d.Default = cut(ev.DefaultPrompt, MaxDialogText)
	}
	if t.ds.dialog != nil {
		// Chromium shows one dialog per page at a time: a new one means
		// the old one is gone.
		t.log.Debug("dialog replaced", "old", t.ds.dialog.ID, "new", d.ID)
	}
	t.ds.dialog = &d
	t.dialogMu.Unlock()
	t.emit(d)
}

// closeDialog forgets the open dialog, if any, and reports it closed.
func (t *Tab) closeDialog() {
	t.dialogMu.Lock()
	d := t.ds.dialog
	t.ds.dialog = nil
	t.dialogMu.Unlock()
	if d != nil {
		t.emit(Event{Type: EventDialogClosed, ID: d.ID})
	}
}

// onMainFrameNavigated forgets what belonged to the document that is gone:
// its dialog and the sign-ins of its requests (Chromium has cancelled them,
// and says nothing of it through Fetch).
func (t *Tab) onMainFrameNavigated() {
	t.closeDialog()
	t.dialogMu.Lock()
	gone := t.ds.auths
	t.ds.auths = nil
	t.dialogMu.Unlock()
	for _, a := range gone {
		t.emit(Event{Type: EventDialogClosed, ID: a.ev.ID})
	}
}

// onRequestPaused runs on the listener for every document request: they
// pause only so that sign-in can be asked, and go on at once, but for the
// navigation to a file View opens.
func (t *Tab) onRequestPaused(ev *fetch.EventRequestPaused) {
	if v := t.takeView(ev); v != nil {
		go t.fulfillView(ev.RequestID, v)
		return
	}
	go t.call(t.ctx, fetch.CommandContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
}

// onAuthRequired runs on the listener: it records the sign-in and reports it.
func (t *Tab) onAuthRequired(ev *fetch.EventAuthRequired) {
	ch := ev.AuthChallenge
	if ch == nil || ch.Source == fetch.AuthChallengeSourceProxy {
		// The isolated browser's proxy is Glovebox's egress proxy: a proxy
		// that asks for credentials is not one the user should sign in to.
		go t.answerAuth(ev.RequestID, fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth})
		return
	}
	u := ""
	if ev.Request != nil {
		u = cut(ev.Request.URL, maxDialogURL)
	}
	t.dialogMu.Lock()
	if len(t.ds.auths) >= maxPendingAuth {
		t.dialogMu.Unlock()
		t.log.Info("sign-in refused: too many waiting", "max", maxPendingAuth)
		go t.answerAuth(ev.RequestID, fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth})
		return
	}
	t.ds.seq++
	a := Event{Type: EventAuth, ID: "a" + strconv.FormatUint(t.ds.seq, 10), URL: u,
		Realm: cut(ch.Realm, MaxDialogText), Scheme: cut(ch.Scheme, 64)}
	t.ds.auths = append(t.ds.auths, authWait{ev: a, req: ev.RequestID})
	t.dialogMu.Unlock()
	t.emit(a)
}

func (t *Tab) answerAuth(req fetch.RequestID, resp fetch.AuthChallengeResponse) error {
	return t.call(t.ctx, fetch.CommandContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: req, AuthChallengeResponse: &resp})
}

// Pending returns the open dialog and the sign-ins waiting for an answer,
// as the events that reported them, oldest first.
func (t *Tab) Pending() []Event {
	t.dialogMu.Lock()
	defer t.dialogMu.Unlock()
	var out []Event
	for _, a := range t.ds.auths {
		out = append(out, a.ev)
	}
	if t.ds.dialog != nil {
		out = append(out, *t.ds.dialog)
	}
	return out
}

// AnswerDialog answers the open JavaScript dialog id: accept is OK (Leave for
// beforeunload), text what a prompt returns when accepted. An id that is not
// the open dialog's gets ErrNoDialog.
func (t *Tab) AnswerDialog(ctx context.Context, id string, accept bool, text string) error {
	if len(text) > MaxDialogText || !utf8.ValidString(text) {
		return fmt.Errorf("%w: dialog answer: at most %d bytes of UTF-8", ErrBadInput, MaxDialogText)
	}
	t.dialogMu.Lock()
	d := t.ds.dialog
	t.dialogMu.Unlock()
	if d == nil || d.ID != id {
		return fmt.Errorf("answer dialog %q: %w", id, ErrNoDialog)
	}
	p := page.HandleJavaScriptDialogParams{Accept: accept}
	if accept && d.Dialog == string(page.DialogTypePrompt) {
		p.PromptText = text
	}
	if err := t.call(ctx, page.CommandHandleJavaScriptDialog, p); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		// Chromium refuses when no dialog is showing: it went as the
		// answer came.
		t.closeDialog()
		return fmt.Errorf("answer dialog %q: %w: %w", id, ErrNoDialog, err)
	}
	return nil
}

// AnswerAuth answers the sign-in id with a user name and password, or, with
// cancel, lets the page have the server's 401 response. An id that is not
// waiting gets ErrNoDialog. The password goes to Chromium only: it is never
// logged, nor kept.
func (t *Tab) AnswerAuth(ctx context.Context, id, user, pass string, cancel bool) error {
	if len(user) > MaxAuthField || len(pass) > MaxAuthField || !utf8.ValidString(user) || !utf8.ValidString(pass) {
		return fmt.Errorf("%w: sign-in: user and password are at most %d bytes of UTF-8", ErrBadInput, MaxAuthField)
	}
	t.dialogMu.Lock()
	var req fetch.RequestID
	for i, a := range t.ds.auths {
		if a.ev.ID == id {
			req = a.req
			t.ds.auths = append(t.ds.auths[:i:i], t.ds.auths[i+1:]...)
			break
		}
	}
	t.dialogMu.Unlock()
	if req == "" {
		return fmt.Errorf("answer sign-in %q: %w", id, ErrNoDialog)
	}
	resp := fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
	if !cancel {
		resp = fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: pass}
	}
	err := t.call(ctx, fetch.CommandContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: req, AuthChallengeResponse: &resp})
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		// The request is gone (the page navigated away meanwhile).
		return fmt.Errorf("answer sign-in %q: %w", id, ErrNoDialog)
	}
	return nil
}
