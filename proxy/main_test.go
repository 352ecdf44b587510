package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain keeps the interception CA that every New makes out of
// /var/lib: tests that start a Server with DefaultConfig share one CA in
// a temporary directory, removed at the end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glovebox-proxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tlsca.DefaultDir = filepath.Join(dir, "tls")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is the audit output, written by server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) events(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	data := bytes.Clone(b.buf.Bytes())
	b.mu.Unlock()
	var evs []map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("audit line: %v", err)
		}
		evs = append(evs, m)
	}
	return evs
}

// waitEvents waits up to 5 s for n audit events that match accepts and
// returns all that match; it fails the test, showing the audit log, when
// fewer come. (An event is written after its response: it may come a moment
// after the client has its answer.)
func (b *syncBuffer) waitEvents(t *testing.T, what string, n int, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []map[string]any
		for _, e := range b.events(t) {
			if match(e) {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %d of %d events in the audit log:\n%s", what, len(got), n, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scrape(t *testing.T, m *audit.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Body.String()
}

// randomToken is a token as the tabs' (base64url of 32 random bytes).
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
