package isolate

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
)

func TestWithSound(t *testing.T) {
	args := withSound(chromiumArgs("/tmp/glovebox-1", Spec{Width: 800, Height: 600}, nil))
	if slices.Contains(args, "--mute-audio") {
		t.Errorf("args keep --mute-audio: %q", args)
	}
	if !slices.Contains(args, "--autoplay-policy=no-user-gesture-required") || args[len(args)-1] != "about:blank" {
		t.Errorf("args = %q, want the autoplay flag before about:blank", args)
	}
	if muted := chromiumArgs("/tmp/glovebox-1", Spec{Width: 800, Height: 600}, nil); !slices.Contains(muted, "--mute-audio") {
		t.Errorf("a browser without sound lacks --mute-audio: %q", muted)
	}
}

// tonePage plays a 440 Hz tone as soon as it loads.
const tonePage = `data:text/html,<script>const a=new AudioContext(),o=a.createOscillator();o.frequency.value=440;o.connect(a.destination);o.start()</script>`

// openPage opens u in a new target of the browser whose DevTools is at
// the ws:// address devtools, reachable over TCP.
func openPage(t *testing.T, devtools, u string) {
	t.Helper()
	d, err := url.Parse(devtools)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+d.Host+"/json/new?"+url.PathEscape(u), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open page: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("open page: %s: %s", resp.Status, body)
	}
}

// readSound reads the FIFO at path until it has given a second of PCM that
// is not silence, and returns the largest sample it saw; it fails the test
// after a minute.
func readSound(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	f.SetReadDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(f)
	peak, loud := 0, 0
	for loud < AudioRate {
		var s [4]byte
		if _, err := io.ReadFull(r, s[:]); err != nil {
			t.Fatalf("read sound after %d loud samples: %v", loud, err)
		}
		v := int(int16(binary.LittleEndian.Uint16(s[:])))
		if v < 0 {
			v = -v
		}
		if v > 0 {
			loud++
		}
		peak = max(peak, v)
	}
	return peak
}

// netSockets returns the inodes of the host's TCP and UDP sockets.
func netSockets(t *testing.T) map[string]bool {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6", "raw", "raw6"} {
		data, err := os.ReadFile("/proc/net/" + f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 {
				inodes[fs[9]] = true
			}
		}
	}
	return inodes
}

func TestProcessSound(t *testing.T) {
	needChromium(t)
	if _, err := os.Stat(DefaultProcessConfig().PulseAudio); err != nil {
		testenv.Missing(t, "needs PulseAudio (make test installs pulseaudio): %v", err)
	}
	p := newTestProcess(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b, err := p.Start(ctx, Spec{TabID: "tab-sound"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	if want := filepath.Join(testDir, b.ID, audioFIFOName); b.AudioPath != want {
		t.Fatalf("AudioPath = %q, want %q", b.AudioPath, want)
	}
	if args := cmdline(browserPid(t, b)); slices.Contains(args, "--mute-audio") {
		t.Errorf("a browser with a sound device has --mute-audio: %q", args)
	}

	// The sound device runs as the browser's user.
	var pulse int
	for _, pid := range procsNaming(filepath.Join(testDir, b.ID)) {
		if filepath.Base(cmdline(pid)[0]) == "pulseaudio" {
			pulse = pid
		}
	}
	if pulse == 0 {
		t.Fatal("no pulseaudio process naming the profile")
	}
	if os.Geteuid() == 0 {
		if got, want := statusField(pulse, "Uid"), "65534 65534 65534 65534"; got != want {
			t.Errorf("pulseaudio Uid = %q, want %q", got, want)
		}
	}

	// What the page plays comes out of the FIFO.
	openPage(t, b.DevToolsURL, tonePage)
	if peak := readSound(t, b.AudioPath); peak < 1000 {
		t.Errorf("the tone's peak is %d, want a tone well above silence", peak)
	}

	// Its one client, the browser, cannot load a network module.
	if pactl, err := exec.LookPath("pactl"); err == nil {
		cmd := exec.Command(pactl, "-s", "unix:"+filepath.Join(testDir, b.ID, pulseDirName, pulseSocketName),
			"load-module", "module-native-protocol-tcp", "listen=127.0.0.1")
		cmd.Env = []string{"HOME=" + testDir}
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		}
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("pactl load-module module-native-protocol-tcp succeeded: %s", out)
		} else {
			t.Logf("load-module refused as it should be: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}

	// Nor does the sound device hold a network socket: only its unix
	// socket and the FIFO.
	inet := netSockets(t)
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pulse) + "/fd")
	for _, fd := range fds {
		l, _ := os.Readlink("/proc/" + strconv.Itoa(pulse) + "/fd/" + fd.Name())
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && inet[strings.TrimSuffix(ino, "]")] {
			t.Errorf("pulseaudio holds a network socket: fd %s is %s", fd.Name(), l)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkGone(t, b) // pulseaudio too: its command line names the profile
}

func TestProcessNoSound(t *testing.T) {
	needChromium(t)
	p := newTestProcess(t, func(c *ProcessConfig) { c.PulseAudio = "" })
	b, err := p.Start(t.Context(), Spec{TabID: "tab-mute"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	if b.AudioPath != "" {
		t.Errorf("AudioPath = %q without a sound device", b.AudioPath)
	}
	if args := cmdline(browserPid(t, b)); !slices.Contains(args, "--mute-audio") {
		t.Errorf("a browser without a sound device lacks --mute-audio: %q", args)
	}
	for _, pid := range procsNaming(filepath.Join(testDir, b.ID)) {
		if filepath.Base(cmdline(pid)[0]) == "pulseaudio" {
			t.Errorf("pulseaudio %d runs for a browser without sound", pid)
		}
	}
}
