package render

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
)

// MaxViewBytes bounds a file View shows: it crosses DevTools in one
// message.
const MaxViewBytes = 32 << 20

// viewState is the file View is showing, until Chromium has asked for it.
type viewState struct {
	url  string // without its fragment, as Fetch reports requests
	mime string
	body []byte
	done chan struct{} // closed once answered
}

// Viewable tells whether View shows files of type mime in Chromium's own
// viewers: PDFs, images, plain text. Other types would be downloaded again.
func Viewable(mime string) bool {
	switch {
	case mime == "application/pdf", mime == "text/plain":
		return true
	case strings.HasPrefix(mime, "image/"):
		return mime != "image/x-icon" && mime != "image/vnd.microsoft.icon"
	}
	return false
}

// View navigates the page to rawURL (http or https) and shows body there
// as if the site had sent it inline with type mime (see Viewable): a PDF in
// Chromium's viewer, an image, text. Nothing is fetched from rawURL: Fetch
// answers the navigation with body. It is how a file the page downloaded
// opens read-only in the isolated browser. View returns once Chromium has
// the file, and the navigation goes on as any other.
func (t *Tab) View(ctx context.Context, rawURL, mime string, body []byte) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: view: %q is not an http or https URL", ErrBadInput, rawURL)
	}
	if !Viewable(mime) {
		return fmt.Errorf("%w: view: %s files have no viewer", ErrBadInput, mime)
	}
	if len(body) > MaxViewBytes {
		return fmt.Errorf("%w: view: the file is larger than %d MB", ErrBadInput, MaxViewBytes>>20)
	}
	u.Fragment, u.RawFragment = "", ""
	// One at a time, from enabling interception to disabling it: a
	// second View must not find it switched off under its navigation.
	t.viewMu.Lock()
	defer t.viewMu.Unlock()
	v := &viewState{url: u.String(), mime: mime, body: body, done: make(chan struct{})}
	t.dialogMu.Lock()
	t.ds.view = v
	t.dialogMu.Unlock()
	defer func() {
		t.dialogMu.Lock()
		if t.ds.view == v {
			t.ds.view = nil
		}
		t.dialogMu.Unlock()
		if !t.opt.HTTPAuth {
			// Back to no interception at all (with HTTPAuth, documents
			// pause anyway and fetchPatterns stay).
			if err := t.call(t.ctx, fetch.CommandDisable, nil); err != nil && t.ctx.Err() == nil {
				t.log.Debug("view: disable Fetch", "err", err)
			}
		}
	}()
	if !t.opt.HTTPAuth {
		if err := t.call(ctx, fetch.CommandEnable, fetch.EnableParams{Patterns: fetchPatterns}); err != nil {
			return fmt.Errorf("view: %w", err)
		}
	}
	res := new(page.NavigateResult)
	if err := t.callResult(ctx, page.CommandNavigate, page.NavigateParams{URL: rawURL}, res); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	if res.ErrorText != "" {
		return fmt.Errorf("view: %s", res.ErrorText)
	}
	select {
	case <-v.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("view: %w", ctx.Err())
	case <-t.done:
		return ErrClosed
	}
}

// takeView returns the file being viewed when the paused request ev is
// its navigation (the main frame's document, not a frame of the page's
// at the same URL), and forgets it.
func (t *Tab) takeView(ev *fetch.EventRequestPaused) *viewState {
	if ev.Request == nil || ev.ResponseStatusCode != 0 || ev.ResponseErrorReason != "" || ev.ResourceType != network.ResourceTypeDocument {
		return nil
	}
	t.mu.Lock()
	main := ev.FrameID == t.mainFrame
	t.mu.Unlock()
	if !main {
		return nil
	}
	t.dialogMu.Lock()
	defer t.dialogMu.Unlock()
	v := t.ds.view
	if v == nil || ev.Request.URL != v.url || ev.Request.Method != "GET" {
		return nil
	}
	t.ds.view = nil
	return v
}

// fulfillView answers the paused navigation req with v's file.
func (t *Tab) fulfillView(req fetch.RequestID, v *viewState) {
	defer close(v.done)
	h := []*fetch.HeaderEntry{
		{Name: "Content-Type", Value: v.mime},
		{Name: "Content-Length", Value: strconv.Itoa(len(v.body))},
		{Name: "Cache-Control", Value: "no-store"},
		{Name: "X-Content-Type-Options", Value: "nosniff"},
	}
	if v.mime != "application/pdf" {
		// An image or text has no use for scripts (an SVG could carry
		// some). The PDF viewer is a plugin, which sandbox would block.
		h = append(h, &fetch.HeaderEntry{Name: "Content-Security-Policy", Value: "sandbox"})
	}
	err := t.call(t.ctx, fetch.CommandFulfillRequest, fetch.FulfillRequestParams{
		RequestID: req, ResponseCode: 200, ResponseHeaders: h,
		Body: v.body,
	})
	if err != nil && t.ctx.Err() == nil {
		t.log.Warn("view: answer the navigation", "err", err)
	}
}
