package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
)

// TestAuditSinksSIGHUP runs Glovebox with a JSON file sink and a CEF file
// sink beside audit.output: each gets every event in its format, and after
// the files are moved away (as logrotate does) SIGHUP starts new ones at
// their paths, the moved files keeping what came before.
func TestAuditSinksSIGHUP(t *testing.T) {
	dir := t.TempDir()
	jsonPath, cefPath, outPath := filepath.Join(dir, "audit.json"), filepath.Join(dir, "audit.cef"), filepath.Join(dir, "out.log")
	g := startGlovebox(t, func(c *Config) {
		c.Audit.Output = outPath
		c.Audit.Sinks = []audit.SinkConfig{{Type: "file", Path: jsonPath}, {Type: "file", Path: cefPath, Format: "cef"}}
	})
	// An isolated site's script is refused, and audited.
	request := func(path string) {
		t.Helper()
		resp, err := g.proxied.Get("http://127.0.0.1:1/" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("request: %s", resp.Status)
		}
	}
	// waitLines waits until path has n lines and returns them.
	waitLines := func(path string, n int) []string {
		t.Helper()
		var lines []string
		waitFor(t, 10*time.Second, path+" to have its events", func() (bool, string) {
			b, _ := os.ReadFile(path)
			lines = strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(b) == 0 {
				lines = nil
			}
			return len(lines) >= n, strings.Join(lines, "\n")
		})
		return lines
	}
	request("first.js")
	for _, p := range []string{outPath, jsonPath, cefPath} {
		waitLines(p, 1)
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
	}
	reopened := strings.Count(g.logs.String(), "audit files reopened")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the SIGHUP to reopen the files", func() (bool, string) {
		return strings.Count(g.logs.String(), "audit files reopened") > reopened, lastLines(g.logs.String(), 5)
	})
	request("second.js")
	for _, p := range []string{outPath, jsonPath, cefPath} {
		old := waitLines(p+".1", 1)
		cur := waitLines(p, 1)
		if len(old) != 1 || !strings.Contains(old[0], "first.js") || len(cur) != 1 || !strings.Contains(cur[0], "second.js") {
			t.Errorf("%s: moved file %q, new file %q", filepath.Base(p), old, cur)
		}
	}
	cef := waitLines(cefPath, 1)[0]
	if !strings.HasPrefix(cef, "CEF:0|Glovebox|Glovebox|dev|proxy_request|") || !strings.Contains(cef, "request=http://127.0.0.1:1/second.js") {
		t.Errorf("CEF sink wrote %q", cef)
	}
	if js := waitLines(jsonPath, 1)[0]; !strings.HasPrefix(js, `{"time":`) || !strings.Contains(js, `"event":"proxy_request"`) {
		t.Errorf("JSON sink wrote %q", js)
	}
}
