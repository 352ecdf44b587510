package isolate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// cgroupFS is where the cgroup hierarchies are mounted.
const cgroupFS = "/sys/fs/cgroup"

// Reap removes what a Glovebox that crashed left behind: every container
// (and its task and snapshot) labelled glovebox.managed in the namespace,
// the per-container directories under DataDir and the cgroups under
// /glovebox, in every hierarchy. The browsers of this runtime, started or
// starting, are spared. NewContainerd calls it; veths and firewall rules are
// the Network's to reap.
func (c *Containerd) Reap(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, c.cfg.Namespace)
	var errs []error
	var nContainers, nDirs, nCgroups int

	// Everything is listed before the books are read: a container listed
	// here was registered by its Start before it was created.
	ctrs, err := c.client.Containers(ctx, `labels."`+LabelManaged+`"==true`)
	if err != nil {
		return fmt.Errorf("%w: list containers: %w", ErrContainerd, err)
	}
	dirs, err := os.ReadDir(c.containersDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list container directories: %w", err))
	}
	cgroups := cgroupChildren()
	c.mu.Lock()
	ours := make(map[string]bool, len(c.ids))
	for id := range c.ids {
		ours[id] = true
	}
	c.mu.Unlock()

	for _, ctr := range ctrs {
		if ours[ctr.ID()] {
			continue
		}
		if err := reapContainer(ctx, ctr); err != nil {
			errs = append(errs, err)
			continue
		}
		nContainers++
	}
	for _, e := range dirs {
		if ours[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.containersDir(), e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		nDirs++
	}
	for _, cg := range cgroups {
		if ours[filepath.Base(cg)] {
			continue
		}
		err := syscall.Rmdir(cg)
		switch {
		case err == nil:
			nCgroups++
		case errors.Is(err, syscall.EBUSY):
			// Processes in it: a container of another Glovebox on
			// this host (another namespace), not a leftover.
			c.log.Info("cgroup in use by processes of another runtime: left alone", "cgroup", cg, "procs", cgroupProcs(cg))
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", cg, err))
		}
	}
	if nContainers+nDirs+nCgroups > 0 {
		c.log.Warn("removed what was left behind (a crash, or a teardown while containerd was away)", "containers", nContainers, "dirs", nDirs, "cgroups", nCgroups)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("isolate containerd: reap: %w", err)
	}
	return nil
}

// reapContainer kills and deletes the container's task, if any, then the
// container and its snapshot.
func reapContainer(ctx context.Context, ctr client.Container) error {
	task, err := ctr.Task(ctx, nil)
	switch {
	case err == nil:
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", ctr.ID(), err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("load task %s: %w", ctr.ID(), err)
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", ctr.ID(), err)
	}
	return removeCgroups(ctr.ID())
}

// cgroupRoots returns the mount points of the cgroup hierarchies: the one
// of cgroup v2, or each of v1's (and the unified one of a hybrid host).
func cgroupRoots() []string {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return []string{cgroupFS}
	}
	ents, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil
	}
	var roots []string
	for _, e := range ents {
		// Skip the aliases such as cpu,cpuacct → cpu.
		if e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			roots = append(roots, filepath.Join(cgroupFS, e.Name()))
		}
	}
	return roots
}

// cgroupChildren lists the containers' cgroups under the parent, in every
// hierarchy.
func cgroupChildren() []string {
	var out []string
	for _, root := range cgroupRoots() {
		ents, err := os.ReadDir(filepath.Join(root, cgroupParent))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, filepath.Join(root, cgroupParent, e.Name()))
			}
		}
	}
	return out
}

// removeCgroups removes the container's cgroup in every hierarchy where runc
// left it. A cgroup with a process in it cannot be removed: the error says
// so.
func removeCgroups(id string) error {
	var errs []error
	for _, root := range cgroupRoots() {
		p := filepath.Join(root, cgroupParent, id)
		if err := syscall.Rmdir(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s (%s): %w", p, cgroupProcs(p), err))
		}
	}
	return errors.Join(errs...)
}

// removeCgroupParent removes the parent of the containers' cgroups, in every
// hierarchy, unless another Glovebox's containers are still in it.
func removeCgroupParent() error {
	var errs []error
	for _, root := range cgroupRoots() {
		p := filepath.Join(root, cgroupParent)
		err := syscall.Rmdir(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.EBUSY) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupProcs describes the processes in a cgroup, for errors.
func cgroupProcs(p string) string {
	data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
	if err != nil {
		return "processes unknown"
	}
	n := 0
	for _, f := range strings.Fields(string(data)) {
		if _, err := strconv.Atoi(f); err == nil {
			n++
		}
	}
	return strconv.Itoa(n) + " processes in it"
}
