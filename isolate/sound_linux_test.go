//go:build linux

package isolate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestContainerdSound: a container's browser plays into a PulseAudio in
// the same container (its PID and network namespaces, its user), whose
// FIFO the host reads from the container's directory.
func TestContainerdSound(t *testing.T) {
	needContainerd(t)
	c := newTestContainerd(t, nil, nil)
	if c.cfg.PulseAudio == "" {
		t.Fatal("the default containerd config has no sound device")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b, err := c.Start(ctx, Spec{TabID: "tab-sound"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	cb := ctrState(t, c, b)
	if want := filepath.Join(cb.dir, "sound", audioFIFOName); b.AudioPath != want {
		t.Fatalf("AudioPath = %q, want %q", b.AudioPath, want)
	}
	init := int(cb.task.Pid())
	var pulse int
	for _, pid := range containerPids(b.ID) {
		if args := cmdline(pid); len(args) > 0 && filepath.Base(args[0]) == "pulseaudio" {
			pulse = pid
		}
	}
	if pulse == 0 {
		t.Fatal("no pulseaudio in the container's cgroup")
	}
	for _, ns := range []string{"net", "pid", "mnt"} {
		if nsOf(pulse, ns) != nsOf(init, ns) {
			t.Errorf("pulseaudio is not in the browser's %s namespace", ns)
		}
	}
	if got, want := statusField(pulse, "Uid"), "1000 1000 1000 1000"; got != want {
		t.Errorf("pulseaudio Uid = %q, want %q", got, want)
	}
	if args := cmdline(init); len(args) == 0 || filepath.Base(args[0]) != "chromium" {
		t.Errorf("the container's init is %q, want Chromium", args)
	}
	fi, err := os.Stat(filepath.Dir(b.AudioPath))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("sound directory: %v, %v; want mode 0700", fi.Mode(), err)
	}

	openPage(t, devtoolsBridge(t, b), tonePage)
	if peak := readSound(t, b.AudioPath); peak < 1000 {
		t.Errorf("the tone's peak is %d, want a tone well above silence", peak)
	}
}

// TestContainerdSoundSpec: with a sound device the container's init is a
// shell that starts PulseAudio and then becomes Chromium, unmuted and told
// the device's socket; the FIFO's directory is bound in after /run.
func TestContainerdSoundSpec(t *testing.T) {
	s := testCtrSpec()
	s.sound = "/var/lib/glovebox/containers/glovebox-0123456789ab/sound"
	spec := applySpec(t, s)
	args := spec.Process.Args
	if len(args) < 5 || args[0] != "/bin/sh" || args[1] != "-c" || args[3] != "sh" || args[4] != s.cfg.Chromium {
		t.Fatalf("args = %q, want /bin/sh -c SCRIPT sh CHROMIUM...", args)
	}
	script := args[2]
	for _, want := range []string{"'" + s.cfg.PulseAudio + "' '-n'", "'--disallow-module-loading'",
		"'--load=module-native-protocol-unix socket=" + containerPulse + "/native auth-anonymous=1'",
		"export PULSE_SERVER=unix:" + containerPulse + "/native", `exec "$@"`} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, "tcp") {
		t.Errorf("script names a TCP module:\n%s", script)
	}
	if slices.Contains(args, "--mute-audio") || !slices.Contains(args, "--autoplay-policy=no-user-gesture-required") {
		t.Errorf("Chromium's args: %q", args[4:])
	}
	m, i := mountAt(spec, containerSound)
	_, run := mountAt(spec, "/run")
	if i < 0 || m.Source != s.sound || !slices.Contains(m.Options, "noexec") || i < run {
		t.Errorf("sound mount %+v at %d (/run at %d)", m, i, run)
	}

	// Without one, Chromium is the init, muted, and nothing is bound.
	s.sound = ""
	spec = applySpec(t, s)
	if spec.Process.Args[0] != s.cfg.Chromium || !slices.Contains(spec.Process.Args, "--mute-audio") {
		t.Errorf("args without sound = %q", spec.Process.Args)
	}
	if _, i := mountAt(spec, containerSound); i >= 0 {
		t.Error("a sound mount without a sound device")
	}
}

// TestContainerdFilesDir: a container's files directory (downloads and
// uploads) is a directory of the browser's user in the container's own,
// mode 0700, bound at FilesPath: a file the host puts there is the one
// the browser sees, and it goes with the container.
func TestContainerdFilesDir(t *testing.T) {
	needContainerd(t)
	c := newTestContainerd(t, nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b, err := c.Start(ctx, Spec{TabID: "tab-files"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	cb := ctrState(t, c, b)
	if want := filepath.Join(cb.dir, "files"); b.FilesDir != want || b.FilesPath != containerFiles {
		t.Fatalf("FilesDir, FilesPath = %q, %q; want %q, %q", b.FilesDir, b.FilesPath, want, containerFiles)
	}
	fi, err := os.Stat(b.FilesDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("files directory: %v, %v; want mode 0700", fi, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != uint32(c.cfg.UID) {
		t.Errorf("files directory owner %v, want uid %d", fi.Sys(), c.cfg.UID)
	}
	if err := os.WriteFile(filepath.Join(b.FilesDir, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join("/proc", strconv.Itoa(int(cb.task.Pid())), "root", containerFiles, "hello.txt")
	if got, err := os.ReadFile(seen); err != nil || string(got) != "hello" {
		t.Errorf("the browser's %s/hello.txt: %q, %v; want the host's file", containerFiles, got, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.FilesDir); !os.IsNotExist(err) {
		t.Errorf("the files directory outlives the container: %v", err)
	}
}
