package tab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/scan"
	"github.com/glovebox/glovebox/render"
)

// Downloads. The remote browser saves a file into its files directory
// (isolate.Browser.FilesDir), named by its GUID. Once it is complete,
// Glovebox moves it out of the browser's reach (a compromised browser
// could change it after the scan), hashes it, scans it when the rule says
// scan, and decides; an allowed file is offered to the landing page at a
// one-time URL (/.glovebox/files/{key}) that only the tab's owner can
// fetch, once. Nothing is kept: the browser's copy goes at once, Glovebox's
// when it is delivered, when the offer expires or when the tab ends.

// FilesPrefix is the path of the one-time URLs of files offered to users.
const FilesPrefix = audit.FilesPrefix

// offerTTL is how long a file offered to the user waits to be fetched.
const offerTTL = 10 * time.Minute

// maxNameBytes bounds a file name as the user's browser saves it.
const maxNameBytes = 200

// The states of a download in the landing page's messages.
const (
	dlProgress = "progress" // the remote browser is fetching it
	dlChecking = "checking" // complete: Glovebox hashes and scans it
	dlReady    = "ready"    // offered at URL
	dlRefused  = "refused"  // Message says why
	dlViewed   = "viewed"   // opened in the isolated browser (download: view)
	dlFailed   = "failed"   // the remote browser could not fetch it
)

// download is one download of the tab's browser, by GUID, under t.mu.
type download struct {
	id       string // the landing page's name for it (not the GUID)
	guid     string
	url      string // where the browser fetched it from: never logged
	name     string // safe for the user's file system
	logURL   string
	host     string
	received int64
	total    int64
	refused  bool // Glovebox cancelled it
}

// Offer is a file offered to a tab's user, until fetched once.
type Offer struct {
	tab     *Tab
	owner   string
	path    string // Glovebox's copy
	Name    string
	MIME    string
	Size    int64
	expires time.Time
}

// downloadMsg is the landing page's message about a download.
func downloadMsg(d *download, state, msg, u string) serverMsg {
	return serverMsg{T: "download", ID: d.id, Name: d.name, Size: d.total, Received: d.received,
		State: state, Message: msg, URL: u}
}

// onDownload follows the browser's downloads. It runs on render's event
// callback: what takes time (cancelling, reading the file) goes to a
// goroutine.
func (t *Tab) onDownload(ev *render.Download) {
	if ev == nil {
		return
	}
	c := t.Controls()
	max := int64(c.DownloadMaxMB) << 20
	t.mu.Lock()
	if t.downloads == nil {
		t.downloads = map[string]*download{}
	}
	d := t.downloads[ev.GUID]
	if ev.State == render.DownloadStarted {
		if d != nil {
			t.mu.Unlock()
			return
		}
		d = &download{id: randomHex(8), guid: ev.GUID, url: ev.URL, name: safeFileName(ev.Name, ev.URL)}
		if u, err := url.Parse(ev.URL); err == nil {
			d.logURL, d.host = audit.LogURL(u), u.Hostname()
		}
		t.downloads[ev.GUID] = d
	}
	if d == nil || d.refused {
		t.mu.Unlock()
		return
	}
	d.received, d.total = max64(d.received, ev.Received), max64(d.total, ev.Total)
	snap := *d
	t.mu.Unlock()

	refuse := func(reason, msg string) {
		t.mu.Lock()
		d.refused = true
		t.mu.Unlock()
		go t.cancelDownload(snap.guid)
		t.auditDownload(&snap, audit.FileDenied, reason, "", scan.Verdict{}, "", "")
		t.send(downloadMsg(&snap, dlRefused, msg, ""))
	}
	switch {
	case ev.State == render.DownloadStarted && c.Download == policy.FileDeny:
		refuse("policy", "Downloads are not allowed on this site.")
	case max > 0 && (snap.total > max || snap.received > max):
		refuse("too large", fmt.Sprintf("The file is larger than %d MB, the most this site may download.", c.DownloadMaxMB))
	case ev.State == render.DownloadCanceled:
		t.forgetDownload(snap.guid)
		t.removeBrowserFile(snap.guid)
		t.send(downloadMsg(&snap, dlFailed, "The download failed in the isolated browser.", ""))
	case ev.State == render.DownloadCompleted:
		t.send(downloadMsg(&snap, dlChecking, "", ""))
		go t.deliver(snap, c)
	default:
		t.send(downloadMsg(&snap, dlProgress, "", ""))
	}
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// cancelDownload stops the browser's download guid and removes its file.
func (t *Tab) cancelDownload(guid string) {
	if t.page != nil {
		if err := t.page.CancelDownload(t.ctx, guid); err != nil && t.ctx.Err() == nil {
			t.log.Debug("cancel download", "err", err)
		}
	}
	t.removeBrowserFile(guid)
}

func (t *Tab) forgetDownload(guid string) {
	t.mu.Lock()
	delete(t.downloads, guid)
	t.mu.Unlock()
}

// browserFile is the path of the browser's file guid on the host, or ""
// when the browser has no files directory.
func (t *Tab) browserFile(guid string) string {
	if t.browser == nil || t.browser.FilesDir == "" {
		return ""
	}
	return filepath.Join(t.browser.FilesDir, guid) // render checked guid: a bare GUID
}

func (t *Tab) removeBrowserFile(guid string) {
	if p := t.browserFile(guid); p != "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.log.Warn("remove a download from the browser", "err", err)
		}
	}
}

