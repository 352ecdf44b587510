package tab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/scan"
	"github.com/glovebox/glovebox/render"
)

// What crosses by the clipboard and the keyboard, under the tab's
// controls: clipboard_out decides the user's Copy of the remote
// selection (allow: to the user's clipboard; isolated: to a clipboard
// Glovebox keeps for the user, which only their isolated tabs paste from;
// deny: nowhere), clipboard_in the user's paste (allow: the user's text;
// isolated: the isolated clipboard's; deny: nothing); keyboard: deny
// drops typing, leaving the keys that scroll.

// isolatedClipboards are the users' isolated clipboards, by owner.
type isolatedClipboards struct {
	mu   sync.Mutex
	text map[string]string
}

func (c *isolatedClipboards) set(owner, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.text == nil {
		c.text = map[string]string{}
	}
	c.text[owner] = text
}

func (c *isolatedClipboards) get(owner string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.text[owner]
}

// notice tells the landing page, in a short toast, what policy stopped.
func (t *Tab) notice(msg string) {
	t.send(serverMsg{T: "notice", Message: msg})
}

// auditClipboard logs a copy or paste of text (whose words the audit log
// keeps only under audit.clipboard_content).
func (t *Tab) auditClipboard(direction, text, decision, reason string) {
	t.m.audit.Clipboard(audit.ClipboardEvent{Tab: t.id, ClientIP: t.clientIP, User: t.user, URL: t.logURL, Host: t.host,
		Direction: direction, Kind: audit.ClipboardText, Size: len(text), Decision: decision, Reason: reason, Text: text})
}

// auditClipboardImage logs a copy or paste of an image of size bytes.
func (t *Tab) auditClipboardImage(direction string, size int, decision, reason string) {
	t.m.audit.Clipboard(audit.ClipboardEvent{Tab: t.id, ClientIP: t.clientIP, User: t.user, URL: t.logURL, Host: t.host,
		Direction: direction, Kind: audit.ClipboardImage, Size: size, Decision: decision, Reason: reason})
}

// ErrPasteDenied is the error of a paste the tab's controls (or the
// scanner) refuse; ErrPasteUnscanned of one the scanner could not check.
var (
	ErrPasteDenied    = errors.New("pasting images into this site is not allowed")
	ErrPasteUnscanned = errors.New("the image could not be checked for viruses")
)

// copyImage answers the user's Copy image (the context menu's, on an
// image): under clipboard_out: allow the image's pixels, as the page shows
// them, go to the user's clipboard through a one-time URL, as a download
// would; images never go to the isolated clipboard.
func (t *Tab) copyImage(ctx context.Context, x, y float64) error {
	if t.Controls().ClipboardOut != policy.ClipboardAllow {
		t.auditClipboardImage(audit.ClipboardOut, 0, audit.FileDenied, "policy")
		t.notice("Copying images from this site is not allowed.")
		return nil
	}
	png, err := t.page.CopyImage(ctx, x, y)
	if err != nil {
		if errors.Is(err, render.ErrBadInput) {
			return nil // the image went away
		}
		return err
	}
	f, err := t.m.keep(png)
	if err != nil {
		return err
	}
	key := t.m.offer(&Offer{tab: t, owner: t.owner, path: f.path, Name: "image.png", MIME: "image/png", Size: f.size})
	if key == "" {
		os.Remove(f.path)
		return nil
	}
	t.auditClipboardImage(audit.ClipboardOut, len(png), audit.FileAllowed, "")
	t.send(serverMsg{T: "copy-image", URL: FilesPrefix + key})
	return nil
}

