package isolate

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/distribution/reference"
)

// AddressManaged is the ContainerdConfig.Address that makes Glovebox run a
// containerd of its own.
const AddressManaged = "managed"

// RootFSHost is the ContainerdConfig.RootFS that builds each container's root
// from the host's own Chromium install instead of an image.
const RootFSHost = "host"

// ContainerdConfig configures the containerd runtime, which runs each browser
// in a container of its own, never reused.
type ContainerdConfig struct {
	// Address is "managed" to have Glovebox start a containerd of its own
	// under data_dir and stop it when Glovebox stops, or the socket path of
	// a containerd that is already running (such as
	// /run/containerd/containerd.sock).
	Address string `mapstructure:"address"`
	// Namespace is the containerd namespace Glovebox's containers are
	// created in. At start, every container labelled as Glovebox's in it
	// is removed: give each Glovebox on a host a namespace of its own.
	Namespace string `mapstructure:"namespace"`
	// DataDir holds the managed containerd's root, state and socket, the
	// template root file system of "host" mode, the browsers' managed
	// policy file and a small directory per container. It must be on a local file system, and its path short
	// enough for a socket (about 80 bytes).
	DataDir string `mapstructure:"data_dir"`
	// Binary is the containerd program started in managed mode: a path, or
	// a name looked up in PATH.
	Binary string `mapstructure:"binary"`
	// RootFS is "host", to build each container's root from read-only
	// binds of the host's /usr, fonts and certificates (Chromium must be
	// installed on the host), or the reference of an OCI image with
	// Chromium, such as registry.example.com/glovebox/browser:1 (built
	// from deploy/Containerfile), pulled and unpacked through containerd
	// at start when it is not there yet.
	RootFS string `mapstructure:"rootfs"`
	// Chromium is the path of the Chromium binary inside the container's
	// root. Use the real binary, not a wrapper script such as Debian's
	// /usr/bin/chromium. In "host" mode it must be under /usr.
	Chromium string `mapstructure:"chromium"`
	// Flags are extra Chromium command-line flags, each starting with "--".
	// A --disable-features value is added to Glovebox's own list. Flags that
	// turn the sandbox off, take DevTools or the profile from Glovebox, or
	// change the proxy are refused.
	Flags []string `mapstructure:"flags"`
	// PulseAudio is the PulseAudio program inside the container's root
	// that gives the browser a sound device, run in the same container
	// as the same user; empty mutes the browsers. In "host" mode it must
	// be under /usr.
	PulseAudio string `mapstructure:"pulseaudio"`
	// UID and GID are the unprivileged user and group Chromium runs as
	// inside the container. Chromium's sandbox refuses to run as root.
	UID int `mapstructure:"uid"`
	GID int `mapstructure:"gid"`
	// MemoryMB is each container's memory limit in MiB, tmpfs contents
	// included. A browser that goes over it is killed, and its tab ends
	// (Browser.OutOfMemory says why).
	MemoryMB int `mapstructure:"memory_mb"`
	// CPUs is each container's CPU quota in cores, such as 0.5 or 2.
	CPUs float64 `mapstructure:"cpus"`
	// CPUWeight is the CPU weight of all the browsers together (the
	// cgroup parent of their containers) against a sibling cgroup of the
	// default weight, 100: Glovebox's own under systemd, or each of
	// Glovebox's threads in the root cgroup. It counts only when the CPU is
	// short. 100 (the default) splits it evenly, which already leaves
	// Glovebox more than it needs (its capture and encoding cost about a
	// quarter of what the browsers do); lower it if the proxy must win
	// outright, at the price of slower page loads on a busy node (25 made
	// the warm first frame 1.9 times as long on a 2-core machine where the
	// user's browser competed, BENCHMARKS.md).
	CPUWeight int `mapstructure:"cpu_weight"`
	// Pids is the most processes and threads a container may have.
	Pids int `mapstructure:"pids"`
	// TmpMB, ShmMB and HomeMB are the sizes in MiB of the container's
	// /tmp, /dev/shm and home directory (which holds the profile), all in
	// memory and counted against memory_mb.
	TmpMB  int `mapstructure:"tmp_mb"`
	ShmMB  int `mapstructure:"shm_mb"`
	HomeMB int `mapstructure:"home_mb"`
	// StartTimeout is how long a browser may take to open DevTools, and the
	// managed containerd to answer, before the start fails.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
	// TrustedCAs are DER certificates the browsers trust as roots besides
	// Chromium's own (the CACertificates policy): tls.extra_ca_files and
	// every rule's ca_file. It is not a setting of its own: the wiring
	// reads it from those files.
	TrustedCAs [][]byte `mapstructure:"-"`
}

// DefaultContainerdConfig returns the containerd runtime's defaults.
func DefaultContainerdConfig() ContainerdConfig {
	return ContainerdConfig{
		Address:      AddressManaged,
		Namespace:    "glovebox",
		DataDir:      "/var/lib/glovebox",
		Binary:       "containerd",
		RootFS:       RootFSHost,
		Chromium:     "/usr/lib/chromium/chromium",
		PulseAudio:   "/usr/bin/pulseaudio",
		UID:          1000,
		GID:          1000,
		MemoryMB:     1024,
		CPUs:         1,
		Pids:         512,
		CPUWeight:    100,
		TmpMB:        256,
		ShmMB:        256,
		HomeMB:       256,
		StartTimeout: 30 * time.Second,
	}
}

