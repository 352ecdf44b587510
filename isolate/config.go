package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// PulseAudio is the PulseAudio program that gives each browser a sound
	// device of its own, run as User beside it; empty mutes the browsers.
	PulseAudio string `mapstructure:"pulseaudio"`
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
		PulseAudio:   "/usr/bin/pulseaudio",
		TempDir:      os.TempDir(),
	}
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
	if c.PulseAudio != "" && !filepath.IsAbs(c.PulseAudio) {
		errs = append(errs, fmt.Errorf("pulseaudio: %q must be an absolute path, or empty for no sound", c.PulseAudio))
	}
	if c.TempDir != "" && !filepath.IsAbs(c.TempDir) {
		errs = append(errs, fmt.Errorf("temp_dir: %q must be an absolute path", c.TempDir))
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolate process config: %w", errors.Join(errs...))
	}
	return nil
}
