package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ProcessConfig configures the process runtime, which runs Chromium as a
// child process with no container. It is for development only.
type ProcessConfig struct {
	// Chromium is the absolute path of the Chromium binary. Use the real
	// binary, not a wrapper script such as Debian's /usr/bin/chromium, which
	// adds flags of its own.
	Chromium string `mapstructure:"chromium"`
	// User is the unprivileged user (name or numeric uid) that Chromium runs
	// as when Glovebox runs as root. Chromium's sandbox refuses to run as
	// root, so root is not allowed. When Glovebox does not run as root,
	// Chromium runs as Glovebox's own user and this setting is ignored.
	User string `mapstructure:"user"`
	// Flags are extra Chromium command-line flags, each starting with "--".
	// A --disable-features value is added to Glovebox's own list. Flags that
	// turn the sandbox off or take DevTools or the profile from Glovebox are
	// refused.
	Flags []string `mapstructure:"flags"`
	// StartTimeout is how long a browser may take to open DevTools before
	// the start fails.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
	// TempDir is where the temporary profile directories go. It must be
	// reachable by User. Empty means the system's temporary directory
	// ($TMPDIR, or /tmp).
	TempDir string `mapstructure:"temp_dir"`
}

// DefaultProcessConfig returns the process runtime's defaults.
func DefaultProcessConfig() ProcessConfig {
	return ProcessConfig{
		Chromium:     "/usr/lib/chromium/chromium",
		User:         "nobody",
		StartTimeout: 20 * time.Second,
		TempDir:      os.TempDir(),
	}
}

// ownedFlags are set by the runtime or would weaken the isolation it gives;
// Flags must not contain them.
var ownedFlags = map[string]string{
	"--no-sandbox":                "Chromium's sandbox stays on",
	"--disable-setuid-sandbox":    "Chromium's sandbox stays on",
	"--single-process":            "it removes the renderer sandbox",
	"--no-zygote":                 "Chromium's sandbox stays on",
	"--remote-debugging-port":     "the runtime sets it",
	"--remote-debugging-pipe":     "the runtime uses the DevTools port",
	"--remote-debugging-address":  "the runtime sets DevTools up",
	"--user-data-dir":             "the runtime gives each browser its own profile",
	"--window-size":               "it is set from each tab's viewport",
	"--force-device-scale-factor": "it is set from each tab's scale",
}

// Validate reports every setting that is wrong, naming its key.
func (c ProcessConfig) Validate() error {
	var errs []error
	if c.Chromium == "" || !filepath.IsAbs(c.Chromium) {
		errs = append(errs, fmt.Errorf("chromium: %q must be an absolute path", c.Chromium))
	}
	if c.User == "" {
		errs = append(errs, errors.New("user: must not be empty"))
	} else if c.User == "root" || c.User == "0" {
		errs = append(errs, errors.New("user: Chromium's sandbox does not run as root; use an unprivileged user such as nobody"))
	}
	errs = append(errs, flagErrors(c.Flags, nil)...)
	if c.StartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("start_timeout: %v must be positive", c.StartTimeout))
	}
	if c.TempDir != "" && !filepath.IsAbs(c.TempDir) {
		errs = append(errs, fmt.Errorf("temp_dir: %q must be an absolute path", c.TempDir))
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolate process config: %w", errors.Join(errs...))
	}
	return nil
}

// flagErrors reports each of flags that is not a flag or is refused by
// ownedFlags or by the runtime's own refused list (which may be nil), naming
// its index under the key "flags".
func flagErrors(flags []string, refused map[string]string) []error {
	var errs []error
	for i, f := range flags {
		name, _, _ := strings.Cut(f, "=")
		if !strings.HasPrefix(f, "--") || len(name) < 3 {
			errs = append(errs, fmt.Errorf("flags[%d]: %q must start with --", i, f))
			continue
		}
		why, ok := ownedFlags[name]
		if !ok {
			why, ok = refused[name]
		}
		if ok {
			errs = append(errs, fmt.Errorf("flags[%d]: %s is not allowed: %s", i, name, why))
		}
	}
	return errs
}
