package render

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// EventDownload is sent when a download of the browser began, made
// progress, completed or was cancelled (Download says which). Only the
// browser's first Tab (Options.TargetID empty, Options.DownloadDir set)
// sends them, for every page of the browser: its popups' too.
const EventDownload EventType = "download"

// States of a Download.
const (
	DownloadStarted   = "started"
	DownloadProgress  = "progress"
	DownloadCompleted = "completed"
	DownloadCanceled  = "canceled"
)

// Download is what EventDownload tells.
type Download struct {
	// GUID names the download. Its file, once completed, is GUID in
	// Options.DownloadDir: render checks that it is a plain GUID, so that
	// it names no other path.
	GUID string
	// URL and Name are where the file comes from and the name the page
	// suggests for it (the page's words: the caller makes it safe), set in
	// the started event.
	URL, Name string
	// State is one of the Download* states; Received and Total are bytes
	// (Total is 0 when the server did not say).
	State           string
	Received, Total int64
}

// downloadProgressEvery bounds how often progress is reported per download.
const downloadProgressEvery = 250 * time.Millisecond

// maxDownloads bounds the downloads render keeps track of at once; past
// it, new ones are cancelled.
const maxDownloads = 64

// downloads is the state of the browser's downloads, for one Tab.
type downloads struct {
	mu   sync.Mutex
	last map[string]time.Time // by GUID: when progress was last reported
}

// enableDownloads makes the browser save downloads into dir (a path as the
// browser sees it), named by their GUIDs, and report them.
// ctx is a context of the browser connection (t.bctx or one of its own).
func (t *Tab) enableDownloads(ctx context.Context, dir string) error {
	if err := chromedp.ListenBrowser(t.bctx, t.onBrowserEvent); err != nil {
		return fmt.Errorf("listen for downloads: %w", err)
	}
	_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true),
	})
	if err != nil {
		return fmt.Errorf("set download behaviour: %w", err)
	}
	return nil
}

// denyDownloads makes the browser refuse every download.
func (t *Tab) denyDownloads(ctx context.Context) error {
	_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorDeny,
	})
	if err != nil {
		return fmt.Errorf("deny downloads: %w", err)
	}
	return nil
}

// onBrowserEvent is the browser connection's listener: it reports
// downloads. Like onCDPEvent it runs no command.
func (t *Tab) onBrowserEvent(ev any) {
	switch ev := ev.(type) {
	case *cdpbrowser.EventDownloadWillBegin:
		if !validGUID(ev.GUID) {
			t.log.Warn("download with a malformed id ignored")
			return
		}
		t.dl.mu.Lock()
		if t.dl.last == nil {
			t.dl.last = map[string]time.Time{}
		}
		_, dup := t.dl.last[ev.GUID]
		full := len(t.dl.last) >= maxDownloads
		if !dup && !full {
			t.dl.last[ev.GUID] = time.Time{}
		}
		t.dl.mu.Unlock()
		if dup {
			return
		}
		if full {
			t.log.Warn("too many downloads at once: one cancelled")
			go t.CancelDownload(t.ctx, ev.GUID)
			return
		}
		t.emit(Event{Type: EventDownload, URL: ev.URL, Download: &Download{GUID: ev.GUID, URL: ev.URL, Name: ev.SuggestedFilename, State: DownloadStarted}})

	case *cdpbrowser.EventDownloadProgress:
		now := time.Now()
		t.dl.mu.Lock()
		last, ok := t.dl.last[ev.GUID]
		var state string
		switch ev.State {
		case cdpbrowser.DownloadProgressStateCompleted:
			state = DownloadCompleted
		case cdpbrowser.DownloadProgressStateCanceled:
			state = DownloadCanceled
		default:
			state = DownloadProgress
			if ok && now.Sub(last) < downloadProgressEvery {
				ok = false // reported a moment ago
			} else if ok {
				t.dl.last[ev.GUID] = now
			}
		}
		if ok && state != DownloadProgress {
			delete(t.dl.last, ev.GUID)
		}
		t.dl.mu.Unlock()
		if !ok {
			return
		}
		t.emit(Event{Type: EventDownload, Download: &Download{GUID: ev.GUID, State: state,
			Received: bytesOf(ev.ReceivedBytes), Total: bytesOf(ev.TotalBytes)}})
	}
}

// bytesOf is a byte count of the protocol (a float) as an int64, 0 when
// it is not a sane count.
func bytesOf(f float64) int64 {
	if math.IsNaN(f) || f < 0 || f > 1<<53 {
		return 0
	}
	return int64(f)
}

// validGUID says whether s is a GUID as Chromium writes them (8-4-4-4-12
// lowercase hex digits), and so a file name of nothing but that.
func validGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// CancelDownload cancels the download guid if it is still in progress. Its
// partial file is the caller's to remove.
func (t *Tab) CancelDownload(ctx context.Context, guid string) error {
	if !validGUID(guid) {
		return fmt.Errorf("%w: download id %q", ErrBadInput, guid)
	}
	if t.bctx == nil {
		return ErrClosed
	}
	cctx, cancel := context.WithTimeout(t.bctx, closeTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if _, err := chromedp.CallBrowser(cctx, cdpbrowser.CancelDownload, cdpbrowser.CancelDownloadParams{GUID: guid}); err != nil {
		return fmt.Errorf("cancel download: %w", err)
	}
	return nil
}

// MaxPrintBytes bounds the PDF PrintPDF returns.
const MaxPrintBytes = 64 << 20

// PrintPDF prints the page to PDF, with its backgrounds, as the user's
// Print would.
func (t *Tab) PrintPDF(ctx context.Context) ([]byte, error) {
	res := new(page.PrintToPDFResult)
	if err := t.callResult(ctx, page.CommandPrintToPDF, page.PrintToPDFParams{PrintBackground: new(true)}, res); err != nil {
		return nil, fmt.Errorf("print: %w", err)
	}
	if len(res.Data) > MaxPrintBytes {
		return nil, fmt.Errorf("print: the PDF is larger than %d MB", MaxPrintBytes>>20)
	}
	return res.Data, nil
}
