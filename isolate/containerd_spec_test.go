package isolate

import (
	"context"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// testCtrSpec is a container spec as Start builds it in "host" mode.
func testCtrSpec() ctrSpec {
	cfg := DefaultContainerdConfig()
	cfg.Flags = []string{"--lang=de"}
	return ctrSpec{
		id:         "glovebox-0123456789ab",
		cfg:        cfg,
		spec:       Spec{TabID: "tab-1", Width: 800, Height: 600, Scale: 2},
		rootfs:     "/var/lib/glovebox/rootfs",
		binds:      []string{"/usr", "/etc/fonts", "/etc/ld.so.cache"},
		hosts:      "/var/lib/glovebox/containers/glovebox-0123456789ab/hosts",
		policy:     "/var/lib/glovebox/chromium-policy.json",
		egressPort: 3129,
		ipv6:       true,
	}
}

// applySpec applies opts to an empty spec, without a daemon, as containerd's
// client documentation recommends for testing them.
func applySpec(t *testing.T, s ctrSpec) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "glovebox")
	var spec oci.Spec
	if err := oci.ApplyOpts(ctx, nil, &containers.Container{ID: s.id}, &spec, specOpts(s)...); err != nil {
		t.Fatalf("apply spec opts: %v", err)
	}
	return &spec
}

func mountAt(spec *oci.Spec, dst string) (specs.Mount, int) {
	for i, m := range spec.Mounts {
		if m.Destination == dst {
			return m, i
		}
	}
	return specs.Mount{}, -1
}