// deliver takes a completed download from the browser, checks it and
// offers it to the user, or says why not.
func (t *Tab) deliver(d download, c policy.Controls) {
	defer t.forgetDownload(d.guid)
	// Refusals before Glovebox has the file; decide makes the others.
	fail := func(reason, msg string) {
		t.auditDownload(&d, audit.FileDenied, reason, "", scan.Verdict{}, "", "")
		t.send(downloadMsg(&d, dlRefused, msg, ""))
	}
	max := int64(c.DownloadMaxMB) << 20
	f, err := t.m.take(t.browserFile(d.guid), max)
	t.removeBrowserFile(d.guid)
	switch {
	case errors.Is(err, errTooLarge):
		fail("too large", fmt.Sprintf("The file is larger than %d MB, the most this site may download.", c.DownloadMaxMB))
		return
	case err != nil:
		t.log.Warn("take a download from the browser", "err", err)
		fail("failed", "The download could not be taken from the isolated browser.")
		return
	}
	t.decide(d, c, f, audit.EventDownload)
}

// decide checks Glovebox's copy f of a file for the user (a download, or
// a page printed: event) under download's decision, and offers it or says
// why not.
func (t *Tab) decide(d download, c policy.Controls, f *taken, event string) {
	d.total, d.received = f.size, f.size
	fail := func(reason, msg string, v scan.Verdict, verdict string) {
		os.Remove(f.path)
		t.auditFile(event, &d, audit.FileDenied, reason, verdict, v, f.sha256, f.mime)
		t.send(downloadMsg(&d, dlRefused, msg, ""))
	}
	var v scan.Verdict
	var err error
	verdict := ""
	switch c.Download {
	case policy.FileDeny:
		fail("policy", "Downloads are not allowed on this site.", v, "")
		return
	case policy.FileView:
		if event != audit.EventDownload {
			fail("view only", "Files of this site open only in the isolated browser: they cannot be downloaded.", v, "")
			return
		}
		t.view(d, f, fail)
		return
	case policy.FileScan:
		v, err = t.m.scanFile(t.ctx, f, scan.File{Direction: scan.Download, Name: d.name, MIME: f.mime, Size: f.size, URL: d.logURL})
		switch {
		case err != nil:
			t.log.Warn("download not scanned: refused", "err", err)
			fail("scanner unavailable", "The file could not be checked for viruses (the scanner is unavailable), so it was not downloaded.", v, "error")
			return
		case !v.Clean:
			fail("threat found", "The file was blocked: the virus scanner found "+v.Threat+".", v, "infected")
			return
		}
		verdict = "clean"
	}
	if max := int64(c.DownloadMaxMB) << 20; max > 0 && f.size > max {
		fail("too large", fmt.Sprintf("The file is larger than %d MB, the most this site may download.", c.DownloadMaxMB), v, verdict)
		return
	}
	t.auditFile(event, &d, audit.FileAllowed, "", verdict, v, f.sha256, f.mime)
	key := t.m.offer(&Offer{tab: t, owner: t.owner, path: f.path, Name: d.name, MIME: f.mime, Size: f.size})
	if key == "" {
		os.Remove(f.path)
		t.send(downloadMsg(&d, dlRefused, "The isolated tab has ended.", ""))
		return
	}
	t.send(downloadMsg(&d, dlReady, "", FilesPrefix+key))
}

