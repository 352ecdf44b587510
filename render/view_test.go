package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
)

// TestView: a PDF opens in Chromium's viewer and an image as an image at
// the URL they were downloaded from, without Chromium fetching it again;
// with and without HTTP authentication's interception.
func TestView(t *testing.T) {
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><style>html,body{margin:0;height:100%;background:#0c0}</style>`)
	})
	mux.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "fetched again", http.StatusGone)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// A one-page PDF, its page green (0 0.8 0 rg): not printed here, as
	// Chromium's printing fails at times on a browser that just printed.
	pdf, err := os.ReadFile("testdata/green.pdf")
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []bool{true, false} {
		t.Run(fmt.Sprintf("HTTPAuth=%v", auth), func(t *testing.T) {
			if skipReason != "" {
				testenv.Missing(t, "%s", skipReason) // fails in CI
			}
			s := newSink()
			tab, err := Open(t.Context(), browser.wsURL, Options{Width: 400, Height: 300,
				OnFrame: s.onFrame, OnEvent: s.onEvent, Log: testLog(), HTTPAuth: auth})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { tab.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
				t.Fatal(err)
			}
			waitFrame(t, s, "of the green page", func(img image.Image) bool { return near(img, 0, 204, 0) })

			u := srv.URL + "/files/report.pdf"
			if err := tab.View(ctx, u+"#page=1", "application/pdf", pdf); err != nil {
				t.Fatalf("View PDF: %v", err)
			}
			// The viewer: its toolbar's grey above the green page.
			// (The viewer is an extension: its first start, in a new
			// profile under the race detector, can take a while.)
			img := waitFrameWithin(t, s, 45*time.Second, "of the PDF viewer", func(img image.Image) bool {
				r, g, b, _ := img.At(200, 10).RGBA()
				toolbar := r>>8 == g>>8 && g>>8 == b>>8 && r>>8 >= 40 && r>>8 <= 80
				return toolbar && near(img, 0, 204, 0)
			})
			savePNG(t, "view-pdf", img)
			waitEvent(t, s, func(ev Event) bool { return ev.Type == EventURL && ev.URL == u+"#page=1" })

			var buf bytes.Buffer
			pic := image.NewRGBA(image.Rect(0, 0, 64, 64))
			for i := range pic.Pix {
				pic.Pix[i] = []byte{0x20, 0x40, 0xe0, 0xff}[i%4]
			}
			png.Encode(&buf, pic)
			if err := tab.View(ctx, srv.URL+"/files/pic.png", "image/png", buf.Bytes()); err != nil {
				t.Fatalf("View PNG: %v", err)
			}
			waitFrame(t, s, "of the image", func(img image.Image) bool { return hasColor(img, 0x20, 0x40, 0xe0) })
			// Two at once (a page that downloads several files): each
			// opens in turn, and neither is fetched.
			errs := make(chan error, 2)
			for _, name := range []string{"a.png", "b.png"} {
				go func() { errs <- tab.View(ctx, srv.URL+"/files/"+name, "image/png", buf.Bytes()) }()
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Errorf("View at once: %v", err)
				}
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the server was asked %d times for the files viewed", n)
			}
			// The page goes on as usual afterwards: a site's own page loads.
			if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
				t.Fatal(err)
			}
			waitFrame(t, s, "of the green page again", func(img image.Image) bool { return near(img, 0, 204, 0) })
			if hits.Load() != 0 {
				t.Error("the files were fetched")
			}

			for _, bad := range []struct{ url, mime string }{
				{"file:///etc/passwd", "text/plain"},
				{"javascript:alert(1)", "text/plain"},
				{srv.URL + "/files/x.zip", "application/zip"},
				{srv.URL + "/files/x.html", "text/html"},
			} {
				if err := tab.View(ctx, bad.url, bad.mime, []byte("x")); !errors.Is(err, ErrBadInput) {
					t.Errorf("View(%q, %q) = %v, want ErrBadInput", bad.url, bad.mime, err)
				}
			}
		})
	}
}

// hasColor reports whether some pixel of img on a 8-pixel grid is within
// 12 of r, g, b.
func hasColor(img image.Image, r, g, b int) bool {
	near := func(c uint32, want int) bool { d := int(c>>8) - want; return d >= -12 && d <= 12 }
	bb := img.Bounds()
	for y := bb.Min.Y; y < bb.Max.Y; y += 8 {
		for x := bb.Min.X; x < bb.Max.X; x += 8 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if near(cr, r) && near(cg, g) && near(cb, b) {
				return true
			}
		}
	}
	return false
}

// savePNG keeps img for a person to look at when GLOVEBOX_SCREENSHOTS names a
// directory.
func savePNG(t *testing.T, name string, img image.Image) {
	dir := os.Getenv("GLOVEBOX_SCREENSHOTS")
	if dir == "" {
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err == nil {
		os.WriteFile(dir+"/"+name+".png", buf.Bytes(), 0o644)
	}
}