func TestContainerdSpec(t *testing.T) {
	s := testCtrSpec()
	spec := applySpec(t, s)
	p := spec.Process

	// Chromium itself, with the container's flags.
	if p.Args[0] != "/usr/lib/chromium/chromium" || p.Args[len(p.Args)-1] != "about:blank" {
		t.Errorf("args = %q, want Chromium ... about:blank", p.Args)
	}
	for _, want := range []string{
		"--headless=new", "--remote-debugging-port=9222", "--user-data-dir=/home/glovebox/profile",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-gpu", "--disable-breakpad", "--password-store=basic", "--use-mock-keychain", "--mute-audio",
		"--hide-scrollbars", "--window-size=800,600", "--force-device-scale-factor=2",
		"--proxy-server=http://glovebox-egress:3129", "--proxy-bypass-list=<-loopback>", "--lang=de",
		"--gaia-url=http://127.0.0.1:9", "--component-updater=url-source=http://127.0.0.1:9/",
	} {
		if !slices.Contains(p.Args, want) {
			t.Errorf("args lack %s: %q", want, p.Args)
		}
	}
	if !slices.ContainsFunc(p.Args, func(a string) bool {
		return strings.HasPrefix(a, "--disable-features=") && strings.Contains(a, "WebUIOmniboxPopup")
	}) {
		t.Errorf("args lack the --disable-features list: %q", p.Args)
	}
	for _, a := range p.Args {
		if a == "--no-sandbox" || strings.HasPrefix(a, "--remote-debugging-address") {
			t.Errorf("args have %s", a)
		}
	}
	if !slices.Contains(p.Env, "HOME=/home/glovebox") || p.Cwd != "/home/glovebox" {
		t.Errorf("env %q, cwd %q: want HOME and cwd /home/glovebox", p.Env, p.Cwd)
	}

	// The unprivileged user, no capabilities, no new privileges.
	if p.User.UID != 1000 || p.User.GID != 1000 {
		t.Errorf("user = %d:%d, want 1000:1000", p.User.UID, p.User.GID)
	}
	c := p.Capabilities
	if c == nil {
		t.Fatal("no capabilities section: runc would keep its defaults")
	}
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted, "inheritable": c.Inheritable, "ambient": c.Ambient} {
		if len(set) > 0 {
			t.Errorf("%s capabilities = %q, want none", name, set)
		}
	}
	if !p.NoNewPrivileges {
		t.Error("NoNewPrivileges is off")
	}

	// A read-only template root with read-only binds of the host.
	if spec.Root.Path != s.rootfs || !spec.Root.Readonly {
		t.Errorf("root = %+v, want %s read-only", spec.Root, s.rootfs)
	}
	for _, src := range s.binds {
		m, _ := mountAt(spec, src)
		if m.Source != src || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rbind") ||
			!slices.Contains(m.Options, "nosuid") || !slices.Contains(m.Options, "nodev") {
			t.Errorf("bind %s = %+v, want a read-only rbind, nosuid, nodev", src, m)
		}
	}
	if m, _ := mountAt(spec, "/etc/hosts"); m.Source != s.hosts || !slices.Contains(m.Options, "ro") {
		t.Errorf("/etc/hosts = %+v, want a read-only bind of %s", m, s.hosts)
	}
	// The managed policy is Glovebox's file, and nothing of the host's
	// /etc/chromium is bound.
	if m, _ := mountAt(spec, "/etc/chromium/policies/managed/glovebox.json"); m.Source != s.policy || !slices.Contains(m.Options, "ro") {
		t.Errorf("policy file = %+v, want a read-only bind of %s", m, s.policy)
	}
	for _, m := range spec.Mounts {
		if strings.HasPrefix(m.Source, "/etc/chromium") {
			t.Errorf("the host's %s is bound at %s", m.Source, m.Destination)
		}
	}

	// tmpfs with sizes, replacing containerd's default /dev/shm and /run.
	for dst, want := range map[string][]string{
		"/tmp":           {"size=256m", "mode=1777", "nosuid", "nodev", "noexec"},
		"/dev/shm":       {"size=256m", "mode=1777", "nosuid", "nodev", "noexec"},
		"/run":           {"size=16m", "nosuid", "nodev", "noexec"},
		"/home/glovebox": {"size=256m", "mode=0700", "uid=1000", "gid=1000", "nosuid", "nodev", "noexec"},
	} {
		m, i := mountAt(spec, dst)
		if i < 0 || m.Type != "tmpfs" {
			t.Errorf("%s: %+v, want a tmpfs", dst, m)
			continue
		}
		for _, o := range want {
			if !slices.Contains(m.Options, o) {
				t.Errorf("%s options %q lack %s", dst, m.Options, o)
			}
		}
		n := 0
		for _, m := range spec.Mounts {
			if m.Destination == dst {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d mounts on %s, want 1", n, dst)
		}
	}
	if _, dev := mountAt(spec, "/dev"); dev < 0 {
		t.Error("no /dev mount")
	} else if _, shm := mountAt(spec, "/dev/shm"); shm < dev {
		t.Error("/dev/shm is mounted before /dev")
	}

	// containerd's masked and read-only paths.
	def := applyDefault(t)
	if !reflect.DeepEqual(spec.Linux.MaskedPaths, def.Linux.MaskedPaths) || len(spec.Linux.MaskedPaths) == 0 {
		t.Errorf("masked paths = %q, want containerd's %q", spec.Linux.MaskedPaths, def.Linux.MaskedPaths)
	}
	if !reflect.DeepEqual(spec.Linux.ReadonlyPaths, def.Linux.ReadonlyPaths) || len(spec.Linux.ReadonlyPaths) == 0 {
		t.Errorf("read-only paths = %q, want containerd's %q", spec.Linux.ReadonlyPaths, def.Linux.ReadonlyPaths)
	}

	// Own namespaces, none joined from elsewhere.
	var nss []string
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
		nss = append(nss, string(ns.Type))
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if !slices.Contains(nss, string(want)) {
			t.Errorf("namespaces %q lack %s", nss, want)
		}
	}
	if spec.Hostname != "glovebox" {
		t.Errorf("hostname = %q", spec.Hostname)
	}
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if spec.Linux.Sysctl[k] != "1" {
			t.Errorf("sysctl %s = %q, want 1", k, spec.Linux.Sysctl[k])
		}
	}

	// cgroup limits under the parent.
	if spec.Linux.CgroupsPath != "/glovebox/"+s.id {
		t.Errorf("cgroups path = %q", spec.Linux.CgroupsPath)
	}
	r := spec.Linux.Resources
	if r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 1024<<20 {
		t.Errorf("memory = %+v, want 1 GiB", r.Memory)
	}
	if r.CPU == nil || r.CPU.Quota == nil || r.CPU.Period == nil || *r.CPU.Quota != 100000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu = %+v, want one core", r.CPU)
	}
	if r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 512 {
		t.Errorf("pids = %+v, want 512", r.Pids)
	}
	if spec.Linux.Seccomp == nil {
		t.Error("no seccomp profile")
	}

	// Without a network: no proxy; without IPv6: no sysctls runc would
	// fail on; in image mode: the image's root, no binds.
	s.egressPort, s.ipv6, s.rootfs = 0, false, ""
	spec = applySpec(t, s)
	if slices.ContainsFunc(spec.Process.Args, func(a string) bool { return strings.HasPrefix(a, "--proxy-server") }) {
		t.Errorf("no network, but args have a proxy: %q", spec.Process.Args)
	}
	if len(spec.Linux.Sysctl) != 0 {
		t.Errorf("no IPv6, but sysctls %v", spec.Linux.Sysctl)
	}
	if spec.Root.Path != "rootfs" || !spec.Root.Readonly {
		t.Errorf("image mode root = %+v, want the bundle's rootfs, read-only", spec.Root)
	}
	if m, _ := mountAt(spec, "/usr"); m.Destination != "" {
		t.Errorf("image mode binds /usr: %+v", m)
	}
}

