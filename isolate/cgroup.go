package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// weighCgroupParent sets the CPU weight of the containers' cgroup parent
// (ContainerdConfig.CPUWeight, cgroup v2's scale: 100 is the default),
// which runc makes with the default weight when it makes the first
// container's cgroup. On cgroup v1 it is cpu.shares, whose default is 1024.
func weighCgroupParent(weight int) error {
	var errs []error
	for _, f := range []struct{ path, value string }{
		{filepath.Join(cgroupFS, cgroupParent, "cpu.weight"), strconv.Itoa(weight)},
		{filepath.Join(cgroupFS, "cpu", cgroupParent, "cpu.shares"), strconv.Itoa(max(2, weight*1024/100))},
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
