package kubetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node's network: the pods' bridge and subnet, only on this host; the
// bridge's address (the pods' gateway) is the node's address, so that
// kubelet has one that is not loopback.
const (
	NodeIP     = "10.213.96.1"
	podBridge  = "gbktbr0"
	PodSubnet  = "10.213.96.0/24"
	cgroupRoot = "/kubetest"
)

// Node is a real kubelet running pods through a containerd of its own.
type Node struct {
	c   *Cluster
	dir string
	// Containerd is the node's containerd socket (CRI and the Go client).
	Containerd string
	// SeccompDir is the kubelet's seccomp directory (Localhost profiles).
	SeccompDir string
	// PodLogs is the kubelet's pod log directory (what /var/log/pods is
	// on a real node): <namespace>_<pod>_<uid>/<container>/<n>.log.
	PodLogs string
	// cniBefore are libcni's cached results before the node ran: those it
	// adds (in the fixed /var/lib/cni/results) are removed after it.
	cniBefore map[string]bool
}

const cniResultsDir = "/var/lib/cni/results"

func cniResults() map[string]bool {
	m := map[string]bool{}
	entries, _ := os.ReadDir(cniResultsDir)
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

// removeKubeletChains removes the iptables chains kubelet makes (KUBE-*,
// in filter, nat and mangle, IPv4 and IPv6) and the rules that jump to them.
func removeKubeletChains() {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(ipt, "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) >= 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) >= 4 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(line, "-j KUBE-"):
					exec.Command(ipt, append([]string{"-t", table, "-D"}, f[1:]...)...).Run()
				}
			}
			for _, ch := range chains {
				exec.Command(ipt, "-t", table, "-F", ch).Run()
			}
			for _, ch := range chains {
				exec.Command(ipt, "-t", table, "-X", ch).Run()
			}
		}
	}
}

// MissingNode says what this machine lacks to run a node, or nil.
func MissingNode() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("a kubelet node needs root")
	}
	for _, p := range []string{filepath.Join(Dir(), "bin", "kubelet"), filepath.Join(Dir(), "bin", "kube-scheduler"),
		filepath.Join(Dir(), "bin", "kube-controller-manager"), "/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc",
		"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("needs %s (make test installs and builds it): %w", p, err)
		}
	}
	return nil
}