// applyDefault returns containerd's default spec.
func applyDefault(t *testing.T) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "glovebox")
	var spec oci.Spec
	if err := oci.ApplyOpts(ctx, nil, &containers.Container{ID: "x"}, &spec, oci.WithDefaultSpec()); err != nil {
		t.Fatal(err)
	}
	return &spec
}

func TestContainerdLabels(t *testing.T) {
	var c containers.Container
	if err := client.WithContainerLabels(containerLabels("tab-7"))(context.Background(), nil, &c); err != nil {
		t.Fatal(err)
	}
	if c.Labels["glovebox.tab"] != "tab-7" || c.Labels["glovebox.managed"] != "true" {
		t.Errorf("labels = %v", c.Labels)
	}
	if id := newContainerID(); !strings.HasPrefix(id, "glovebox-") || len(id) != len("glovebox-")+12 || id == newContainerID() {
		t.Errorf("container id %q", id)
	}
}

func TestHostsFile(t *testing.T) {
	if got := string(hostsFile(nil)); got != "127.0.0.1\tlocalhost glovebox\n" {
		t.Errorf("hosts = %q", got)
	}
	if got := string(hostsFile(net.IPv4(198, 18, 0, 1))); !strings.HasSuffix(got, "198.18.0.1\tglovebox-egress\n") {
		t.Errorf("hosts = %q", got)
	}
}

func TestContainerdConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ContainerdConfig)
		want string // "" means valid
	}{
		{"default", func(*ContainerdConfig) {}, ""},
		{"socket", func(c *ContainerdConfig) { c.Address = "/run/containerd/containerd.sock" }, ""},
		{"unix socket", func(c *ContainerdConfig) { c.Address = "unix:///run/containerd/containerd.sock" }, ""},
		{"image", func(c *ContainerdConfig) {
			c.RootFS = "registry.example.com/glovebox/browser:1"
			c.Chromium = "/opt/chromium/chrome"
		}, ""},
		{"extra flags", func(c *ContainerdConfig) { c.Flags = []string{"--lang=de", "--disable-features=Foo"} }, ""},
		{"no address", func(c *ContainerdConfig) { c.Address = "" }, "address:"},
		{"relative address", func(c *ContainerdConfig) { c.Address = "containerd.sock" }, "address:"},
		{"namespace", func(c *ContainerdConfig) { c.Namespace = "a b" }, "namespace:"},
		{"data dir", func(c *ContainerdConfig) { c.DataDir = "glovebox" }, "data_dir:"},
		{"long data dir", func(c *ContainerdConfig) { c.DataDir = "/" + strings.Repeat("d", 90) }, "data_dir:"},
		{"binary", func(c *ContainerdConfig) { c.Binary = "" }, "binary:"},
		{"bad image", func(c *ContainerdConfig) { c.RootFS = "Not An Image!" }, "rootfs:"},
		{"chromium relative", func(c *ContainerdConfig) { c.Chromium = "chromium" }, "chromium:"},
		{"chromium outside /usr", func(c *ContainerdConfig) { c.Chromium = "/opt/chromium/chrome" }, "chromium:"},
		{"no sandbox", func(c *ContainerdConfig) { c.Flags = []string{"--no-sandbox"} }, "flags[0]: --no-sandbox"},
		{"proxy", func(c *ContainerdConfig) { c.Flags = []string{"--lang=de", "--proxy-server=http://x:1"} }, "flags[1]: --proxy-server"},
		{"devtools", func(c *ContainerdConfig) { c.Flags = []string{"--remote-debugging-port=1"} }, "flags[0]: --remote-debugging-port"},
		{"root", func(c *ContainerdConfig) { c.UID = 0 }, "uid:"},
		{"gid", func(c *ContainerdConfig) { c.GID = -1 }, "gid:"},
		{"memory", func(c *ContainerdConfig) { c.MemoryMB = 10 }, "memory_mb:"},
		{"cpus", func(c *ContainerdConfig) { c.CPUs = 0 }, "cpus:"},
		{"pids", func(c *ContainerdConfig) { c.Pids = 0 }, "pids:"},
		{"tmp", func(c *ContainerdConfig) { c.TmpMB = 0 }, "tmp_mb:"},
		{"shm", func(c *ContainerdConfig) { c.ShmMB = -1 }, "shm_mb:"},
		{"home", func(c *ContainerdConfig) { c.HomeMB = 0 }, "home_mb:"},
		{"timeout", func(c *ContainerdConfig) { c.StartTimeout = 0 }, "start_timeout:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultContainerdConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
