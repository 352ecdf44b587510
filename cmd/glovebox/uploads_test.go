package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/internal/icaptest"
)

// startUploads opens /uploads in the user's browser, whose file pickers
// the test answers (as the user would) with the files it sends on the
// returned channel.
func startUploads(t *testing.T, mutate func(*Config)) (*testSite, *glovebox, context.Context, chan<- []string) {
	t.Helper()
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, mutate)
	ctx := userBrowser(t, g.addr)
	pick := answerPickers(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/uploads")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 400, 200, blue, 60*time.Second)
	return site, g, ctx, pick
}

type cdpNode int64

// answerPickers answers the user's browser's file pickers, as the user
// would, with the files sent on the returned channel.
func answerPickers(t *testing.T, ctx context.Context) chan<- []string {
	t.Helper()
	pick := make(chan []string, 4)
	opened := make(chan cdpNode, 4)
	chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*page.EventFileChooserOpened); ok {
			opened <- cdpNode(e.BackendNodeID)
		}
	})
	if err := cdpCall(ctx, page.SetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for files := range pick {
			select {
			case n := <-opened:
				cdpCall(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: files, BackendNodeID: cdp.BackendNodeID(n)})
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { close(pick) })
	return pick
}

// userFile writes a file of the user's to upload.
func userFile(t *testing.T, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUploadAllow: the remote page's file input opens the user's picker;
// the file chosen is what the remote page reads (name, size, content),
// and the audit event has its hash.
func TestUploadAllow(t *testing.T) {
	site, g, ctx, pick := startUploads(t, func(c *Config) { c.Proxy.Policy.Defaults.Upload = "allow" })
	pick <- []string{userFile(t, "notes.txt", cleanFile)}
	click(t, ctx, [2]int{400, 200})
	want := fmt.Sprintf("notes.txt:%d:%s", len(cleanFile), cleanFile[:40])
	waitReport(t, site, "upload", want)
	ev := waitFileEvent(t, g, "upload", "notes.txt")
	if ev["decision"] != "allowed" || ev["sha256"] != sha256Hex(cleanFile) || ev["size"] != float64(len(cleanFile)) {
		t.Errorf("upload event = %v, want allowed with the file's size and hash", ev)
	}
}

// dropFiles drops the user's files on the landing page at (x, y), as a
// drag from the desktop does.
func dropFiles(t *testing.T, ctx context.Context, x, y float64, paths ...string) {
	t.Helper()
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: paths, DragOperationsMask: 1}
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		if err := cdpCall(ctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: x, Y: y, Data: data}); err != nil {
			t.Fatalf("drop files: %v", err)
		}
	}
}

// TestUploadDrop: a file dragged from the user's desktop onto the video
// is dropped on the remote page, at the same place, with its name, size
// and content; a drop under upload: deny is refused, saying so.
func TestUploadDrop(t *testing.T) {
	site, g, ctx, _ := startUploads(t, func(c *Config) { c.Proxy.Policy.Defaults.Upload = "allow" })
	dropFiles(t, ctx, 300, 200, userFile(t, "dropped.txt", cleanFile))
	waitReport(t, site, "drop", fmt.Sprintf("dropped.txt:%d:%s@300,200", len(cleanFile), cleanFile[:40]))
	if ev := waitFileEvent(t, g, "upload", "dropped.txt"); ev["decision"] != "allowed" || ev["sha256"] != sha256Hex(cleanFile) {
		t.Errorf("upload event = %v, want allowed with the file's hash", ev)
	}
	if u := userURL(ctx); u != site.URL+"/uploads" {
		t.Errorf("the user's page is %s after the drop, want the landing page still", u)
	}

	site2, g2, ctx2, _ := startUploads(t, func(c *Config) { c.Proxy.Policy.Defaults.Upload = "deny" })
	dropFiles(t, ctx2, 300, 200, userFile(t, "dropped.txt", cleanFile))
	waitFor(t, 30*time.Second, "the refusal", func() (bool, string) {
		s := statusText(ctx2)
		return strings.Contains(s, "Uploads are not allowed"), s
	})
	if ev := waitFileEvent(t, g2, "upload", ""); ev["decision"] != "denied" || ev["reason"] != "policy" {
		t.Errorf("upload event = %v, want denied by policy", ev)
	}
	if r := site2.reportsOf("drop"); len(r) != 0 {
		t.Errorf("the remote page got a drop under deny: %q", r)
	}
}

