package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
)

// testDir holds the profiles of the tests' browsers and the fake Chromiums.
// It is world-readable so that the unprivileged user reaches its profiles.
var testDir string

// skipReason is set when this machine cannot run the runtime's tests.
var skipReason string

func TestMain(m *testing.M) {
	if runtime.GOOS != "linux" {
		skipReason = "the process runtime needs Linux"
	} else if _, err := os.Stat(DefaultProcessConfig().Chromium); err != nil {
		skipReason = "no Chromium: " + err.Error()
	}
	dir, err := os.MkdirTemp("", "glovebox-isolate-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDir = dir
	code := m.Run()
	// Leak check: no profile and no process of any test browser is left.
	if code == 0 && skipReason == "" {
		if left := leftProfiles(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "leaked profiles: %v\n", left)
			code = 1
		}
		if pids := procsNaming(testDir); len(pids) > 0 {
			fmt.Fprintf(os.Stderr, "leaked processes: %v\n", pids)
			code = 1
		}
		if g := isolateGoroutines(); g != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", g)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// isolateGoroutines returns the stacks of goroutines running this package's
// code (a browser's wait or output reader), after a grace period.
func isolateGoroutines() string {
	var leaked []string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "glovebox/isolate.(*") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.Join(leaked, "\n\n")
}

func needChromium(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestProcess(t *testing.T, edit func(*ProcessConfig)) *Process {
	t.Helper()
	cfg := DefaultProcessConfig()
	cfg.TempDir = testDir
	if edit != nil {
		edit(&cfg)
	}
	p, err := NewProcess(cfg, testLogger())
	if err != nil {
		t.Fatalf("NewProcess: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Process.Close: %v", err)
		}
	})
	return p
}

// leftProfiles lists the profile directories in testDir.
func leftProfiles() []string {
	ents, _ := os.ReadDir(testDir)
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "glovebox-") {
			left = append(left, e.Name())
		}
	}
	return left
}

// procsNaming lists the live processes of any user whose command line has s.
func procsNaming(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, ok := readProcStat(pid); !ok || st.state == 'Z' {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(data), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cmdline returns the arguments of pid. Chromium's zygote rewrites the
// title of its children, whose arguments are then separated by spaces.
func cmdline(pid int) []string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.FieldsFunc(string(data), func(r rune) bool { return r == 0 || r == ' ' })
}

// statusField returns a field of /proc/PID/status, such as "Uid".
func statusField(pid int, name string) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// browserPid returns the pid of the browser process (no --type= flag).
func browserPid(t *testing.T, b *Browser) int {
	t.Helper()
	for _, pid := range procsNaming(filepath.Join(testDir, b.ID)) {
		args := cmdline(pid)
		if filepath.Base(args[0]) == "chromium" && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--type=") }) {
			return pid
		}
	}
	t.Fatalf("no browser process for %s", b.ID)
	return 0
}

func checkGone(t *testing.T, b *Browser) {
	t.Helper()
	dir := filepath.Join(testDir, b.ID)
	if pids := procsNaming(dir); len(pids) > 0 {
		t.Errorf("processes naming %s still alive after Close: %v", dir, pids)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("profile %s still there after Close: %v", dir, err)
	}
	select {
	case <-b.Done():
	default:
		t.Error("Done not closed after Close")
	}
}

