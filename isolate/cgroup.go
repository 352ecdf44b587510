package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The CPU weight of the cgroup parent of every browser container, against
// its siblings: Glovebox's own cgroup (a systemd service's, or the root
// where Glovebox's threads each weigh as much as a whole cgroup). A quarter
// of the default: when the CPU is short, all the browsers together get a
// quarter of what Glovebox gets, so the proxy and the tabs' capture and
// encoding go first, and the remote pages' rendering takes what is left
// (each container is further capped by cpus).
const (
	browsersCPUShares = 256 // cgroup v1 cpu.shares (default 1024)
	browsersCPUWeight = 25  // cgroup v2 cpu.weight (default 100)
)

// weighCgroupParent sets the CPU weight of the containers' cgroup parent,
// which runc makes with the default weight when it makes the first
// container's cgroup.
func weighCgroupParent() error {
	var errs []error
	for _, f := range []struct{ path, value string }{
		{filepath.Join(cgroupFS, cgroupParent, "cpu.weight"), strconv.Itoa(browsersCPUWeight)},
		{filepath.Join(cgroupFS, "cpu", cgroupParent, "cpu.shares"), strconv.Itoa(browsersCPUShares)},
	} {
		if _, err := os.Stat(f.path); err != nil {
			continue // not this cgroup version, or no cpu controller there
		}
		if err := os.WriteFile(f.path, []byte(f.value), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("set the browsers' CPU weight: %w", err))
		}
	}
	return errors.Join(errs...)
}

// oomKills is how many processes of container id the kernel killed for
// going over the container's memory limit: oom_kill in memory.events
// (cgroup v2) or memory.oom_control (v1), 0 when neither can be read.
func oomKills(id string) int {
	for _, f := range []string{
		filepath.Join(cgroupFS, cgroupParent, id, "memory.events"),
		filepath.Join(cgroupFS, "memory", cgroupParent, id, "memory.oom_control"),
	} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
	}
	return 0
}
