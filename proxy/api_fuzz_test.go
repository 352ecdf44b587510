package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/tab"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/stream"
)

// apiFuzzIsolator never has a browser: Start waits for the tab to end, so a
// tab stays starting for as long as the test keeps it.
type apiFuzzIsolator struct{}

func (apiFuzzIsolator) Name() string { return "fuzz" }

func (apiFuzzIsolator) Start(ctx context.Context, _ isolate.Spec) (*isolate.Browser, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// errFuzzPeer is what apiFuzzStreamer answers every offer with.
var errFuzzPeer = errors.New("fuzz streamer makes no peers")

// apiFuzzStreamer counts the offers that got past the API to the streamer.
type apiFuzzStreamer struct{ calls atomic.Int64 }

func (s *apiFuzzStreamer) NewPeer(stream.PeerOptions) (*stream.Peer, error) {
	s.calls.Add(1)
	return nil, errFuzzPeer
}

// API endpoints FuzzAPIBodies posts to, by its first argument modulo 3.
const (
	fuzzCreate = iota
	fuzzOffer
	fuzzClaim
)

// FuzzAPIBodies posts arbitrary bodies with arbitrary Content-Types to the
// /.glovebox/api endpoints that read JSON (create a tab, offer, claim),
// through the API handler of a real Server whose Isolator and Streamer are
// fakes. Every answer is a documented status with a JSON error, never a
// 500; a tab created has an absolute http or https URL with a host and a
// viewport within the caps. Seeds in testdata/fuzz/FuzzAPIBodies are what
// proxy/web/app.js posts.
func FuzzAPIBodies(f *testing.F) {
	cfg := DefaultConfig()
	cfg.Tabs.StartTimeout = 24 * time.Hour // tabs end when the test ends them
	// One client opens a tab per input: no per-user limits here.
	cfg.Tabs.MaxPerUser, cfg.Tabs.CreatePerMinute = cfg.Tabs.Max, 1<<30
	st := &apiFuzzStreamer{}
	s, err := New(cfg, apiFuzzIsolator{}, st, nil, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.tabs.Close)
	const client = "192.0.2.1"

	f.Fuzz(func(t *testing.T, endpoint uint8, contentType string, body []byte) {
		defer endFuzzTabs(s.tabs)
		path := "/.glovebox/api/tabs"
		switch endpoint % 3 {
		case fuzzOffer:
			tb, err := s.tabs.Create(tab.Request{URL: "https://site.example/", Width: 800, Height: 600, DPR: 1}, client, "")
			if err != nil {
				t.Fatal(err)
			}
			path = "/.glovebox/api/tabs/" + tb.Token() + "/offer"
		case fuzzClaim:
			path = "/.glovebox/api/claim"
		}
		r := httptest.NewRequest(http.MethodPost, "http://site.example"+path, bytes.NewReader(body))
		r.RemoteAddr = client + ":41000"
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		peersBefore := st.calls.Load()
		w := httptest.NewRecorder()
		s.api.ServeHTTP(w, r)

		var out map[string]any
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("status %d with Content-Type %q", w.Code, ct)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d with a body that is not a JSON object: %q", w.Code, w.Body)
		}
		if w.Code >= 400 {
			code, _ := out["error"].(string)
			if msg, _ := out["message"].(string); code == "" || msg == "" {
				t.Fatalf("status %d without an error and a message: %s", w.Code, w.Body)
			}
		}
		switch {
		case w.Code == http.StatusUnsupportedMediaType:
			if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt == "application/json" {
				t.Fatalf("415 for a request with Content-Type %q", contentType)
			}
			return
		case w.Code == http.StatusBadRequest || w.Code == http.StatusRequestEntityTooLarge:
			return
		}
		// Anything else took a body that is one JSON value and nothing more.
		dec := json.NewDecoder(bytes.NewReader(body))
		var v any
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Fatalf("status %d for a body that is not one JSON value: %q", w.Code, body)
		}
		switch endpoint % 3 {
		case fuzzCreate:
			// A tab only for the origin the request came to.
			if w.Code == http.StatusForbidden && out["error"] == "wrong_origin" {
				return
			}
			if w.Code != http.StatusCreated {
				t.Fatalf("create: status %d: %s", w.Code, w.Body)
			}
			checkFuzzTab(t, s, out, client)
			if u, _ := url.Parse(s.tabs.List()[0].URL); u == nil || originOf(u) != "http://site.example:80" {
				t.Fatalf("created a tab for %v on http://site.example", s.tabs.List()[0].URL)
			}
		case fuzzOffer:
			if w.Code != http.StatusBadGateway || st.calls.Load() != peersBefore+1 || !strings.Contains(w.Body.String(), errFuzzPeer.Error()) {
				t.Fatalf("offer: status %d, %d peers asked for: %s", w.Code, st.calls.Load()-peersBefore, w.Body)
			}
		case fuzzClaim:
			// No hand-over code was issued, so none can be claimed.
			if w.Code != http.StatusNotFound {
				t.Fatalf("claim: status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// checkFuzzTab fails t unless the tab the API answered out for is one the
// tab manager may start a browser for.
func checkFuzzTab(t *testing.T, s *Server, out map[string]any, client string) {
	t.Helper()
	token, _ := out["token"].(string)
	tb, err := s.tabs.Lookup(token, tab.Owner("", client))
	if err != nil {
		t.Fatalf("the tab created is not there: %v (%v)", err, out)
	}
	var info tab.Info
	for _, i := range s.tabs.List() {
		if i.Tab == tb.ID() {
			info = i
		}
	}
	u, err := url.Parse(info.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		t.Fatalf("created a tab for %q, not an absolute http or https URL with a host", info.URL)
	}
	w, h, scale := tb.Viewport()
	cfg := s.cfg.Tabs
	if w < 320 || w > cfg.MaxWidth || h < 240 || h > cfg.MaxHeight ||
		math.IsNaN(scale) || scale < 1 || scale > cfg.MaxScale {
		t.Fatalf("created a tab of %dx%d@%v, outside the caps", w, h, scale)
	}
	if out["width"] != float64(w) || out["height"] != float64(h) || out["dpr"] != scale {
		t.Fatalf("answered %v for a tab of %dx%d@%v", out, w, h, scale)
	}
}

// endFuzzTabs ends every tab of m and waits for them to be gone, so that
// one input's tabs neither count against the next one's capacity nor pile
// up.
func endFuzzTabs(m *tab.Manager) {
	for _, i := range m.List() {
		m.EndByID(i.Tab, "fuzz input done")
	}
	for deadline := time.Now().Add(10 * time.Second); m.Count() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// TestAPICreateURL: a tab is only opened for an absolute http or https URL
// that names a host; a port alone ("http://:80/") is not one.
func TestAPICreateURL(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tabs.StartTimeout = 24 * time.Hour
	s, err := New(cfg, apiFuzzIsolator{}, &apiFuzzStreamer{}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.tabs.Close)
	tests := []struct {
		url  string
		want int
	}{
		{"https://a.example/", http.StatusCreated},
		{"http://[::1]:8080/x", http.StatusCreated},
		{"http://:80/", http.StatusBadRequest},
		{"https://:", http.StatusBadRequest},
		{"http://", http.StatusBadRequest},
		{"/relative", http.StatusBadRequest},
		{"ftp://a.example/", http.StatusBadRequest},
		{"javascript:alert(1)", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			defer endFuzzTabs(s.tabs)
			body, _ := json.Marshal(tab.Request{URL: tt.url, Width: 800, Height: 600, DPR: 1})
			// Sent to the URL's own origin, where its landing page would be.
			target := "http://site.example/.glovebox/api/tabs"
			if u, err := url.Parse(tt.url); err == nil && u.Host != "" && u.Host != ":" {
				target = u.Scheme + "://" + u.Host + "/.glovebox/api/tabs"
			}
			r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			s.api.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
}

// TestTabURLCredentialsNotLogged: a tab whose URL carries a user and
// password (typed into the address bar) is logged without them.
func TestTabURLCredentialsNotLogged(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tabs.StartTimeout = 24 * time.Hour
	s, err := New(cfg, apiFuzzIsolator{}, &apiFuzzStreamer{}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.tabs.Close)
	defer endFuzzTabs(s.tabs)
	body, _ := json.Marshal(tab.Request{URL: "http://alice:s3cret@site.example/x", Width: 800, Height: 600, DPR: 1})
	r := httptest.NewRequest(http.MethodPost, "http://site.example/.glovebox/api/tabs", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.api.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if l := s.TabList(); len(l) != 1 || l[0].URL != "http://site.example/x" {
		t.Errorf("tab URL for operators and the audit log: %v, want it without credentials", l)
	}
}

// fullIsolator is a runtime with no room left (every /30 of the subnet in use).
type fullIsolator struct{}

func (fullIsolator) Name() string { return "full" }

func (fullIsolator) Start(context.Context, isolate.Spec) (*isolate.Browser, error) {
	return nil, fmt.Errorf("start container: attach network: %w", isolate.ErrCapacity)
}

// TestRuntimeCapacity: a runtime that refuses a browser for want of room
// is capacity, 503, as tabs.max is; not a failed start, 502.
func TestRuntimeCapacity(t *testing.T) {
	s, err := New(DefaultConfig(), fullIsolator{}, &apiFuzzStreamer{}, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.tabs.Close)
	post := func(path string, body any) *httptest.ResponseRecorder {
		b, _ := json.Marshal(body)
		r := httptest.NewRequest(http.MethodPost, "http://site.example"+path, bytes.NewReader(b))
		r.RemoteAddr = "192.0.2.1:40000"
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.api.ServeHTTP(w, r)
		return w
	}
	w := post("/.glovebox/api/tabs", tab.Request{URL: "http://site.example/", Width: 800, Height: 600, DPR: 1})
	var out map[string]any
	if json.Unmarshal(w.Body.Bytes(), &out); w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	endFuzzTabs(s.tabs) // the start has failed and the tab has ended
	w = post("/.glovebox/api/tabs/"+out["token"].(string)+"/offer", map[string]string{"sdp": "v=0"})
	var e map[string]any
	json.Unmarshal(w.Body.Bytes(), &e)
	if w.Code != http.StatusServiceUnavailable || e["error"] != "capacity" {
		t.Errorf("offer to a tab the runtime had no room for: %d %s, want 503 capacity", w.Code, w.Body)
	}
}