// StartNode starts kube-scheduler and kube-controller-manager
// (StartControllers), a containerd with CRI and a kubelet, and waits until
// the node is Ready. The images the pods use are imported with Import (the
// sandbox image, glovebox.test/pause, is imported here).
func (c *Cluster) StartNode(t testing.TB) *Node {
	t.Helper()
	if err := MissingNode(); err != nil {
		t.Fatal(err)
	}
	n := &Node{c: c, dir: filepath.Join(c.dir, "node")}
	n.Containerd = filepath.Join(n.dir, "containerd.sock")
	n.SeccompDir = filepath.Join(n.dir, "kubelet", "seccomp")
	n.PodLogs = filepath.Join(n.dir, "pods")
	bin := filepath.Join(Dir(), "bin")
	for _, d := range []string{"cni/net.d", "cni/ipam", "kubelet/seccomp", "containerd"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n.cniBefore = cniResults()
	c.stops = append(c.stops, n.cleanup)
	// The bridge the CNI plugin would make, made first for its address.
	exec.Command("ip", "link", "del", podBridge).Run()
	for _, args := range [][]string{
		{"link", "add", podBridge, "type", "bridge"}, {"addr", "add", NodeIP + "/24", "dev", podBridge}, {"link", "set", podBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, h := range cgroupHierarchies() {
		os.MkdirAll(filepath.Join(h, cgroupRoot), 0o755)
	}

	write := func(name, body string) string {
		p := filepath.Join(n.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("cni/net.d/10-kubetest.conflist", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "kubetest", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}`, podBridge, filepath.Join(n.dir, "cni/ipam"), PodSubnet))
	ctrCfg := write("containerd.toml", fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "glovebox.test/pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(n.dir, "containerd/root"), filepath.Join(n.dir, "containerd/state"), n.Containerd, filepath.Join(n.dir, "cni/net.d")))
	c.start(t, "containerd", "/usr/bin/containerd", "--config", ctrCfg)
	waitFile(t, n.Containerd, 30*time.Second)
	n.Import(t, ImageTar(t, "glovebox.test/pause:1", []string{"/pause"}, []File{{Path: "pause", Mode: 0o755, Data: pauseBinary(t)}}))

	kubeconfig := func(name, token string) string {
		return write(name, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "%s", certificate-authority: %s}}]
users: [{name: u, user: {token: %s}}]
contexts: [{name: test, context: {cluster: test, user: u}}]
current-context: test
`, c.Config.Host, filepath.Join(c.dir, "ca.crt"), token))
	}
	c.StartControllers(t)

	kcfg := write("kubelet.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %s
readOnlyPort: 0
healthzPort: 0
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
resolvConf: ""
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
podLogsDir: %s
`, NodeIP, freePort(t), cgroupRoot, n.Containerd, n.PodLogs))
	c.start(t, "kubelet", filepath.Join(bin, "kubelet"), "--config", kcfg, "--kubeconfig", kubeconfig("kubelet.kubeconfig", c.nodeToken),
		"--root-dir", filepath.Join(n.dir, "kubelet"), "--cert-dir", filepath.Join(n.dir, "kubelet-pki"),
		"--node-ip", NodeIP, "--hostname-override", NodeName, "--v", "1")
	n.waitReady(t)
	return n
}

// Import imports an image archive (ImageTar) into the node's containerd.
func (n *Node) Import(t testing.TB, archive string) {
	t.Helper()
	out, err := exec.Command("ctr", "-a", n.Containerd, "-n", "k8s.io", "images", "import", "--no-unpack", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("import %s: %v: %s", archive, err, out)
	}
}

func (n *Node) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		node, err := n.c.Client.CoreV1().Nodes().Get(context.Background(), NodeName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && len(node.Spec.Taints) == 0 {
					return
				}
			}
		}
		for _, p := range n.c.procs {
			select {
			case <-p.done:
				t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not ready within 90 s (%v)\nkubelet:\n%s\ncontainerd:\n%s", err, n.c.Logs("kubelet"), n.c.Logs("containerd"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cleanup, after every process is gone: the pods' processes (their shims
// outlive containerd), mounts, interfaces and cgroups.
func (n *Node) cleanup() {
	for range 3 {
		killed := 0
		for _, h := range cgroupHierarchies() {
			filepath.WalkDir(filepath.Join(h, cgroupRoot), func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					var pid int
					fmt.Sscan(f, &pid)
					if pid > 1 {
						syscall.Kill(pid, syscall.SIGKILL)
						killed++
					}
				}
				return nil
			})
		}
		// The shims are in no pod cgroup: by their command line.
		exec.Command("pkill", "-9", "-f", "containerd-shim-runc-v2 .*"+n.Containerd).Run()
		if killed == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	unmountUnder(n.dir)
	removeKubeletChains()
	for name := range cniResults() {
		if !n.cniBefore[name] {
			os.Remove(filepath.Join(cniResultsDir, name))
		}
	}
	exec.Command("ip", "link", "del", podBridge).Run()
	for _, h := range cgroupHierarchies() {
		removeTree(filepath.Join(h, cgroupRoot))
	}
	// The kubelet links each container's log into the fixed
	// /var/log/containers: the links into this node's logs go with it.
	links, _ := os.ReadDir(containerLogLinks)
	for _, l := range links {
		p := filepath.Join(containerLogLinks, l.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, n.PodLogs+string(filepath.Separator)) {
			os.Remove(p)
		}
	}
}

// containerLogLinks is where the kubelet links containers' logs (fixed).
const containerLogLinks = "/var/log/containers"

// unmountUnder unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	for range 5 {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return
		}
		var mounts []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
				mounts = append(mounts, fields[4])
			}
		}
		f.Close()
		if len(mounts) == 0 {
			return
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
}

// removeTree removes a cgroup directory tree, children first.
func removeTree(p string) {
	entries, _ := os.ReadDir(p)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(p, e.Name()))
		}
	}
	syscall.Rmdir(p)
}

// cgroupHierarchies are the mounted cgroup v1 hierarchies (or the v2 root).
func cgroupHierarchies() []string {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var hs []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			hs = append(hs, p)
		}
	}
	return hs
}

func waitFile(t testing.TB, p string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", p, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pauseBinary builds the sandbox's process: a static program that waits
// for a signal.
func pauseBinary(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	src := `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`
	return BuildStatic(t, dir, src)
}

// BuildStatic builds a one-file Go program statically and returns it.
func BuildStatic(t testing.TB, dir, src string) []byte {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