// view opens Glovebox's copy f of a download in the isolated browser, at
// the URL it came from (download: view): a PDF in Chromium's viewer, an
// image, text. The user sees it there, as pixels; the file itself goes no
// further, and Glovebox's copy goes at once.
func (t *Tab) view(d download, f *taken, fail func(reason, msg string, v scan.Verdict, verdict string)) {
	const only = "Files of this site open only in the isolated browser: "
	u, err := url.Parse(d.url)
	switch {
	case !render.Viewable(f.mime):
		fail("view only", only+"this kind of file ("+f.mime+") cannot be opened there, so it was not downloaded.", scan.Verdict{}, "")
		return
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		fail("view only", only+"this one was made by the page itself and cannot be opened there.", scan.Verdict{}, "")
		return
	case f.size > render.MaxViewBytes:
		fail("view only", fmt.Sprintf(only+"this one is larger than the %d MB that can be.", render.MaxViewBytes>>20), scan.Verdict{}, "")
		return
	case t.page == nil:
		fail("failed", "The isolated tab has ended.", scan.Verdict{}, "")
		return
	}
	body, err := os.ReadFile(f.path)
	os.Remove(f.path)
	if err != nil {
		t.log.Warn("read a download to view", "err", err)
		fail("failed", "The file could not be opened in the isolated browser.", scan.Verdict{}, "")
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	if err := t.page.View(ctx, d.url, f.mime, body); err != nil {
		if t.ctx.Err() == nil {
			t.log.Warn("view a download", "err", err)
		}
		fail("failed", "The file could not be opened in the isolated browser.", scan.Verdict{}, "")
		return
	}
	t.auditFile(audit.EventDownload, &d, audit.FileViewed, "view only", "", scan.Verdict{}, f.sha256, f.mime)
	t.send(downloadMsg(&d, dlViewed, "Opened here, in the isolated tab: files of this site can be viewed, not downloaded.", ""))
}

func (t *Tab) auditDownload(d *download, decision, reason, verdict string, v scan.Verdict, sum, mt string) {
	t.auditFile(audit.EventDownload, d, decision, reason, verdict, v, sum, mt)
}

func (t *Tab) auditFile(event string, d *download, decision, reason, verdict string, v scan.Verdict, sum, mt string) {
	t.m.audit.File(audit.FileEvent{Event: event, Tab: t.id, ClientIP: t.clientIP, User: t.user,
		URL: d.logURL, Host: d.host, Name: d.name, MIME: mt, Size: d.total, SHA256: sum,
		Decision: decision, Reason: reason, Verdict: verdict, Threat: v.Threat, Scanner: v.Scanner})
}

// taken is a file Glovebox took from a browser: its own copy.
type taken struct {
	path   string
	size   int64
	sha256 string
	mime   string
}

var errTooLarge = errors.New("file too large")

// take copies the browser's file src into Glovebox's files directory,
// hashing it, at most max bytes (0: no limit). src is opened as the file it
// names, never a link, a FIFO or a device the browser put there instead.
func (m *Manager) take(src string, max int64) (*taken, error) {
	if src == "" {
		return nil, errors.New("the browser has no files directory")
	}
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(src))
	}
	if max > 0 && st.Size() > max {
		return nil, errTooLarge
	}
	dir, err := m.filesDir()
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, "file-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	h := sha256.New()
	limit := int64(1<<62 - 1)
	if max > 0 {
		limit = max + 1
	}
	head := &headWriter{}
	n, err := io.Copy(io.MultiWriter(out, h, head), io.LimitReader(in, limit))
	if err != nil {
		return nil, err
	}
	if max > 0 && n > max {
		return nil, errTooLarge
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	ok = true
	return &taken{path: out.Name(), size: n, sha256: hex.EncodeToString(h.Sum(nil)), mime: sniffMIME(head.b)}, nil
}

