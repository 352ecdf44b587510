package isolate

import (
	"context"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Inside every container.
const (
	// containerUser names the browser's user in the container's passwd.
	containerUser = "glovebox"
	// containerHome is the browser's home directory, a tmpfs.
	containerHome = "/home/" + containerUser
	// containerProfile is Chromium's --user-data-dir, on the home tmpfs.
	containerProfile = containerHome + "/profile"
	// containerHostname is every container's host name: the host's own
	// name is none of a page's business.
	containerHostname = "glovebox"
	// devtoolsPort is where Chromium's DevTools listens, on the
	// container's own 127.0.0.1 only.
	devtoolsPort = 9222
	// egressHost names the egress proxy in the container's /etc/hosts.
	egressHost = "glovebox-egress"
	// containerPulse is the sound device's runtime directory, with its
	// socket, on the home tmpfs: only the browser's user reaches it.
	containerPulse = containerHome + "/" + pulseDirName
	// containerSound is where the container's sound directory is bound:
	// the FIFO the sound device writes, which the host reads.
	containerSound = "/run/glovebox-sound"
	// containerFiles is where the container's files directory is bound:
	// downloads and uploads (Browser.FilesPath).
	containerFiles = "/run/glovebox-files"
)

// Labels on every container of Glovebox's.
const (
	// LabelManaged marks a container as Glovebox's: the reaper removes
	// those a crashed Glovebox left.
	LabelManaged = "glovebox.managed"
	// LabelTab holds the id of the tab the container serves.
	LabelTab = "glovebox.tab"
)

// cgroupParent is the cgroup under which each container gets one of its
// own, in every hierarchy.
const cgroupParent = "/glovebox"

// hostBinds are the host paths "host" mode binds read-only into each
// container: Chromium's install and libraries, and what it reads of /etc.
// Those missing on the host are left out.
var hostBinds = []string{
	"/usr",
	"/etc/fonts",
	"/etc/ssl",
	"/etc/alternatives",
	"/etc/ld.so.cache",
	"/var/cache/fontconfig",
}

// ctrSpec is what one container's spec is built from.
type ctrSpec struct {
	id   string
	cfg  ContainerdConfig
	spec Spec // normalized
	// rootfs is the template root of "host" mode; empty in image mode,
	// where the root is the image's snapshot.
	rootfs string
	// binds are the hostBinds that exist on this host ("host" mode).
	binds []string
	// hosts is the host path of the container's own /etc/hosts.
	hosts string
	// policy is the host path of the browsers' managed policy file,
	// bound at containerPolicyFile.
	policy string
	// egressPort is the egress proxy's port, or 0 when the container has
	// no network but loopback.
	egressPort int
	// ipv6 is set when the kernel has IPv6, which is then turned off in
	// the container (runc fails on sysctls the kernel lacks).
	ipv6 bool
	// sound is the host directory bound at containerSound, where the
	// sound device makes its FIFO; empty without a sound device.
	sound string
	// files is the host directory bound at containerFiles.
	files string
}

// containerLabels are the labels of the container serving tabID.
func containerLabels(tabID string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelTab: tabID}
}

// containerArgs is Chromium's command line in a container: the process
// runtime's flags, with DevTools on a fixed port of the container's own
// loopback, the profile on the home tmpfs and, when the container has a
// network, every request sent to the egress proxy.
func containerArgs(s ctrSpec) []string {
	args := chromiumArgs(containerProfile, s.spec, s.cfg.Flags)
	args = slices.Insert(args, 0, s.cfg.Chromium)
	for i, a := range args {
		if a == "--remote-debugging-port=0" {
			args[i] = "--remote-debugging-port=" + strconv.Itoa(devtoolsPort)
		}
	}
	if s.egressPort > 0 {
		// The proxy is named, not numbered: the host end's address is
		// known only once the network is attached, after the spec is
		// fixed, and is then written to the container's /etc/hosts.
		proxy := "--proxy-server=http://" + net.JoinHostPort(egressHost, strconv.Itoa(s.egressPort))
		// Chromium never proxies loopback by default; "<-loopback>" sends it
		// to the egress proxy too, which refuses it, so a page cannot reach
		// anything on the container's own loopback (DevTools listens there).
		args = slices.Insert(args, len(args)-1, proxy, "--proxy-bypass-list=<-loopback>")
	}
	if s.sound != "" {
		args = soundArgs(s.cfg.PulseAudio, withSound(args))
	}
	return args
}

