package kubetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BrowserImageName is what BrowserImage names its image.
const BrowserImageName = "glovebox.test/browser:1"

// BrowserImage is the browser pods' image made from this host's files:
// Debian's Chromium and its libraries, fonts, certificates, the glovebox
// binary built here (what deploy/Containerfile installs from packages).
func BrowserImage(t testing.TB) string {
	t.Helper()
	gb := filepath.Join(t.TempDir(), "glovebox")
	cmd := exec.Command("go", "build", "-o", gb, "github.com/glovebox/glovebox/cmd/glovebox")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build glovebox: %v: %s", err, out)
	}
	gbBytes, err := os.ReadFile(gb)
	if err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "bin", Link: "usr/bin"}, {Path: "lib", Link: "usr/lib"}, {Path: "lib64", Link: "usr/lib64"}, {Path: "sbin", Link: "usr/sbin"},
		{Path: "usr/lib/chromium", Src: "/usr/lib/chromium"},
		{Path: "usr/lib/x86_64-linux-gnu", Src: "/usr/lib/x86_64-linux-gnu"},
		{Path: "usr/lib64", Src: "/usr/lib64"},
		{Path: "usr/share/fonts", Src: "/usr/share/fonts"},
		{Path: "etc/fonts", Src: "/etc/fonts"},
		{Path: "etc/ssl", Src: "/etc/ssl"},
		{Path: "etc/ld.so.cache", Src: "/etc/ld.so.cache"},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/usr/sbin/nologin\nglovebox:x:1000:1000::/home/glovebox:/usr/sbin/nologin\nrelay:x:1001:1001::/nonexistent:/usr/sbin/nologin\n")},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nglovebox:x:1000:\nrelay:x:1001:\n")},
		{Path: "etc/nsswitch.conf", Mode: 0o644, Data: []byte("passwd: files\ngroup: files\nhosts: files\n")},
		{Path: "etc/chromium/policies/managed", Dir: true, Mode: 0o755},
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "home/glovebox", Dir: true, Mode: 0o700},
		{Path: "usr/local/bin/glovebox", Mode: 0o755, Data: gbBytes},
	}
	if _, err := os.Stat("/usr/share/fontconfig"); err == nil {
		files = append(files, File{Path: "usr/share/fontconfig", Src: "/usr/share/fontconfig"})
	}
	return ImageTar(t, BrowserImageName, nil, files)
}

// Seccomp installs a Localhost seccomp profile on the node, at name
// (relative to the kubelet's seccomp directory).
func (n *Node) Seccomp(t testing.TB, name string, profile []byte) {
	t.Helper()
	p := filepath.Join(n.SeccompDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, profile, 0o644); err != nil {
		t.Fatal(err)
	}
}

// MissingBrowserNode says what BrowserNode lacks on this machine (the
// cluster's binaries, the node's tools), or nil.
func MissingBrowserNode() error {
	if err := Missing(); err != nil {
		return err
	}
	return MissingNode()
}

// BrowserNode is the cluster most Glovebox tests need: the control plane,
// a node with the browser image (BrowserImage) and Glovebox's seccomp
// profile installed as name. Its callers first skip (failing in CI)
// through testenv.Missing when MissingBrowserNode says something is
// missing; here that is a failure.
func BrowserNode(t testing.TB, name string, profile []byte) (*Cluster, *Node) {
	t.Helper()
	if err := MissingBrowserNode(); err != nil {
		t.Fatal(err)
	}
	kc := Start(t)
	node := kc.StartNode(t)
	node.Import(t, BrowserImage(t))
	node.Seccomp(t, name, profile)
	return kc, node
}
