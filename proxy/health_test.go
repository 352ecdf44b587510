package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
)

func TestHealthHandler(t *testing.T) {
	ok := func(context.Context) error { return nil }
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name     string
		checks   map[string]func(context.Context) error
		order    []string
		code     int
		text     string   // the whole plain-text body
		json     string   // "status" of the JSON body
		notInAny []string // in neither body
	}{
		{name: "none", code: 200, text: "ok\n", json: "ok"},
		{name: "all pass", checks: map[string]func(context.Context) error{"containerd": ok, "audit": ok},
			order: []string{"containerd", "audit"}, code: 200, text: "ok\n", json: "ok"},
		{name: "one fails", order: []string{"containerd", "audit"}, code: 503, json: "unhealthy",
			checks: map[string]func(context.Context) error{
				"containerd": func(context.Context) error { return errors.New("isolate: containerd unavailable: exited") },
				"audit":      ok,
			},
			text: "unhealthy\ncontainerd: isolate: containerd unavailable: exited\n"},
		{name: "reasons are one line, without DevTools addresses", order: []string{"pool"}, code: 503, json: "unhealthy",
			checks: map[string]func(context.Context) error{
				"pool": func(context.Context) error {
					return errors.New("start chromium: DevTools did not answer: output ends with:\nDevTools listening on ws://127.0.0.1:41234/devtools/browser/0b1c2d3e-aaaa")
				},
			},
			text:     "unhealthy\npool: start chromium: DevTools did not answer: output ends with: DevTools listening on ws://…\n",
			notInAny: []string{"41234", "0b1c2d3e"}},
		{name: "a check that does not answer fails", order: []string{"slow"}, code: 503, json: "unhealthy",
			checks: map[string]func(context.Context) error{
				"slow": func(ctx context.Context) error { <-release; return nil },
			},
			text: "unhealthy\nslow: no answer within 50ms\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHealth()
			h.timeout = 50 * time.Millisecond
			for _, name := range tt.order {
				h.Add(name, tt.checks[name])
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			if rec.Code != tt.code || rec.Body.String() != tt.text {
				t.Errorf("text: %d %q, want %d %q", rec.Code, rec.Body.String(), tt.code, tt.text)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}

			req := httptest.NewRequest("GET", "/healthz", nil)
			req.Header.Set("Accept", "application/json")
			jrec := httptest.NewRecorder()
			h.ServeHTTP(jrec, req)
			var body struct {
				Status string `json:"status"`
				Checks []struct {
					Name  string `json:"name"`
					OK    bool   `json:"ok"`
					Error string `json:"error"`
				} `json:"checks"`
			}
			if err := json.Unmarshal(jrec.Body.Bytes(), &body); err != nil {
				t.Fatalf("JSON body %q: %v", jrec.Body.String(), err)
			}
			if jrec.Code != tt.code || body.Status != tt.json || len(body.Checks) != len(tt.order) {
				t.Errorf("JSON: %d %s", jrec.Code, jrec.Body.String())
			}
			for i, c := range body.Checks {
				if c.Name != tt.order[i] || c.OK != (c.Error == "") {
					t.Errorf("JSON check %d = %+v", i, c)
				}
				if !c.OK && !strings.Contains(tt.text, c.Name+": "+c.Error+"\n") {
					t.Errorf("JSON check %s error %q differs from the text body", c.Name, c.Error)
				}
			}
			for _, s := range tt.notInAny {
				if strings.Contains(rec.Body.String()+jrec.Body.String(), s) {
					t.Errorf("%q in a body", s)
				}
			}
		})
	}
}

// failingWriter fails its writes with ENOSPC while full is set.
type failingWriter struct{ full atomic.Bool }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.full.Load() {
		return 0, syscall.ENOSPC
	}
	return len(p), nil
}

// TestAuditHealth: the audit log's health is its last write's: a full disk
// (/dev/full, and a writer that fills up and empties) fails it, with the
// error; a write that succeeds clears it.
func TestAuditHealth(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		testenv.Missing(t, "no /dev/full: %v", err)
	}
	defer full.Close()
	a := audit.New(full)
	if err := a.Health(); err != nil {
		t.Errorf("Health before any write = %v", err)
	}
	a.Request(audit.RequestEvent{URL: "http://example.com/", Action: policy.ActionAllow, Status: 200})
	if err := a.Health(); !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "audit: ") {
		t.Errorf("Health after a write to /dev/full = %v, want ENOSPC", err)
	}

	w := &failingWriter{}
	a = audit.New(w)
	a.TabStart(audit.TabEvent{Tab: "t1"})
	if err := a.Health(); err != nil {
		t.Errorf("Health after a write = %v", err)
	}
	w.full.Store(true)
	a.TabEnd(audit.TabEvent{Tab: "t1"})
	if err := a.Health(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Health after a failed write = %v, want ENOSPC", err)
	}
	w.full.Store(false)
	a.Egress(audit.EgressEvent{Tab: "t1"})
	if err := a.Health(); err != nil {
		t.Errorf("Health after the disk has room again = %v", err)
	}
}

// TestServerHealthz: the proxy's own /healthz is the Server's Health,
// audit check included, with the checks the wiring adds.
func TestServerHealthz(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		testenv.Missing(t, "no /dev/full: %v", err)
	}
	defer full.Close()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Policy.Default = policy.ActionBlock
	srv, err := New(cfg, nil, nil, audit.New(full), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	healthz := func() (int, string) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := healthz(); code != 200 || body != "ok\n" {
		t.Errorf("before any event: %d %q", code, body)
	}
	// A blocked request: its audit event goes to /dev/full.
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://blocked.example/", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("blocked request: %d", rec.Code)
	}
	code, body := healthz()
	if code != 503 || !strings.Contains(body, "\naudit: events are being lost") || !strings.Contains(body, "no space left on device") {
		t.Errorf("after a lost event: %d %q, want 503 naming audit", code, body)
	}
	srv.Health().Add("pool", func(context.Context) error { return errors.New("pool: the last 3 warm starts failed") })
	if _, body := healthz(); !strings.Contains(body, "\npool: the last 3") {
		t.Errorf("an added check is not in /healthz: %q", body)
	}
}

func TestHealthMetrics(t *testing.T) {
	h := NewHealth()
	h.Add("containerd", func(context.Context) error { return nil })
	h.Add("audit", func(context.Context) error { return errors.New("full") })
	m := audit.NewMetrics()
	m.Collector(HealthMetrics(h))
	got := scrape(t, m)
	for _, want := range []string{
		"# TYPE glovebox_health gauge\n",
		"glovebox_health{check=\"audit\"} 0\n",
		"glovebox_health{check=\"containerd\"} 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape lacks %q:\n%s", want, got)
		}
	}
}
