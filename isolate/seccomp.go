package isolate

import (
	"context"
	"errors"
	"runtime"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Namespace flags of clone(2) and unshare(2), from Linux's ABI (spelled out
// so that the package builds on other systems too).
const (
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000

	// cloneNSForbidden are the namespaces a container process may still
	// not create: new mount, UTS, IPC and cgroup namespaces would let it
	// rearrange what the container was given.
	cloneNSForbidden = cloneNewNS | cloneNewUTS | cloneNewIPC | cloneNewCgroup
)

// chromiumSyscalls are the rules Glovebox adds to containerd's default
// seccomp profile so that Chromium's own sandbox (the namespace sandbox and
// seccomp-BPF, measured in notes/isolation.md) works in a container with no
// capabilities. Without them Chromium stops with "No usable sandbox!", and
// the only way left would be --no-sandbox. Nothing else is added.
func chromiumSyscalls() []specs.LinuxSyscall {
	// The flags are the first argument of clone, except on s390, where
	// the first two arguments are swapped.
	cloneFlags := uint(0)
	if runtime.GOARCH == "s390x" {
		cloneFlags = 1
	}
	return []specs.LinuxSyscall{
		{
			// clone with new user, PID and network namespaces (never
			// mount, UTS, IPC or cgroup ones): Chromium's zygote starts
			// each renderer and utility process in namespaces of its
			// own, so a compromised renderer sees no other process and
			// has no network.
			Names:  []string{"clone"},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{
				Index: cloneFlags,
				Value: cloneNSForbidden,
				Op:    specs.OpMaskedEqual, // flags & forbidden == 0
			}},
		},
		{
			// unshare with exactly CLONE_NEWUSER: Chromium's sandbox
			// moves processes into user namespaces of their own; a user
			// namespace gives no privilege outside itself, and every
			// other namespace stays refused.
			Names:  []string{"unshare"},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{
				Index: 0,
				Value: cloneNewUser,
				Op:    specs.OpEqualTo,
			}},
		},
		{
			// chroot: each sandboxed process chroots into an empty
			// directory, so that it can open no file at all. It holds
			// the capability for that only inside its own user
			// namespace; the container itself has none.
			Names:  []string{"chroot"},
			Action: specs.ActAllow,
			Args:   []specs.LinuxSeccompArg{},
		},
	}
}

// withChromiumSeccomp sets containerd's default seccomp profile for the
// spec's capabilities plus chromiumSyscalls. It must follow the options that
// set the capabilities, as the default profile depends on them.
func withChromiumSeccomp(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	if s.Process == nil || s.Process.Capabilities == nil || s.Linux == nil {
		return errors.New("seccomp: the spec has no process capabilities or Linux section yet")
	}
	p := seccomp.DefaultProfile(s)
	p.Syscalls = append(p.Syscalls, chromiumSyscalls()...)
	s.Linux.Seccomp = p
	return nil
}

// KubeSeccompProfile is the browser container's seccomp profile for the
// Kubernetes runtime (a Localhost profile on each node): containerd's
// default for a process with no capabilities, plus chromiumSyscalls, the
// same as the containerd runtime's.
func KubeSeccompProfile() (*specs.LinuxSeccomp, error) {
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
	if err := withChromiumSeccomp(context.Background(), nil, nil, s); err != nil {
		return nil, err
	}
	return s.Linux.Seccomp, nil
}
