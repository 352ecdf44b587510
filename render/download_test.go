package render

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestValidGUID(t *testing.T) {
	for _, s := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "00000000-0000-0000-0000-000000000000"} {
		if !validGUID(s) {
			t.Errorf("validGUID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "../../../../etc/passwd", "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"0f8fad5b-d9cb-469f-a165-70867728950e/", "0f8fad5b/d9cb-469f-a165-70867728950e", "0f8fad5bd9cb-469f-a165-70867728950e0"} {
		if validGUID(s) {
			t.Errorf("validGUID(%q) = true", s)
		}
	}
}

// TestDownload: a link to an attachment is saved into DownloadDir, named
// by its GUID, and reported from start to completion; a download in
// progress can be cancelled.
func TestDownload(t *testing.T) {
	b := ownBrowser(t)
	body := bytes.Repeat([]byte("glovebox download\n"), 5000)
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><style>html,body{margin:0;height:100%}</style>
			<a href="/file" style="display:block;height:50%;background:#00f">file</a>
			<a href="/slow" style="display:block;height:50%;background:#f00">slow</a>`)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="report.txt"`)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="slow.bin"`)
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// The browser runs as nobody: its directory is under /tmp itself,
	// not in t.TempDir's, which only root may enter.
	dir, err := os.MkdirTemp("", "glovebox-download-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	s := newSink()
	tab, err := Open(t.Context(), b.wsURL, Options{Width: 400, Height: 300,
		OnFrame: s.onFrame, OnEvent: s.onEvent, Log: testLog(), DownloadDir: dir})
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

	isDownload := func(state string) func(Event) bool {
		return func(ev Event) bool { return ev.Type == EventDownload && ev.Download.State == state }
	}
	click(t, tab, 200, 50)
	started := waitEvent(t, s, isDownload(DownloadStarted)).Download
	if started.URL != srv.URL+"/file" || started.Name != "report.txt" || !validGUID(started.GUID) {
		t.Errorf("started = %+v, want the URL /file, the name report.txt and a GUID", started)
	}
	done := waitEvent(t, s, isDownload(DownloadCompleted)).Download
	if done.GUID != started.GUID || done.Received != int64(len(body)) {
		t.Errorf("completed = %+v, want GUID %s and %d bytes", done, started.GUID, len(body))
	}
	got, err := os.ReadFile(filepath.Join(dir, started.GUID))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the file in DownloadDir: %d bytes, %v; want the %d bytes served", len(got), err, len(body))
	}

	click(t, tab, 200, 250)
	slow := waitEvent(t, s, isDownload(DownloadStarted)).Download
	if slow.Name != "slow.bin" {
		t.Errorf("second download = %+v, want slow.bin", slow)
	}
	if err := tab.CancelDownload(t.Context(), slow.GUID); err != nil {
		t.Fatalf("CancelDownload: %v", err)
	}
	if ev := waitEvent(t, s, isDownload(DownloadCanceled)).Download; ev.GUID != slow.GUID {
		t.Errorf("cancelled %s, want %s", ev.GUID, slow.GUID)
	}
	if err := tab.CancelDownload(t.Context(), "../x"); err == nil {
		t.Error("CancelDownload of a malformed id: no error")
	}
}
