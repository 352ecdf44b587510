package render

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// chromiumPath is the real Chromium binary (not Debian's wrapper script).
const chromiumPath = "/usr/lib/chromium/chromium"

// testBrowser is a Chromium the tests start themselves: render must not
// import isolate, and these tests are about render, not about isolation. As
// root it runs as nobody with its sandbox on, as Glovebox's runtimes run it.
type testBrowser struct {
	cmd   *exec.Cmd
	dir   string
	wsURL string
	done  chan struct{}
}

func startBrowser(width, height int, extra ...string) (*testBrowser, error) {
	dir, err := os.MkdirTemp("", "glovebox-render-test-")
	if err != nil {
		return nil, err
	}
	b := &testBrowser{dir: dir, done: make(chan struct{})}
	cmd := exec.Command(chromiumPath,
		"--headless=new", "--remote-debugging-port=0", "--user-data-dir="+dir,
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-gpu", "--disable-breakpad",
		"--password-store=basic", "--use-mock-keychain", "--mute-audio", "--hide-scrollbars",
		"--disable-extensions", "--disable-features=Translate,MediaRouter,OptimizationHints,BackForwardCache,SpareRendererForSitePerProcess,PreloadTopChromeWebUI,WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup",
		// No name resolution: the test pages are on 127.0.0.1, and nothing
		// else (update checks, time sync) may leave the machine.
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		fmt.Sprintf("--window-size=%d,%d", width, height))
	cmd.Args = append(append(cmd.Args, extra...), "about:blank")
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			b.close()
			return nil, err
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		b.close()
		return nil, err
	}
	b.cmd = cmd
	go func() { cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
		if port, path, ok := strings.Cut(string(data), "\n"); err == nil && ok && strings.HasPrefix(path, "/devtools/browser/") {
			b.wsURL = "ws://127.0.0.1:" + port + strings.TrimSpace(path)
			return b, nil
		}
		select {
		case <-b.done:
			b.close()
			return nil, errors.New("chromium exited during start")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.close()
			return nil, errors.New("chromium did not open DevTools")
		}
	}
}

// kill kills the browser's process group, as a crash or an OOM kill would.
func (b *testBrowser) kill() {
	if b.cmd != nil {
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// close kills the browser and its crashpad handlers (which leave the group)
// and removes its profile.
func (b *testBrowser) close() {
	b.kill()
	for range 100 {
		pids := procsNaming(b.dir)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.RemoveAll(b.dir)
}

// procsNaming lists the live processes whose command line has s.
func procsNaming(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(data), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}