func TestProcessStart(t *testing.T) {
	needChromium(t)
	p := newTestProcess(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := p.Start(ctx, Spec{TabID: "tab-1", Width: 800, Height: 600})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	if b.Runtime != "process" || !strings.HasPrefix(b.ID, "glovebox-") {
		t.Errorf("Runtime, ID = %q, %q", b.Runtime, b.ID)
	}
	if got := p.Running(); got != 1 {
		t.Errorf("Running = %d, want 1", got)
	}

	// DevTools answers on the address, and names the same browser.
	u, err := url.Parse(b.DevToolsURL)
	if err != nil || u.Scheme != "ws" || u.Hostname() != "127.0.0.1" || !strings.HasPrefix(u.Path, "/devtools/browser/") {
		t.Fatalf("DevToolsURL %q: %v", b.DevToolsURL, err)
	}
	resp, err := http.Get("http://" + u.Host + "/json/version")
	if err != nil {
		t.Fatalf("GET /json/version: %v", err)
	}
	var version struct{ Browser, WebSocketDebuggerURL string }
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &version); err != nil {
		t.Fatalf("/json/version: %v: %s", err, body)
	}
	if !strings.Contains(version.Browser, "Chrome/") || version.WebSocketDebuggerURL != b.DevToolsURL {
		t.Errorf("/json/version = %+v, want the browser at %s", version, b.DevToolsURL)
	}

	// The browser runs as the unprivileged user, with the window size asked.
	pid := browserPid(t, b)
	if os.Geteuid() == 0 {
		want := "65534 65534 65534 65534"
		if got := statusField(pid, "Uid"); got != want {
			t.Errorf("browser Uid = %q, want %q", got, want)
		}
		if got := statusField(pid, "Gid"); got != want {
			t.Errorf("browser Gid = %q, want %q", got, want)
		}
		fi, err := os.Stat(filepath.Join(testDir, b.ID))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 || fi.Mode().Perm() != 0o700 {
			t.Errorf("profile dir: %v, %v", fi.Mode(), err)
		}
	}
	if args := cmdline(pid); !slices.Contains(args, "--window-size=800,600") {
		t.Errorf("browser args lack --window-size=800,600: %q", args)
	}

	// The sandbox is on: no process has --no-sandbox, and a renderer runs
	// under seccomp-BPF.
	deadline := time.Now().Add(10 * time.Second)
	for {
		sandboxed := false
		for _, pid := range procsNaming(filepath.Join(testDir, b.ID)) {
			args := cmdline(pid)
			if slices.Contains(args, "--no-sandbox") {
				t.Fatalf("pid %d runs with --no-sandbox: %q", pid, args)
			}
			if slices.Contains(args, "--type=renderer") && statusField(pid, "Seccomp") == "2" {
				sandboxed = true
			}
		}
		if sandboxed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no renderer with Seccomp: 2")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Close kills every process (crashpad included) and removes the profile.
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkGone(t, b)
	if got := p.Running(); got != 0 {
		t.Errorf("Running after Close = %d, want 0", got)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestProcessKilledFromOutside(t *testing.T) {
	needChromium(t)
	p := newTestProcess(t, nil)
	b, err := p.Start(t.Context(), Spec{TabID: "tab-kill"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	if err := syscall.Kill(browserPid(t, b), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the browser was killed")
	}
	if got := p.Running(); got != 0 {
		t.Errorf("Running after the kill = %d, want 0", got)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkGone(t, b)
}

func TestProcessClose(t *testing.T) {
	needChromium(t)
	p := newTestProcess(t, nil)
	var bs []*Browser
	for i := range 2 {
		b, err := p.Start(t.Context(), Spec{TabID: fmt.Sprint("tab-", i), Width: 640, Height: 480})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		bs = append(bs, b)
	}
	if got := p.Running(); got != 2 {
		t.Errorf("Running = %d, want 2", got)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Process.Close: %v", err)
	}
	for _, b := range bs {
		checkGone(t, b)
	}
	if _, err := p.Start(t.Context(), Spec{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// fakeChromium writes an executable script that stands in for Chromium.
func fakeChromium(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(testDir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return path
}

func TestProcessStartFailures(t *testing.T) {
	needChromium(t)
	// The hung fakes leave a child in the group; "sleep 3607" finds it.
	hang := "sleep 3607 &\nwait"
	tests := []struct {
		name     string
		chromium string
		timeout  time.Duration // StartTimeout
		ctxLimit time.Duration
		want     string
		wantErr  error
	}{
		{name: "missing binary", chromium: filepath.Join(testDir, "no-such-chromium"), want: "no such file"},
		{name: "exits", chromium: fakeChromium(t, "fake-exits", "echo 'fake: No usable sandbox!' >&2\nexit 3"), want: "No usable sandbox!"},
		{name: "hangs", chromium: fakeChromium(t, "fake-hangs", hang), timeout: time.Second, want: "did not open within 1s"},
		{name: "ctx ends", chromium: fakeChromium(t, "fake-hangs-ctx", hang), ctxLimit: 500 * time.Millisecond, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProcess(t, func(c *ProcessConfig) {
				c.Chromium = tt.chromium
				if tt.timeout > 0 {
					c.StartTimeout = tt.timeout
				}
			})
			ctx := t.Context()
			if tt.ctxLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxLimit)
				defer cancel()
			}
			start := time.Now()
			b, err := p.Start(ctx, Spec{TabID: "tab-fail"})
			if err == nil {
				b.Close()
				t.Fatal("Start succeeded")
			}
			t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
			if left := leftProfiles(); len(left) > 0 {
				t.Errorf("profiles left: %v", left)
			}
			if pids := slices.Concat(procsNaming(tt.chromium), procsNaming("sleep\x003607")); len(pids) > 0 {
				t.Errorf("processes left: %v", pids)
			}
			if got := p.Running(); got != 0 {
				t.Errorf("Running = %d, want 0", got)
			}
		})
	}
}

func TestProcessConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ProcessConfig)
		want string // "" means valid
	}{
		{"default", func(*ProcessConfig) {}, ""},
		{"empty temp dir", func(c *ProcessConfig) { c.TempDir = "" }, ""},
		{"extra flags", func(c *ProcessConfig) { c.Flags = []string{"--lang=de", "--disable-features=Foo"} }, ""},
		{"relative chromium", func(c *ProcessConfig) { c.Chromium = "chromium" }, "chromium:"},
		{"no user", func(c *ProcessConfig) { c.User = "" }, "user:"},
		{"root", func(c *ProcessConfig) { c.User = "root" }, "user:"},
		{"no sandbox", func(c *ProcessConfig) { c.Flags = []string{"--no-sandbox"} }, "flags[0]: --no-sandbox"},
		{"profile", func(c *ProcessConfig) { c.Flags = []string{"--lang=de", "--user-data-dir=/x"} }, "flags[1]: --user-data-dir"},
		{"not a flag", func(c *ProcessConfig) { c.Flags = []string{"about:blank"} }, "flags[0]"},
		{"timeout", func(c *ProcessConfig) { c.StartTimeout = 0 }, "start_timeout:"},
		{"relative temp dir", func(c *ProcessConfig) { c.TempDir = "tmp" }, "temp_dir:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultProcessConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestSpecNormalize(t *testing.T) {
	if s, err := (Spec{}).normalize(); err != nil || s.Width != DefaultWidth || s.Height != DefaultHeight || s.Scale != 1 {
		t.Errorf("zero Spec = %+v, %v", s, err)
	}
	for _, s := range []Spec{{Width: -1, Height: 10}, {Width: 10}, {Width: 100000, Height: 10}, {Scale: -1}, {Scale: 5}, {Scale: math.NaN()}} {
		if _, err := s.normalize(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

func TestArgsName(t *testing.T) {
	dir := "/tmp/glovebox-12"
	tests := []struct {
		args string
		want bool
	}{
		{"chromium\x00--user-data-dir=/tmp/glovebox-12\x00about:blank", true},
		{"crashpad\x00--database=/tmp/glovebox-12/.config/chromium/Crash Reports", true},
		{"chromium\x00--user-data-dir=/tmp/glovebox-123", false},
		{"chromium\x00--user-data-dir=/tmp/glovebox-123/x", false},
		{"chromium --type=renderer --user-data-dir=/tmp/glovebox-12 --lang=en-US", true},
		{"chromium --user-data-dir=/tmp/glovebox-123 --user-data-dir=/tmp/glovebox-12", true},
		{"ls", false},
	}
	for _, tt := range tests {
		if got := argsName(tt.args, dir); got != tt.want {
			t.Errorf("argsName(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
