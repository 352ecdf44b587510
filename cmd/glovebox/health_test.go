package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// getBody GETs url (no proxy) and returns the status and body; accept is
// the Accept header, "" for none.
func getBody(t testing.TB, url, accept string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealthz polls url until its answer satisfies ok, failing the test if
// it does not within d, and returns that answer.
func waitHealthz(t testing.TB, url string, d time.Duration, what string, ok func(code int, body string) bool) (int, string) {
	t.Helper()
	var code int
	var body string
	waitFor(t, d, what, func() (bool, string) {
		code, body = getBody(t, url, "")
		return ok(code, body), fmt.Sprintf("%d %q", code, body)
	})
	return code, body
}

// adminURL gives c a free admin address and returns its base URL.
func adminURL(t testing.TB, c *Config) string {
	c.Admin.Listen = "127.0.0.1:" + strconv.Itoa(freePort(t))
	return "http://" + c.Admin.Listen
}

// daemonPID finds the managed containerd of dataDir.
func daemonPID(t testing.TB, dataDir string) int {
	t.Helper()
	want := "--config " + filepath.Join(dataDir, "daemon", "config.toml")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && strings.Contains(cmdline(pid), want) {
			return pid
		}
	}
	t.Fatalf("no managed containerd of %s", dataDir)
	return 0
}

// TestContainerdHealthzDaemonRestart kills the managed containerd with
// SIGKILL while its binary is gone: /healthz, on the admin address and the
// proxy's, says 503 naming containerd, and the metric says 0; with the
// binary back, the supervisor restarts it, /healthz says 200, and a tab
// opened afterwards loads its page in a container.
func TestContainerdHealthzDaemonRestart(t *testing.T) {
	needContainerd(t)
	real, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "containerd")
	if err := os.Symlink(real, bin); err != nil {
		t.Fatal(err)
	}
	site := newTestSite(t)
	var admin string
	g := startContainerdGlovebox(t, site, 0, func(c *Config) {
		c.Isolate.Containerd.Binary = bin
		admin = adminURL(t, c)
	})
	own := "http://" + g.addr + "/healthz"
	for _, u := range []string{own, admin + "/healthz"} {
		if code, body := getBody(t, u, ""); code != 200 || body != "ok\n" {
			t.Fatalf("%s before: %d %q", u, code, body)
		}
	}

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(daemonPID(t, g.dataDir), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, body := waitHealthz(t, own, 60*time.Second, "/healthz to say containerd does not start", func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "\ncontainerd: ") && strings.Contains(body, "does not start again")
	})
	t.Logf("/healthz: %q", body)
	if code, adminBody := getBody(t, admin+"/healthz", ""); code != 503 || adminBody != body {
		t.Errorf("admin /healthz = %d %q, want the proxy's %q", code, adminBody, body)
	}
	if code, js := getBody(t, admin+"/healthz", "application/json"); code != 503 || !strings.Contains(js, `{"name":"containerd","ok":false,"error":"isolate: containerd unavailable`) {
		t.Errorf("JSON /healthz = %d %s", code, js)
	}
	if _, m := getBody(t, admin+"/metrics", ""); !strings.Contains(m, "glovebox_health{check=\"containerd\"} 0\n") || !strings.Contains(m, "glovebox_health{check=\"audit\"} 1\n") {
		t.Errorf("metrics lack the failing containerd check:\n%s", m)
	}

	if err := os.Symlink(real, bin); err != nil {
		t.Fatal(err)
	}
	waitHealthz(t, own, 90*time.Second, "/healthz to recover", func(code int, body string) bool { return code == 200 && body == "ok\n" })

	// A tab opened after the restart gets a container that loads its page.
	openTab(t, g, site)
}

// TestHealthzAuditDiskFull: the audit file on a file system that fills up.
// /healthz says 503 naming audit once an event could not be written, and
// 200 again once one is; meanwhile the proxy serves allowed traffic, and
// glovebox_audit_lost_total counts each event lost.
func TestHealthzAuditDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		missing(t, "mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		missing(t, "mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	var admin, adminBase string
	origin := newTestSiteAt(t, "127.0.0.2:0")
	g := startGlovebox(t, func(c *Config) {
		c.Audit.Output = filepath.Join(dir, "audit.log")
		adminBase = adminURL(t, c)
		admin = adminBase + "/healthz"
		allowOrigin2(c)
	})
	// An isolated site's script is refused, and audited.
	request := func() {
		t.Helper()
		resp, err := g.proxied.Get("http://127.0.0.1:1/app.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("request: %s", resp.Status)
		}
	}
	request()
	if code, body := getBody(t, admin, ""); code != 200 {
		t.Fatalf("/healthz with room on the disk: %d %q", code, body)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 4096))
	}
	f.Close()
	if !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	// The audit file's last page may hold a few more events: the first
	// that needs a new one fails.
	code, body := 200, ""
	for i := 0; i < 100 && code == 200; i++ {
		request()
		code, body = getBody(t, admin, "")
	}
	if code != 503 || !strings.Contains(body, "\naudit: ") || !strings.Contains(body, "no space left on device") {
		t.Errorf("/healthz with the disk full: %d %q, want 503 naming audit", code, body)
	}
	if own, ownBody := getBody(t, "http://"+g.addr+"/healthz", ""); own != code || ownBody != body {
		t.Errorf("the proxy's /healthz = %d %q, want the admin's", own, ownBody)
	}
	// Allowed traffic passes while its events are lost, and each lost
	// event is counted.
	lost := func() float64 {
		t.Helper()
		_, m := getBody(t, adminBase+"/metrics", "")
		for line := range strings.Lines(m) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "glovebox_audit_lost_total "); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("metrics: %q", line)
				}
				return n
			}
		}
		return 0
	}
	before := lost()
	if before < 1 {
		t.Errorf("glovebox_audit_lost_total = %v with events lost, want at least 1", before)
	}
	passThrough(t, g, origin)
	for range 4 {
		request()
	}
	if after := lost(); after != before+5 {
		t.Errorf("glovebox_audit_lost_total went from %v to %v over 5 requests with the disk full, want +5", before, after)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	request()
	if code, body := getBody(t, admin, ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz once the disk has room: %d %q", code, body)
	}
}

// TestHealthzPoolFailing: a warm pool whose browsers cannot start (the
// configured Chromium exits at once) makes /healthz say 503 naming pool.
func TestHealthzPoolFailing(t *testing.T) {
	needChromium(t)
	var admin string
	startGlovebox(t, func(c *Config) {
		c.Isolate.Process.Chromium = "/usr/bin/false"
		c.Isolate.Pool.Size = 1
		c.Isolate.Pool.RetryDelay = 10 * time.Millisecond
		admin = adminURL(t, c) + "/healthz"
	})
	_, body := waitHealthz(t, admin, 60*time.Second, "/healthz to name the pool", func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "\npool: ")
	})
	t.Logf("/healthz: %q", body)
	if !strings.Contains(body, "warm starts failed") || !strings.Contains(body, "exited during start") {
		t.Errorf("/healthz = %q, want the failures and the runtime's reason", body)
	}
	if strings.Contains(body, "audit") {
		t.Errorf("/healthz names a passing check: %q", body)
	}
}
