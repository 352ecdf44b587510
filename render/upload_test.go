package render

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileChooser: a click on a file input opens no chooser remotely but
// reports one, with its accept and multiple; the files given to it are
// the input's, as the page reads them; it is answered once.
func TestFileChooser(t *testing.T) {
	b := ownBrowser(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><style>html,body{margin:0}input{position:absolute;left:0;top:0;width:300px;height:100px}</style>
			<input id=f type=file accept=".txt,text/plain" multiple>
			<script>f.addEventListener('change', async () => {
				window.got = await Promise.all([...f.files].map(async (x) => x.name + ':' + x.size + ':' + await x.text()));
			});</script>`)
	}))
	t.Cleanup(srv.Close)
	// The browser runs as nobody: the files are where it may read them.
	dir, err := os.MkdirTemp("", "glovebox-upload-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(p, []byte("hello upload"), 0o644); err != nil {
		t.Fatal(err)
	}

	s := newSink()
	tab, err := Open(t.Context(), b.wsURL, Options{Width: 400, Height: 300, OnFrame: s.onFrame, OnEvent: s.onEvent, Log: testLog()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { tab.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	poll(t, tab, `document.readyState === 'complete'`)
	click(t, tab, 150, 50)
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventFileChooser })
	if ev.Chooser == nil || !ev.Chooser.Multiple || ev.Chooser.Accept != ".txt,text/plain" || ev.Chooser.ID < 1 {
		t.Fatalf("chooser = %+v, want multiple, accept .txt,text/plain and an id", ev.Chooser)
	}
	if err := tab.SetChooserFiles(t.Context(), ev.Chooser.ID, []string{p}); err != nil {
		t.Fatalf("SetChooserFiles: %v", err)
	}
	poll(t, tab, `Array.isArray(window.got)`)
	if got := evaluate[[]string](t, tab, `window.got`); len(got) != 1 || got[0] != "notes.txt:12:hello upload" {
		t.Errorf("the page read %q, want notes.txt:12:hello upload", got)
	}
	if err := tab.SetChooserFiles(t.Context(), ev.Chooser.ID, []string{p}); !errors.Is(err, ErrBadInput) {
		t.Errorf("a chooser answered twice: %v, want ErrBadInput", err)
	}
	if err := tab.SetChooserFiles(t.Context(), 999, []string{p}); !errors.Is(err, ErrBadInput) {
		t.Errorf("an unknown chooser: %v, want ErrBadInput", err)
	}
}

// TestDropFiles: files dropped on the page's drop zone reach its drop
// handler, names and contents; dropped where the page takes no drop, they
// open nothing (the page stays).
func TestDropFiles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><style>html,body{margin:0;height:100%}#z{position:absolute;left:0;top:0;width:200px;height:100px;background:#0c0}</style>
			<div id=z></div>
			<script>z.addEventListener('dragover', (e) => e.preventDefault());
			z.addEventListener('drop', async (e) => {
				e.preventDefault();
				window.got = await Promise.all([...e.dataTransfer.files].map(async (x) => x.name + ':' + await x.text()));
			});</script>`)
	}))
	t.Cleanup(srv.Close)
	dir, err := os.MkdirTemp("", "glovebox-drop-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "dropped.txt")
	if err := os.WriteFile(p, []byte("hello drop"), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, _ := openTab(t, 400, 300, 1, "")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	poll(t, tab, `document.readyState === 'complete'`)
	if err := tab.DropFiles(ctx, 100, 50, []string{p}); err != nil {
		t.Fatalf("DropFiles: %v", err)
	}
	poll(t, tab, `Array.isArray(window.got)`)
	if got := evaluate[[]string](t, tab, `window.got`); len(got) != 1 || got[0] != "dropped.txt:hello drop" {
		t.Errorf("the page got %q, want dropped.txt:hello drop", got)
	}

	// Outside the zone: the page takes no drop, and nothing opens (a
	// local browser would open the file): the same document takes the
	// next drop into the zone.
	evaluate[bool](t, tab, `window.got = null, window.mark = 1, true`)
	if err := tab.DropFiles(ctx, 300, 200, []string{p}); err != nil {
		t.Fatalf("DropFiles outside: %v", err)
	}
	if err := tab.DropFiles(ctx, 100, 50, []string{p}); err != nil {
		t.Fatalf("DropFiles: %v", err)
	}
	poll(t, tab, `Array.isArray(window.got)`)
	if u := evaluate[string](t, tab, "location.href + window.mark"); u != srv.URL+"/1" {
		t.Errorf("after a drop outside the zone the page is %q", u)
	}
	for _, bad := range [][2]float64{{-1, 0}, {0, 1e9}} {
		if err := tab.DropFiles(ctx, bad[0], bad[1], []string{p}); !errors.Is(err, ErrBadInput) {
			t.Errorf("DropFiles at %v: %v, want ErrBadInput", bad, err)
		}
	}
	if err := tab.DropFiles(ctx, 1, 1, nil); !errors.Is(err, ErrBadInput) {
		t.Errorf("DropFiles of nothing: %v, want ErrBadInput", err)
	}
}
