package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/internal/icaptest"
	"github.com/glovebox/glovebox/render"
)

// The files of the test site's /dl/ (testdata/site/downloads.html links
// to them).
var (
	cleanFile = []byte(strings.Repeat("Quarterly report: nothing to see here.\n", 400))
	// eicarFile is the EICAR anti-virus test file, which every scanner
	// reports as a threat and which harms nothing.
	eicarFile = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)
	bigFile   = bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16) // 2 MiB
	// zipFile is an empty zip archive: a type with no viewer.
	zipFile = []byte("PK\x05\x06" + strings.Repeat("\x00", 18))
	// oddName tries directories, a control character and a right-to-left
	// override in a file name.
	oddName = "../..\\evil\x07\u202etxt.exe"
)

// Where the areas of /downloads are in the user's 800x457 viewport.
var (
	cleanArea = [2]int{200, 100}
	eicarArea = [2]int{600, 100}
	bigArea   = [2]int{200, 350}
	oddArea   = [2]int{600, 350}
)

// serveDownload serves the test site's /dl/ files, as attachments.
func serveDownload(w http.ResponseWriter, r *http.Request) bool {
	name, ok := strings.CutPrefix(r.URL.Path, "/dl/")
	if !ok {
		return false
	}
	var body []byte
	disp := fmt.Sprintf("attachment; filename=%q", name)
	switch name {
	case "report.txt":
		body = cleanFile
	case "eicar.com":
		body = eicarFile
	case "big.bin":
		body = bigFile
	case "orange.pdf":
		body = orangePDF()
	case "archive.zip":
		body = zipFile
	case "odd":
		body = cleanFile
		disp = "attachment; filename*=UTF-8''" + strings.NewReplacer("/", "%2F", "\\", "%5C", "\x07", "%07", "\u202e", "%E2%80%AE").Replace(oddName)
	default:
		http.NotFound(w, r)
		return true
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", disp)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
	return true
}

// orangePDF is a one-page PDF, its page orange.
func orangePDF() []byte {
	content := "1 0.5 0 rg 0 0 612 792 re f"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// userDownloads makes the user's browser save downloads into a directory
// of the test's, which it returns.
func userDownloads(t testing.TB, bctx context.Context) string {
	t.Helper()
	dir := t.TempDir()
	_, err := chromedp.CallBrowser(bctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
	if err != nil {
		t.Fatalf("set the user's download directory: %v", err)
	}
	return dir
}

// savedFiles lists the complete files in dir.
func savedFiles(dir string) []string {
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".crdownload") {
			names = append(names, e.Name())
		}
	}
	return names
}

// downloadBar is what the landing page's download bar shows: one line per
// download, its state and text.
func downloadBar(ctx context.Context) string {
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('.glovebox-download')]
		.map(r => r.dataset.state + ': ' + r.textContent).join('\n')`))
	return s
}

func waitBar(t testing.TB, ctx context.Context, want string) string {
	t.Helper()
	var bar string
	waitFor(t, 60*time.Second, "the download bar to say "+want, func() (bool, string) {
		bar = downloadBar(ctx)
		return strings.Contains(bar, want), bar
	})
	return bar
}

// fileEvents are the audit log's download events.
func fileEvents(g *glovebox, event string) []map[string]any {
	var out []map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == event {
			out = append(out, e)
		}
	}
	return out
}

func waitFileEvent(t testing.TB, g *glovebox, event, name string) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, 60*time.Second, "a "+event+" audit event for "+name, func() (bool, string) {
		evs := fileEvents(g, event)
		for _, e := range evs {
			if e["file_name"] == name {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprint(evs)
	})
	return found
}

// filesLeft lists the files in transit left in Glovebox's own directories
// and in the browsers' files directories (the process runtime's profiles
// under g.tmp).
func filesLeft(g *glovebox) []string {
	var left []string
	own, _ := filepath.Glob(filepath.Join(os.TempDir(), "glovebox-files-*", "*"))
	left = append(left, own...)
	filepath.WalkDir(g.tmp, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "files" {
			left = append(left, p)
		}
		return nil
	})
	return left
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// startDownloads starts Glovebox with the download controls of mutate, the
// user's browser saving into the returned directory, and /downloads open.
func startDownloads(t *testing.T, mutate func(*Config)) (*glovebox, context.Context, string) {
	t.Helper()
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, mutate)
	bctx := userBrowser(t, g.addr)
	dir := userDownloads(t, bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate(site.URL+"/downloads")); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}
	waitForColour(t, bctx, cleanArea[0], cleanArea[1], blue, 60*time.Second)
	return g, bctx, dir
}

// TestDownloadAllow: under download: allow, a file the remote page
// downloads arrives in the user's download directory with its name, size
// and content; the audit event has its hash; the one-time URL cannot be
// used again; a name with directories and control characters arrives
// without them; nothing is left behind.
func TestDownloadAllow(t *testing.T) {
	g, ctx, dir := startDownloads(t, func(c *Config) { c.Proxy.Policy.Defaults.Download = "allow" })

	click(t, ctx, cleanArea)
	waitFor(t, 60*time.Second, "report.txt in the user's downloads", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dir, "report.txt"))
		return err == nil && bytes.Equal(got, cleanFile), fmt.Sprint(savedFiles(dir), downloadBar(ctx))
	})
	bar := waitBar(t, ctx, "saved: report.txt")
	ev := waitFileEvent(t, g, "download", "report.txt")
	if ev["decision"] != "allowed" || ev["sha256"] != sha256Hex(cleanFile) || ev["size"] != float64(len(cleanFile)) ||
		ev["verdict"] != "" || !strings.HasSuffix(ev["url"].(string), "/dl/report.txt") || ev["tab"] == "" {
		t.Errorf("download event = %v, want allowed, the file's size and SHA-256, not scanned, its URL and tab", ev)
	}
	t.Logf("bar: %s", bar)

	// The one-time URL is used: a second fetch gets nothing.
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.glovebox-download').dataset.url`))
	if err != nil || !strings.Contains(href, "/.glovebox/files/") {
		t.Fatalf("the Save link: %q, %v", href, err)
	}
	resp, err := g.proxied.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the used download URL again: HTTP %d, want 404", resp.StatusCode)
	}
	if strings.Contains(g.logs.String()+g.audit.String(), strings.TrimPrefix(href[strings.Index(href, "/files/"):], "/files/")) {
		t.Error("a one-time file key is in the logs")
	}

	// A hostile name: no directories, no control or format characters.
	click(t, ctx, oddArea)
	var odd string
	waitFor(t, 60*time.Second, "the oddly named file in the user's downloads", func() (bool, string) {
		for _, n := range savedFiles(dir) {
			if n != "report.txt" {
				odd = n
				return true, ""
			}
		}
		return false, fmt.Sprint(savedFiles(dir), downloadBar(ctx))
	})
	if strings.ContainsAny(odd, `/\`) || strings.IndexFunc(odd, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		t.Errorf("saved as %q: directories or control characters kept", odd)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, odd)); !bytes.Equal(got, cleanFile) {
		t.Errorf("%s: %d bytes, want the %d served", odd, len(got), len(cleanFile))
	}
	if ev := waitFileEvent(t, g, "download", odd); ev["decision"] != "allowed" {
		t.Errorf("odd download event = %v", ev)
	}
	waitFor(t, 30*time.Second, "no file left in transit", func() (bool, string) {
		left := filesLeft(g)
		return len(left) == 0, fmt.Sprint(left)
	})
}

// TestDownloadDeny: under download: deny nothing reaches the user, the
// bar says why, and the audit event says denied by policy.
func TestDownloadDeny(t *testing.T) {
	g, ctx, dir := startDownloads(t, func(c *Config) { c.Proxy.Policy.Defaults.Download = "deny" })
	click(t, ctx, cleanArea)
	waitBar(t, ctx, "refused: report.txtDownloads are not allowed on this site.")
	if ev := waitFileEvent(t, g, "download", "report.txt"); ev["decision"] != "denied" || ev["reason"] != "policy" {
		t.Errorf("download event = %v, want denied by policy", ev)
	}
	// The remote browser's download was cancelled and its file removed.
	waitFor(t, 30*time.Second, "no file left in transit", func() (bool, string) {
		left := filesLeft(g)
		return len(left) == 0, fmt.Sprint(left)
	})
	if saved := savedFiles(dir); len(saved) != 0 {
		t.Errorf("the user's downloads have %v, want nothing", saved)
	}
}

// TestDownloadTooLarge: a file over download_max_mb is refused, saying
// the limit.
func TestDownloadTooLarge(t *testing.T) {
	g, ctx, dir := startDownloads(t, func(c *Config) {
		c.Proxy.Policy.Defaults.Download = "allow"
		c.Proxy.Policy.Defaults.DownloadMaxMB = 1
	})
	click(t, ctx, bigArea)
	waitBar(t, ctx, "larger than 1 MB")
	if ev := waitFileEvent(t, g, "download", "big.bin"); ev["decision"] != "denied" || ev["reason"] != "too large" {
		t.Errorf("download event = %v, want denied as too large", ev)
	}
	waitFor(t, 30*time.Second, "no file left in transit", func() (bool, string) {
		left := filesLeft(g)
		return len(left) == 0, fmt.Sprint(left)
	})
	if saved := savedFiles(dir); len(saved) != 0 {
		t.Errorf("the user's downloads have %v, want nothing", saved)
	}
}

// TestDownloadScan: under download: scan (the default), a real c-icap with
// ClamAV passes a clean file, which arrives, and blocks EICAR, which does
// not; the audit events carry the verdicts.
func TestDownloadScan(t *testing.T) {
	srv := startICAP(t)
	g, ctx, dir := startDownloads(t, func(c *Config) { c.Proxy.Scan.ICAPURL = srv.URL })

	click(t, ctx, cleanArea)
	waitFor(t, 60*time.Second, "report.txt in the user's downloads", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dir, "report.txt"))
		return err == nil && bytes.Equal(got, cleanFile), fmt.Sprint(savedFiles(dir), downloadBar(ctx))
	})
	if ev := waitFileEvent(t, g, "download", "report.txt"); ev["decision"] != "allowed" || ev["verdict"] != "clean" || ev["scanner"] == "" {
		t.Errorf("clean download event = %v, want allowed, clean, the scanner named", ev)
	}

	click(t, ctx, eicarArea)
	waitBar(t, ctx, "the virus scanner found")
	ev := waitFileEvent(t, g, "download", "eicar.com")
	if ev["decision"] != "denied" || ev["reason"] != "threat found" || ev["verdict"] != "infected" ||
		!strings.Contains(fmt.Sprint(ev["threat"]), icaptest.Threat) || ev["sha256"] != sha256Hex(eicarFile) {
		t.Errorf("EICAR download event = %v, want denied, infected, the threat's name and the file's hash", ev)
	}
	waitFor(t, 30*time.Second, "no file left in transit", func() (bool, string) {
		left := filesLeft(g)
		return len(left) == 0, fmt.Sprint(left)
	})
	if saved := savedFiles(dir); len(saved) != 1 {
		t.Errorf("the user's downloads have %v, want report.txt alone", saved)
	}
}

// TestDownloadScannerDown: a scanner that does not answer refuses the
// file (fail closed), saying so.
func TestDownloadScannerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "icap://" + l.Addr().String() + "/avscan"
	l.Close()
	g, ctx, dir := startDownloads(t, func(c *Config) { c.Proxy.Scan.ICAPURL = down })
	click(t, ctx, cleanArea)
	waitBar(t, ctx, "could not be checked for viruses")
	if ev := waitFileEvent(t, g, "download", "report.txt"); ev["decision"] != "denied" || ev["reason"] != "scanner unavailable" || ev["verdict"] != "error" {
		t.Errorf("download event = %v, want denied, scanner unavailable", ev)
	}
	if saved := savedFiles(dir); len(saved) != 0 {
		t.Errorf("the user's downloads have %v, want nothing", saved)
	}
}

// startICAP starts a real c-icap with ClamAV (a missing one fails in CI).
// TestDownloadView: under download: view, a PDF the remote page downloads
// opens in the isolated browser's PDF viewer, which the user sees in the
// video, at the URL it came from; nothing reaches the user's downloads; a
// file with no viewer is refused; nothing is left behind.
func TestDownloadView(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) { c.Proxy.Policy.Defaults.Download = "view" })
	ctx := userBrowser(t, g.addr)
	dir := userDownloads(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/view")); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}
	waitForColour(t, ctx, 200, 200, purple, 60*time.Second)

	click(t, ctx, [2]int{200, 200})
	waitForColour(t, ctx, 400, 300, orange, 60*time.Second)
	saveShot(t, ctx, "download-view")
	waitBar(t, ctx, "viewed: orange.pdfOpened here, in the isolated tab")
	waitFor(t, 30*time.Second, "the user's URL at the PDF", func() (bool, string) {
		u := userURL(ctx)
		return u == site.URL+"/dl/orange.pdf", u
	})
	ev := waitFileEvent(t, g, "download", "orange.pdf")
	if ev["decision"] != "viewed" || ev["mime"] != "application/pdf" || ev["sha256"] != sha256Hex(orangePDF()) {
		t.Errorf("download event = %v, want viewed, a PDF, its hash", ev)
	}
	if n := site.servedCount("/dl/orange.pdf"); n != 1 {
		t.Errorf("the PDF was fetched %d times, want once (the viewer shows the download)", n)
	}

	// Back to the page; the archive has no viewer.
	if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 600, 200, rgb{0, 160, 160}, 60*time.Second)
	click(t, ctx, [2]int{600, 200})
	waitBar(t, ctx, "refused: archive.zipFiles of this site open only in the isolated browser")
	if ev := waitFileEvent(t, g, "download", "archive.zip"); ev["decision"] != "denied" || ev["reason"] != "view only" {
		t.Errorf("archive download event = %v, want denied, view only", ev)
	}
	waitFor(t, 30*time.Second, "no file left in transit", func() (bool, string) {
		left := filesLeft(g)
		return len(left) == 0, fmt.Sprint(left)
	})
	if saved := savedFiles(dir); len(saved) != 0 {
		t.Errorf("the user's downloads have %v, want nothing", saved)
	}
}

func startICAP(t testing.TB) *icaptest.Server {
	t.Helper()
	if err := icaptest.Missing(); err != nil {
		missing(t, "%v", err)
	}
	return icaptest.Start(t, 200)
}

// TestPrint: Ctrl+P prints the remote page to a PDF that the user gets as
// a download (under print: allow and download's decision); under print:
// deny the user is told.
func TestPrint(t *testing.T) {
	g, ctx, dir := startDownloads(t, func(c *Config) { c.Proxy.Policy.Defaults.Download = "allow" })
	if err := pressKey(ctx, "p", "KeyP", 80, render.ModCtrl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "Downloads.pdf in the user's downloads", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dir, "Downloads.pdf"))
		return err == nil && bytes.HasPrefix(got, []byte("%PDF-")), fmt.Sprint(savedFiles(dir), downloadBar(ctx))
	})
	if ev := waitFileEvent(t, g, "print", "Downloads.pdf"); ev["decision"] != "allowed" || ev["mime"] != "application/pdf" {
		t.Errorf("print event = %v, want allowed, a PDF", ev)
	}

	g2, ctx2, dir2 := startDownloads(t, func(c *Config) { c.Proxy.Policy.Defaults.Print = "deny" })
	if err := pressKey(ctx2, "p", "KeyP", 80, render.ModCtrl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the print refused", func() (bool, string) {
		s := statusText(ctx2)
		return strings.Contains(s, "Printing is not allowed"), s
	})
	if ev := waitFileEvent(t, g2, "print", "Downloads.pdf"); ev["decision"] != "denied" {
		t.Errorf("print event = %v, want denied", ev)
	}
	if saved := savedFiles(dir2); len(saved) != 0 {
		t.Errorf("the user's downloads have %v", saved)
	}
}

// TestPagePrint: the page's own window.print() asks the user in the
// landing page, and the user's Print brings the PDF as a download; under
// print: deny the user is told.
func TestPagePrint(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) { c.Proxy.Policy.Defaults.Download = "allow" })
	ctx := userBrowser(t, g.addr)
	dir := userDownloads(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/print")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 400, 200, purple, 60*time.Second)
	click(t, ctx, [2]int{400, 200})
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#glovebox-print-ok"))); err != nil {
		t.Fatalf("the print question: %v", err)
	}
	saveShot(t, ctx, "page-print")
	clickSelector(t, ctx, "#glovebox-print-ok")
	waitFor(t, 60*time.Second, "Receipt.pdf in the user's downloads", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dir, "Receipt.pdf"))
		return err == nil && bytes.HasPrefix(got, []byte("%PDF-")), fmt.Sprint(savedFiles(dir), downloadBar(ctx))
	})
	if ev := waitFileEvent(t, g, "print", "Receipt.pdf"); ev["decision"] != "allowed" {
		t.Errorf("print event = %v, want allowed", ev)
	}

	g2 := startGlovebox(t, func(c *Config) { c.Proxy.Policy.Defaults.Print = "deny" })
	ctx2 := userBrowser(t, g2.addr)
	if err := chromedp.Do(ctx2, chromedp.Navigate(site.URL+"/print")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx2, 400, 200, purple, 60*time.Second)
	click(t, ctx2, [2]int{400, 200})
	waitFor(t, 30*time.Second, "the print refused", func() (bool, string) {
		s := statusText(ctx2)
		return strings.Contains(s, "This page asked to print: printing is not allowed"), s
	})
	if ev := waitFileEvent(t, g2, "print", "Receipt.pdf"); ev["decision"] != "denied" {
		t.Errorf("print event = %v, want denied", ev)
	}
}
