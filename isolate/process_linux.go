//go:build linux

package isolate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// supported reports whether the process runtime works on this OS.
const supported = true

// sysProcAttr runs Chromium as cred in a process group of its own, so that
// Close can kill the whole group, and kills it if Glovebox dies first.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
		// Pdeathsig follows the thread that started the child; Go keeps
		// that thread unless a goroutine exits while locked to it, and
		// Start never locks its thread.
		Pdeathsig: syscall.SIGKILL,
	}
}

// killTree kills every process of one browser: its process group (pgid, the
// browser's pid, or 0 when it never started; signalled as a whole only when
// killGroup) and any process of uid in that group or whose command line names
// the profile dir. Crashpad's handlers call
// setsid and are re-parented to init, so the group alone misses them; they do
// carry the profile in --database. It returns once none is left.
func killTree(pgid int, killGroup bool, dir string, uid int) error {
	if pgid > 0 && killGroup {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill process group %d: %w", pgid, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := browserProcs(pgid, dir, uid)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive", pids)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill %d: %w", pid, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// browserProcs lists the live (not zombie) processes of uid that are in
// process group pgid or whose command line names dir.
func browserProcs(pgid int, dir string, uid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		st, ok := readProcStat(pid)
		if !ok || st.state == 'Z' || st.state == 'X' {
			continue
		}
		if u, ok := procUID(pid); !ok || u != uid {
			continue
		}
		if (pgid > 0 && st.pgrp == pgid) || cmdlineNames(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procUID returns the real uid of pid. /proc/PID's owner is not enough: a
// process that is not dumpable, as Chromium's sandboxed ones are, shows root.
func procUID(pid int) (int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0, false
			}
			uid, err := strconv.Atoi(f[0])
			return uid, err == nil
		}
	}
	return 0, false
}

// cmdlineNames reports whether the command line of pid names dir or a path
// under it (a bare prefix does not count: /tmp/glovebox-1 does not name
// /tmp/glovebox-12).
func cmdlineNames(pid int, dir string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && argsName(string(data), dir)
}

// argsName reports whether the command line names dir: an occurrence
// followed by its end, a separator or "/". Arguments are separated by NULs,
// or by spaces once Chromium's zygote has rewritten a child's title.
func argsName(args, dir string) bool {
	for i := 0; ; {
		j := strings.Index(args[i:], dir)
		if j < 0 {
			return false
		}
		end := i + j + len(dir)
		if end == len(args) || strings.IndexByte("\x00 /", args[end]) >= 0 {
			return true
		}
		i = end
	}
}