// TestUploadDeny: under upload: deny no picker opens and the user is told.
func TestUploadDeny(t *testing.T) {
	site, g, ctx, _ := startUploads(t, func(c *Config) { c.Proxy.Policy.Defaults.Upload = "deny" })
	click(t, ctx, [2]int{400, 200})
	waitFor(t, 30*time.Second, "the refusal", func() (bool, string) {
		s := statusText(ctx)
		return strings.Contains(s, "Uploads are not allowed"), s
	})
	waitFor(t, 30*time.Second, "a denied upload event", func() (bool, string) {
		for _, e := range fileEvents(g, "upload") {
			if e["decision"] == "denied" && e["reason"] == "policy" {
				return true, ""
			}
		}
		return false, g.audit.String()
	})
	if r := site.reportsOf("upload"); len(r) != 0 {
		t.Errorf("the remote page got files: %q", r)
	}
}

// TestUploadScan: under upload: scan a real c-icap with ClamAV blocks
// EICAR, saying so, and passes a clean file; a file over upload_max_mb is
// refused.
func TestUploadScan(t *testing.T) {
	srv := startICAP(t)
	site, g, ctx, pick := startUploads(t, func(c *Config) {
		c.Proxy.Scan.ICAPURL = srv.URL
		c.Proxy.Policy.Defaults.UploadMaxMB = 1
	})
	pick <- []string{userFile(t, "eicar.com", eicarFile)}
	click(t, ctx, [2]int{400, 200})
	waitFor(t, 30*time.Second, "the EICAR refusal", func() (bool, string) {
		s := statusText(ctx)
		return strings.Contains(s, "virus scanner found"), s
	})
	ev := waitFileEvent(t, g, "upload", "eicar.com")
	if ev["decision"] != "denied" || ev["verdict"] != "infected" || !strings.Contains(fmt.Sprint(ev["threat"]), icaptest.Threat) {
		t.Errorf("EICAR upload event = %v", ev)
	}

	pick <- []string{userFile(t, "big.bin", bigFile)}
	click(t, ctx, [2]int{400, 200})
	waitFor(t, 30*time.Second, "the size refusal", func() (bool, string) {
		s := statusText(ctx)
		return strings.Contains(s, "larger than 1 MB"), s
	})

	pick <- []string{userFile(t, "notes.txt", cleanFile)}
	click(t, ctx, [2]int{400, 200})
	waitReport(t, site, "upload", fmt.Sprintf("notes.txt:%d:%s", len(cleanFile), cleanFile[:40]))
	if ev := waitFileEvent(t, g, "upload", "notes.txt"); ev["verdict"] != "clean" {
		t.Errorf("clean upload event = %v", ev)
	}
	if r := site.reportsOf("upload"); len(r) != 1 {
		t.Errorf("the remote page got %q, want the clean file alone", r)
	}
}

// TestContainerdFiles: with the containerd runtime a download reaches the
// user and an upload the remote page, through the container's files
// directory.
func TestContainerdFiles(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, func(c *Config) {
		c.Proxy.Policy.Defaults.Download = "allow"
		c.Proxy.Policy.Defaults.Upload = "allow"
	})
	ctx := userBrowser(t, g.addr)
	dir := userDownloads(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/downloads")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, cleanArea[0], cleanArea[1], blue, 90*time.Second)
	click(t, ctx, cleanArea)
	waitFor(t, 60*time.Second, "report.txt in the user's downloads", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dir, "report.txt"))
		return err == nil && string(got) == string(cleanFile), fmt.Sprint(savedFiles(dir), downloadBar(ctx))
	})

	pick := answerPickers(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/uploads")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 400, 200, blue, 90*time.Second)
	pick <- []string{userFile(t, "notes.txt", cleanFile)}
	click(t, ctx, [2]int{400, 200})
	waitReport(t, site, "upload", fmt.Sprintf("notes.txt:%d:%s", len(cleanFile), cleanFile[:40]))
}