// headWriter keeps the first 512 bytes written, for sniffing.
type headWriter struct{ b []byte }

func (w *headWriter) Write(p []byte) (int, error) {
	if n := 512 - len(w.b); n > 0 {
		w.b = append(w.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// sniffMIME is the file's type by its content (never by the name the
// site gave it), without parameters.
func sniffMIME(head []byte) string {
	mt, _, err := mime.ParseMediaType(http.DetectContentType(head))
	if err != nil {
		return "application/octet-stream"
	}
	return mt
}

// scanFile scans Glovebox's copy f with the configured scanner.
func (m *Manager) scanFile(ctx context.Context, f *taken, sf scan.File) (scan.Verdict, error) {
	if m.cfg.Scanner == nil {
		return scan.Verdict{}, scan.ErrNoScanner
	}
	in, err := os.Open(f.path)
	if err != nil {
		return scan.Verdict{}, err
	}
	defer in.Close()
	sf.Body = in
	return m.cfg.Scanner.Scan(ctx, sf)
}

// filesDir is Glovebox's own directory of files in transit, made on first
// use (0700) and removed by Close.
func (m *Manager) filesDir() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files != "" {
		return m.files, nil
	}
	dir, err := os.MkdirTemp("", "glovebox-files-")
	if err != nil {
		return "", err
	}
	m.files = dir
	return dir, nil
}

// offer registers o under a new one-time key, or returns "" when its tab
// has ended.
func (m *Manager) offer(o *Offer) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-o.tab.ended:
		return ""
	default:
	}
	if m.offers == nil {
		m.offers = map[string]*Offer{}
	}
	key := m.newToken()
	o.expires = time.Now().Add(offerTTL)
	m.offers[key] = o
	return key
}

// ErrNoFile is the error of a file key that is unknown, used already,
// expired or not the caller's: all alike, so keys cannot be probed.
var ErrNoFile = errors.New("no such file")

// TakeOffer hands the file of key to owner, once: it is no longer offered
// after. Open it with Open; Done removes it.
func (m *Manager) TakeOffer(key, owner string) (*Offer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.offers[key]
	if !ok || o.owner != owner {
		return nil, ErrNoFile
	}
	delete(m.offers, key)
	if time.Now().After(o.expires) {
		os.Remove(o.path)
		return nil, ErrNoFile
	}
	return o, nil
}

// Open opens the offered file.
func (o *Offer) Open() (*os.File, error) { return os.Open(o.path) }

// Done removes the offered file, delivered or not.
func (o *Offer) Done(delivered bool) {
	os.Remove(o.path)
	if delivered {
		o.tab.log.Info("download delivered", "file", o.Name, "size", o.Size)
	}
}

// dropOffers removes the offers of t (every one when t is nil) that have
// expired, or all of them when all is set.
func (m *Manager) dropOffers(t *Tab, all bool) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, o := range m.offers {
		if (t == nil || o.tab == t) && (all || now.After(o.expires)) {
			os.Remove(o.path)
			delete(m.offers, k)
		}
	}
}

// safeFileName makes the name a site suggests for a file safe to save: no
// directories, no control or invisible format characters (a right-to-left
// override could make "gpj.exe" read "exe.jpg"), no leading dots, bounded.
// An empty result falls back to the URL's last segment, then to
// "download".
func safeFileName(name, rawURL string) string {
	clean := func(s string) string {
		s = strings.ToValidUTF8(s, "")
		if i := strings.LastIndexAny(s, `/\`); i >= 0 {
			s = s[i+1:]
		}
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
				return -1
			}
			if strings.ContainsRune(`<>:"|?*`, r) { // Windows refuses these
				return '_'
			}
			return r
		}, s)
		s = strings.TrimLeft(strings.TrimSpace(s), ".")
		s = strings.TrimRight(s, ". ")
		for len(s) > maxNameBytes {
			_, n := utf8.DecodeLastRuneInString(s)
			s = s[:len(s)-n]
		}
		return s
	}
	if s := clean(name); s != "" {
		return s
	}
	if u, err := url.Parse(rawURL); err == nil {
		if seg, err := url.PathUnescape(path.Base(u.Path)); err == nil {
			if s := clean(seg); s != "" {
				return s
			}
		}
	}
	return "download"
}
