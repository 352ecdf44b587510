package isolate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The sound device of a browser: a PulseAudio of its own, started beside it
// as its user, that Chromium plays into and that writes what it plays to a
// FIFO Glovebox reads (Browser.AudioPath). PulseAudio is started with no
// configuration file (-n) and exactly three modules: the native protocol on
// a unix socket in the browser's private directory (no TCP, no network
// module), the pipe sink writing the FIFO, and suspend-on-idle so that a
// page that plays nothing costs nothing. Module loading is disallowed once
// it has started, so that the browser, its only client, cannot load a
// network module through the protocol.

// The sound device's format: what stream.Peer.WriteAudio takes, s16le
// stereo at 48 kHz, Opus's own rate, so that nothing is resampled.
const (
	// AudioRate is the sample rate of the PCM at Browser.AudioPath.
	AudioRate = 48000
	// AudioChannels is its channels, interleaved.
	AudioChannels = 2
)

// The sound device's files, under the browser's directory.
const (
	// pulseDirName holds PulseAudio's runtime and state (its socket).
	pulseDirName = "pulse"
	// pulseSocketName is the native protocol's socket in pulseDirName.
	pulseSocketName = "native"
	// audioFIFOName is the FIFO the pipe sink writes.
	audioFIFOName = "audio.fifo"
)

// soundFlags replace --mute-audio when a browser has a sound device. The
// autoplay policy is the user's own browser's to apply (the landing page
// plays sound once the user's browser lets it): a fresh remote profile,
// with no media engagement, would otherwise silence every page until a
// click, as no local browser the user knows does.
var soundFlags = []string{"--autoplay-policy=no-user-gesture-required"}

// withSound turns Chromium's command line args into one that plays sound:
// without --mute-audio, with soundFlags before the URL (the last arg).
func withSound(args []string) []string {
	out := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--mute-audio" })
	return slices.Insert(out, len(out)-1, soundFlags...)
}

// pulseArgs is PulseAudio's command line for a sound device whose socket
// and FIFO are at the paths given.
func pulseArgs(bin, socket, fifo string) []string {
	return []string{bin,
		"-n", // no default.pa: only the modules below
		"--daemonize=no", "--use-pid-file=no", "--system=no",
		"--exit-idle-time=-1", "--disallow-exit", "--disallow-module-loading",
		"--disable-shm=yes",                   // memfd and SysV shm are not needed for one client
		"--realtime=no", "--high-priority=no", // no rtkit over D-Bus
		"--log-target=stderr", "--log-level=error",
		"--load=module-native-protocol-unix socket=" + socket + " auth-anonymous=1",
		fmt.Sprintf("--load=module-pipe-sink file=%s sink_name=glovebox format=s16le rate=%d channels=%d use_system_clock_for_timing=yes",
			fifo, AudioRate, AudioChannels),
		"--load=module-suspend-on-idle timeout=1",
	}
}

// pulseEnv is PulseAudio's environment with its runtime directory dir:
// nothing of Glovebox's own.
func pulseEnv(home, dir string) []string {
	return []string{"HOME=" + home, "PATH=/usr/local/bin:/usr/bin:/bin",
		"XDG_RUNTIME_DIR=" + dir, "PULSE_RUNTIME_PATH=" + dir, "PULSE_STATE_PATH=" + dir,
		// No session bus to find, and none to start.
		"DBUS_SESSION_BUS_ADDRESS=disabled:"}
}

// waitFIFO waits until path is a FIFO: the pipe sink has made it, after the
// native protocol's socket (modules load in order). It gives up when exited
// is closed, ctx ends or timeout passes.
func waitFIFO(ctx context.Context, path string, exited <-chan struct{}, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Lstat(path); err == nil {
			if fi.Mode()&os.ModeNamedPipe == 0 {
				return fmt.Errorf("start sound device: %s is not a FIFO", filepath.Base(path))
			}
			return nil
		}
		select {
		case <-tick.C:
		case <-exited:
			return fmt.Errorf("start sound device: pulseaudio exited during start")
		case <-timer.C:
			return fmt.Errorf("start sound device: no FIFO within %v", timeout)
		case <-ctx.Done():
			return fmt.Errorf("start sound device: %w", ctx.Err())
		}
	}
}