// soundArgs is the container's command line with a sound device: a shell
// starts PulseAudio in the background, waits for its FIFO (a second at
// most: without it Chromium plays into nothing, and still runs), then
// runs Chromium in its place, so that Chromium stays the container's init.
// Chromium's args are the shell's "$@"; PulseAudio's, fixed by Glovebox
// and its configuration, are quoted into the script.
func soundArgs(pulseaudio string, chromium []string) []string {
	var script strings.Builder
	for _, kv := range pulseEnv(containerHome, containerPulse) {
		script.WriteString(kv + " ")
	}
	for _, a := range pulseArgs(pulseaudio, containerPulse+"/"+pulseSocketName, containerSound+"/"+audioFIFOName) {
		script.WriteString(shellQuote(a) + " ")
	}
	script.WriteString("&\n")
	script.WriteString("i=0\nwhile [ ! -p " + containerSound + "/" + audioFIFOName + " ] && [ $i -lt 100 ]; do sleep 0.01; i=$((i+1)); done\n")
	script.WriteString("export PULSE_SERVER=unix:" + containerPulse + "/" + pulseSocketName + "\n")
	script.WriteString(`exec "$@"`)
	return slices.Concat([]string{"/bin/sh", "-c", script.String(), "sh"}, chromium)
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// specOpts builds one container's OCI spec. Applied to an empty spec they
// give the whole of it: they start from containerd's default.
func specOpts(s ctrSpec) []oci.SpecOpts {
	uid, gid := uint32(s.cfg.UID), uint32(s.cfg.GID)
	opts := []oci.SpecOpts{
		oci.WithDefaultSpec(),
		oci.WithProcessArgs(containerArgs(s)...),
		oci.WithProcessCwd(containerHome),
		oci.WithEnv([]string{"HOME=" + containerHome, "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}),
		oci.WithUIDGID(uid, gid),
		withNoCapabilities,
		oci.WithNoNewPrivileges,
		// Host memory pressure kills a browser before Glovebox or
		// containerd.
		withOOMScoreAdj(500),
		// Chromium raises its soft limit to what the hard one allows;
		// containerd's default of 1024 is low for a busy page.
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 8192, Soft: 8192}),
		oci.WithHostname(containerHostname),
		oci.WithRootFSReadonly(),
		// Own PID, IPC, UTS, mount and network namespaces (containerd's
		// default set, stated here so that no default change drops one).
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.MountNamespace}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace}),
		withMount(tmpfs("/tmp", s.cfg.TmpMB, "mode=1777")),
		withMount(tmpfs("/dev/shm", s.cfg.ShmMB, "mode=1777")),
		withMount(tmpfs("/run", 16, "mode=755")),
		// runc 1.1 gives a tmpfs the mode of the directory it is
		// mounted on, whatever mode= says; uid= and gid= it keeps.
		withMount(tmpfs(containerHome, s.cfg.HomeMB, "mode=0700", fmt.Sprintf("uid=%d", uid), fmt.Sprintf("gid=%d", gid))),
		withMount(specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: s.hosts,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}),
		// Glovebox's own file, never the host's /etc/chromium: "host" mode
		// does not bind that.
		withMount(specs.Mount{Destination: containerPolicyFile, Type: "bind", Source: s.policy,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}),
		oci.WithCgroup(path.Join(cgroupParent, s.id)),
		oci.WithMemoryLimit(uint64(s.cfg.MemoryMB) << 20),
		oci.WithCPUCFS(int64(s.cfg.CPUs*cpuPeriod), cpuPeriod),
		oci.WithPidsLimit(int64(s.cfg.Pids)),
	}
	if s.sound != "" {
		// After the /run tmpfs, so that the bind lands inside it.
		opts = append(opts, withMount(specs.Mount{Destination: containerSound, Type: "bind", Source: s.sound,
			Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}}))
	}
	if s.files != "" {
		opts = append(opts, withMount(specs.Mount{Destination: containerFiles, Type: "bind", Source: s.files,
			Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}}))
	}
	if s.ipv6 {
		opts = append(opts, withSysctls(map[string]string{
			"net.ipv6.conf.all.disable_ipv6":     "1",
			"net.ipv6.conf.default.disable_ipv6": "1",
			"net.ipv6.conf.lo.disable_ipv6":      "1",
		}))
	}
	if s.rootfs != "" {
		opts = append(opts, oci.WithRootFSPath(s.rootfs))
		for _, src := range s.binds {
			opts = append(opts, withMount(specs.Mount{Destination: src, Type: "bind", Source: src,
				Options: []string{"rbind", "ro", "nosuid", "nodev"}}))
		}
	}
	// Last: the default profile depends on the capabilities.
	return append(opts, withChromiumSeccomp)
}

// cpuPeriod is the CFS period of the CPU quota, in µs.
const cpuPeriod = 100000

// tmpfs returns a tmpfs mount of size MiB at dst, never with devices,
// set-uid programs or executables.
func tmpfs(dst string, mb int, opts ...string) specs.Mount {
	return specs.Mount{
		Destination: dst,
		Type:        "tmpfs",
		Source:      "tmpfs",
		Options:     append([]string{"nosuid", "nodev", "noexec", fmt.Sprintf("size=%dm", mb)}, opts...),
	}
}

// withMount adds m, in place of a mount on the same destination if the spec
// has one (containerd's default /dev/shm and /run).
func withMount(m specs.Mount) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		for i := range s.Mounts {
			if path.Clean(s.Mounts[i].Destination) == path.Clean(m.Destination) {
				s.Mounts[i] = m
				return nil
			}
		}
		s.Mounts = append(s.Mounts, m)
		return nil
	}
}

// withNoCapabilities leaves the process with no capability in any set.
func withNoCapabilities(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    []string{},
		Effective:   []string{},
		Permitted:   []string{},
		Inheritable: []string{},
		Ambient:     []string{},
	}
	return nil
}

// withOOMScoreAdj sets the process's oom_score_adj.
func withOOMScoreAdj(adj int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.OOMScoreAdj = &adj
		return nil
	}
}

// withSysctls sets sysctls of the container's own namespaces.
func withSysctls(kv map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = make(map[string]string, len(kv))
		}
		for k, v := range kv {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

// hostsFile is a container's /etc/hosts: loopback and, once the network is
// attached, the egress proxy's address.
func hostsFile(egress net.IP) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost " + containerHostname + "\n")
	if egress != nil {
		b.WriteString(egress.String() + "\t" + egressHost + "\n")
	}
	return []byte(b.String())
}