// PasteImage gives the remote page the user's paste of an image (a
// screenshot, say) of type mime, as a paste event carrying it, under
// clipboard_in: allow; images never come from the isolated clipboard. A
// pasted image is a file reaching the page too: upload's decision applies
// (deny, upload_max_mb, scan), and its bytes must be the image it says.
func (t *Tab) PasteImage(ctx context.Context, mime string, data []byte) error {
	c := t.Controls()
	if c.Keyboard == policy.FileDeny || c.ClipboardIn != policy.ClipboardAllow || c.Upload == policy.FileDeny {
		t.auditClipboardImage(audit.ClipboardIn, len(data), audit.FileDenied, "policy")
		return ErrPasteDenied
	}
	if sniffed := sniffMIME(data); sniffed != mime {
		t.auditClipboardImage(audit.ClipboardIn, len(data), audit.FileDenied, "not an image")
		return fmt.Errorf("%w: the image is %s, not %s", ErrBadRequest, sniffed, mime)
	}
	if max := int64(c.UploadMaxMB) << 20; max > 0 && int64(len(data)) > max {
		t.auditClipboardImage(audit.ClipboardIn, len(data), audit.FileDenied, "too large")
		return fmt.Errorf("%w: the image is larger than %d MB, the most this site may receive", ErrBadRequest, c.UploadMaxMB)
	}
	if c.Upload == policy.FileScan {
		f, err := t.m.keep(data)
		if err != nil {
			return err
		}
		v, err := t.m.scanFile(ctx, f, scan.File{Direction: scan.Upload, Name: "image", MIME: mime, Size: f.size, URL: logURLOf(t.page.URL())})
		os.Remove(f.path)
		switch {
		case err != nil:
			t.log.Warn("pasted image not scanned: refused", "err", err)
			t.auditClipboardImage(audit.ClipboardIn, len(data), audit.FileDenied, "scanner unavailable")
			return ErrPasteUnscanned
		case !v.Clean:
			t.auditClipboardImage(audit.ClipboardIn, len(data), audit.FileDenied, "threat found")
			return ErrPasteDenied
		}
	}
	if err := t.page.PasteImage(ctx, data, mime); err != nil {
		if errors.Is(err, render.ErrBadInput) {
			return fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return err
	}
	t.auditClipboardImage(audit.ClipboardIn, len(data), audit.FileAllowed, "")
	return nil
}

// copySelection answers the user's Copy (the context menu's, Ctrl+C): the
// remote page's selected text goes where clipboard_out says.
func (t *Tab) copySelection(ctx context.Context) error {
	text, err := t.page.SelectedText(ctx)
	if err != nil {
		return err
	}
	t.copyOut(text)
	return nil
}

// onRemoteCopy follows the page's own Copy (a Copy button: the async
// Clipboard API, on the user's click): its text goes where clipboard_out
// says, as the user's Copy would.
func (t *Tab) onRemoteCopy(text string) {
	// The agent lets one copy through per input of the user's; this bounds
	// a page that fakes its reports.
	if t.once(&t.lastRemoteCopy, remoteCopyEvery) {
		t.copyOut(text)
	}
}

// once says whether what last happened at *last may happen again, every
// at most, and if so notes now.
func (t *Tab) once(last *time.Time, every time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(*last) < every {
		return false
	}
	*last = time.Now()
	return true
}

// remoteCopyEvery bounds the remote page's own copies, and its prints.
const remoteCopyEvery = 500 * time.Millisecond

// copyOut sends text copied in the remote page where clipboard_out says.
func (t *Tab) copyOut(text string) {
	if text == "" {
		return
	}
	switch t.Controls().ClipboardOut {
	case policy.ClipboardAllow:
		t.auditClipboard(audit.ClipboardOut, text, audit.FileAllowed, "")
		b, _ := json.Marshal(agentMsg{T: "copy", Text: text})
		if p := t.currentPeer(); p != nil {
			p.Send(b)
		}
	case policy.ClipboardIsolated:
		t.m.clips.set(t.owner, text)
		t.auditClipboard(audit.ClipboardOut, text, audit.FileAllowed, "isolated")
		t.notice("Copied. This site's text can be pasted only into isolated pages.")
	default:
		t.auditClipboard(audit.ClipboardOut, text, audit.FileDenied, "policy")
		t.notice("Copying from this site is not allowed.")
	}
}

// paste gives the remote page the user's paste, as a paste event: text is
// the user's clipboard, which clipboard_in may replace or refuse.
func (t *Tab) paste(ctx context.Context, text string) error {
	if t.Controls().Keyboard == policy.FileDeny {
		t.keyboardNotice()
		return nil
	}
	switch t.Controls().ClipboardIn {
	case policy.ClipboardAllow:
	case policy.ClipboardIsolated:
		text = t.m.clips.get(t.owner)
		if text == "" {
			t.notice("Only text copied in an isolated page can be pasted here.")
			return nil
		}
	default:
		t.auditClipboard(audit.ClipboardIn, text, audit.FileDenied, "policy")
		t.notice("Pasting into this site is not allowed.")
		return nil
	}
	if text == "" || !utf8.ValidString(text) {
		return nil
	}
	reason := ""
	if t.Controls().ClipboardIn == policy.ClipboardIsolated {
		reason = "isolated"
	}
	t.auditClipboard(audit.ClipboardIn, text, audit.FileAllowed, reason)
	return t.page.Paste(ctx, text)
}

// keyboardNotice says, once a tab, that typing is off.
func (t *Tab) keyboardNotice() {
	t.mu.Lock()
	told := t.toldKeyboard
	t.toldKeyboard = true
	t.mu.Unlock()
	if !told {
		t.notice("This site is read-only: typing is turned off. You can still scroll and click.")
	}
}

// scrollKeys are the keys keyboard: deny still lets through, without
// Ctrl, Alt or Meta: they scroll and move, and type nothing.
var scrollKeys = map[string]bool{"ArrowUp": true, "ArrowDown": true, "ArrowLeft": true, "ArrowRight": true,
	"PageUp": true, "PageDown": true, "Home": true, "End": true, "Escape": true, "Shift": true}

// keyAllowed says whether keyboard controls let m (a key, text or compose
// message) through.
func (t *Tab) keyAllowed(m clientMsg) bool {
	if t.Controls().Keyboard != policy.FileDeny {
		return true
	}
	if m.T == "key" && scrollKeys[m.Key] && m.Mods&^render.ModShift == 0 {
		return true
	}
	if m.T == "key" && m.Type == "down" {
		t.keyboardNotice()
	}
	return false
}