// proxyFlags would take a browser's traffic away from the egress proxy.
var proxyFlags = map[string]string{
	"--proxy-server":      "the runtime sends every request through the egress proxy",
	"--proxy-pac-url":     "the runtime sends every request through the egress proxy",
	"--proxy-auto-detect": "the runtime sends every request through the egress proxy",
	"--proxy-bypass-list": "the runtime sends every request through the egress proxy",
	"--no-proxy-server":   "the runtime sends every request through the egress proxy",
}

// maxSocketPath keeps the managed socket under the 108 bytes of sun_path,
// with room for the ".ttrpc" socket containerd puts beside it.
const maxSocketPath = 100

// Validate reports every setting that is wrong, naming its key.
func (c ContainerdConfig) Validate() error {
	var errs []error
	switch {
	case c.Address == "":
		errs = append(errs, errors.New(`address: must be "managed" or the path of a containerd socket`))
	case c.Address != AddressManaged && !filepath.IsAbs(strings.TrimPrefix(c.Address, "unix://")):
		errs = append(errs, fmt.Errorf(`address: %q must be "managed" or the absolute path of a containerd socket`, c.Address))
	}
	if err := identifiers.Validate(c.Namespace); err != nil {
		errs = append(errs, fmt.Errorf("namespace: %q: letters, digits, '.', '_' and '-' only, starting with a letter or digit", c.Namespace))
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data_dir: %q must be an absolute path", c.DataDir))
	} else if c.Address == AddressManaged && len(daemonSocket(c.DataDir)) > maxSocketPath {
		errs = append(errs, fmt.Errorf("data_dir: %q is too long for the managed containerd's socket %s (at most %d bytes)", c.DataDir, daemonSocket(c.DataDir), maxSocketPath))
	} else if s := devtoolsSocket(filepath.Join(c.DataDir, "containers", newContainerID())); len(s) > maxSocketPath {
		errs = append(errs, fmt.Errorf("data_dir: %q is too long for the browsers' DevTools sockets such as %s (at most %d bytes)", c.DataDir, s, maxSocketPath))
	}
	if c.Address == AddressManaged && c.Binary == "" {
		errs = append(errs, errors.New("binary: must name the containerd program"))
	}
	if c.RootFS == "" {
		errs = append(errs, errors.New(`rootfs: must be "host" or an image reference`))
	} else if c.RootFS != RootFSHost {
		if _, err := reference.ParseDockerRef(c.RootFS); err != nil {
			errs = append(errs, fmt.Errorf("rootfs: %q is not an image reference: %v", c.RootFS, err))
		}
	}
	if c.Chromium == "" || !filepath.IsAbs(c.Chromium) {
		errs = append(errs, fmt.Errorf("chromium: %q must be an absolute path", c.Chromium))
	} else if c.RootFS == RootFSHost && !strings.HasPrefix(filepath.Clean(c.Chromium), "/usr/") {
		errs = append(errs, fmt.Errorf("chromium: %q must be under /usr, the only program directory rootfs \"host\" binds", c.Chromium))
	}
	if c.PulseAudio != "" && !filepath.IsAbs(c.PulseAudio) {
		errs = append(errs, fmt.Errorf("pulseaudio: %q must be an absolute path, or empty for no sound", c.PulseAudio))
	} else if c.PulseAudio != "" && c.RootFS == RootFSHost && !strings.HasPrefix(filepath.Clean(c.PulseAudio), "/usr/") {
		errs = append(errs, fmt.Errorf("pulseaudio: %q must be under /usr, the only program directory rootfs \"host\" binds", c.PulseAudio))
	}
	errs = append(errs, flagErrors(c.Flags, proxyFlags)...)
	if c.UID <= 0 {
		errs = append(errs, fmt.Errorf("uid: %d must be an unprivileged user (above 0): Chromium's sandbox does not run as root", c.UID))
	}
	if c.GID <= 0 {
		errs = append(errs, fmt.Errorf("gid: %d must be an unprivileged group (above 0)", c.GID))
	}
	if c.MemoryMB < 128 {
		errs = append(errs, fmt.Errorf("memory_mb: %d is too small for Chromium (at least 128)", c.MemoryMB))
	}
	if math.IsNaN(c.CPUs) || c.CPUs < 0.01 || c.CPUs > 1024 {
		errs = append(errs, fmt.Errorf("cpus: %v must be between 0.01 and 1024", c.CPUs))
	}
	if c.CPUWeight < 1 || c.CPUWeight > 10000 {
		errs = append(errs, fmt.Errorf("cpu_weight: %d must be between 1 and 10000 (100 is the default weight)", c.CPUWeight))
	}
	if c.Pids < 32 {
		errs = append(errs, fmt.Errorf("pids: %d is too small for Chromium's processes and threads (at least 32)", c.Pids))
	}
	for _, s := range []struct {
		key string
		mb  int
	}{{"tmp_mb", c.TmpMB}, {"shm_mb", c.ShmMB}, {"home_mb", c.HomeMB}} {
		if s.mb <= 0 {
			errs = append(errs, fmt.Errorf("%s: %d must be positive", s.key, s.mb))
		}
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("start_timeout: %v must be positive", c.StartTimeout))
	}
	for i, der := range c.TrustedCAs {
		if _, err := x509.ParseCertificate(der); err != nil {
			errs = append(errs, fmt.Errorf("trusted CA %d (from tls.extra_ca_files or a rule's ca_file): %w", i, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolate containerd config: %w", errors.Join(errs...))
	}
	return nil
}

// daemonDir holds the managed containerd's config, root, state, socket and
// log.
func daemonDir(dataDir string) string { return filepath.Join(dataDir, "daemon") }

// daemonSocket is the managed containerd's socket.
func daemonSocket(dataDir string) string {
	return filepath.Join(daemonDir(dataDir), "containerd.sock")
}
