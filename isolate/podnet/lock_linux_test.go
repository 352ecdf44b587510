//go:build linux

package podnet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// The test's own namespace and veth pair, on a /30 of its own.
const (
	testNS   = "gbpodnet-test"
	hostIf   = "gbpn0"
	podIf    = "gbpn1"
	hostAddr = "10.213.77.1"
	podAddr  = "10.213.77.2"
	// And IPv6, on a /64 of its own.
	hostAddr6 = "fd42:99:77::1"
	podAddr6  = "fd42:99:77::2"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// podNamespace makes a network namespace joined to the host by a veth
// pair, as a pod's would be, and removes it afterwards.
func podNamespace(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (network namespaces, nftables)")
	}
	for _, tool := range []string{"ip", "setpriv", "bash", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s not installed (iproute2, util-linux, coreutils)", tool)
		}
	}
	exec.Command("ip", "netns", "del", testNS).Run()
	exec.Command("ip", "link", "del", hostIf).Run()
	run(t, "ip", "netns", "add", testNS)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", testNS).Run()
	})
	run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", podIf, "netns", testNS)
	run(t, "ip", "addr", "add", hostAddr+"/30", "dev", hostIf)
	run(t, "ip", "addr", "add", hostAddr6+"/64", "dev", hostIf, "nodad")
	run(t, "ip", "link", "set", hostIf, "up")
	run(t, "ip", "-n", testNS, "addr", "add", podAddr+"/30", "dev", podIf)
	run(t, "ip", "-n", testNS, "addr", "add", podAddr6+"/64", "dev", podIf, "nodad")
	run(t, "ip", "-n", testNS, "link", "set", podIf, "up")
	run(t, "ip", "-n", testNS, "link", "set", "lo", "up")
}

// inPod runs a shell line in the namespace as uid.
func inPod(uid int, line string) error {
	u := strconv.Itoa(uid)
	return exec.Command("ip", "netns", "exec", testNS, "setpriv", "--reuid="+u, "--regid="+u, "--clear-groups",
		"timeout", "2", "bash", "-c", line).Run()
}

// listenIn is listen in the network namespace nsfd: the socket stays in it.
func listenIn(t *testing.T, nsfd int, addr string) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(self)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	port := listen(t, addr)
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		panic(err) // this thread must not go back to the scheduler in the pod's namespace
	}
	return port
}

// listen serves "hello\n" to each connection at addr and returns its port.
func listen(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// forgetNeighbours empties both ends' neighbour caches, so that the next
// packet over IPv6 needs neighbour discovery through the lock.
func forgetNeighbours(t *testing.T) {
	t.Helper()
	run(t, "ip", "-6", "neigh", "flush", "dev", hostIf)
	run(t, "ip", "-n", testNS, "-6", "neigh", "flush", "dev", podIf)
}

// TestLock: in a namespace locked by Lock, the browser's user reaches only
// loopback, the relay's user only the egress port, root nothing, and from
// outside only the relay port answers; no UDP leaves. Over IPv6 too:
// neighbour discovery gets through, and nothing more.
func TestLock(t *testing.T) {
	podNamespace(t)
	egress := listen(t, hostAddr+":0")
	listen(t, net.JoinHostPort(hostAddr6, strconv.Itoa(egress)))
	other := listen(t, hostAddr+":0")
	listen(t, net.JoinHostPort(hostAddr6, strconv.Itoa(other)))
	udp, err := net.ListenPacket("udp", hostAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	fd, err := unix.Open("/run/netns/"+testNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// Listeners in the pod: the relay's port, another, and one on its
	// loopback.
	relayPort := listenIn(t, fd, "0.0.0.0:0")
	podOther := listenIn(t, fd, "0.0.0.0:0")
	podLoop := listenIn(t, fd, "127.0.0.1:0")

	const browserUID, relayUID = 1000, 1001
	connect := func(addr string, port int) string {
		return fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && head -c 5 <&3 | grep -q hello", addr, port)
	}
	// Before the lock, everything goes: the checks below mean something.
	if err := inPod(browserUID, connect(hostAddr, other)); err != nil {
		t.Fatalf("before the lock the browser's user cannot reach the host: %v", err)
	}

	if err := lock(Rules{RelayPort: relayPort, RelayUID: relayUID, EgressPort: egress}, nftables.WithNetNSFd(fd)); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		what string
		uid  int
		line string
		ok   bool
	}{
		{"browser to loopback", browserUID, connect("127.0.0.1", podLoop), true},
		{"browser to the egress port", browserUID, connect(hostAddr, egress), false},
		{"browser to another host port", browserUID, connect(hostAddr, other), false},
		{"relay to the egress port", relayUID, connect(hostAddr, egress), true},
		{"relay to another port", relayUID, connect(hostAddr, other), false},
		{"root to the egress port", 0, connect(hostAddr, egress), false},
		{"relay to the egress port over IPv6", relayUID, connect(hostAddr6, egress), true},
		{"relay to another port over IPv6", relayUID, connect(hostAddr6, other), false},
		{"browser to the egress port over IPv6", browserUID, connect(hostAddr6, egress), false},
		{"browser to loopback over IPv6", browserUID, connect("::1", listenIn(t, fd, "[::1]:0")), true},
	} {
		forgetNeighbours(t)
		err := inPod(c.uid, c.line)
		if (err == nil) != c.ok {
			t.Errorf("%s: connected %v, want %v (%v)", c.what, err == nil, c.ok, err)
		}
	}
	for _, uid := range []int{browserUID, relayUID} {
		inPod(uid, fmt.Sprintf("echo query > /dev/udp/%s/%d", hostAddr, udp.LocalAddr().(*net.UDPAddr).Port))
	}
	udp.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, from, err := udp.ReadFrom(make([]byte, 64)); err == nil {
		t.Errorf("UDP left the pod: %d bytes from %v", n, from)
	}

	from := func(addr string, port int) bool {
		forgetNeighbours(t)
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 5)
		_, err = c.Read(b)
		return err == nil && string(b) == "hello"
	}
	for _, addr := range []string{podAddr, podAddr6} {
		if !from(addr, relayPort) {
			t.Errorf("the relay port does not answer from outside at %s", addr)
		}
		if from(addr, podOther) {
			t.Errorf("another pod port answers from outside at %s", addr)
		}
		if from(addr, podLoop) {
			t.Errorf("the pod's loopback listener answers from outside at %s", addr)
		}
	}

	// Locking again replaces the table: still one, same rules.
	if err := lock(Rules{RelayPort: relayPort, RelayUID: relayUID, EgressPort: egress}, nftables.WithNetNSFd(fd)); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", testNS, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	if n := strings.Count(string(out), "table inet "+TableName); n != 1 {
		t.Errorf("%d tables after a second lock:\n%s", n, out)
	}
}

func TestRulesValidate(t *testing.T) {
	if err := (Rules{RelayPort: 9443, RelayUID: 1001, EgressPort: 3128}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := Rules{RelayPort: 0, RelayUID: 0, EgressPort: 70000}.Validate()
	for _, want := range []string{"relay port 0", "egress port 70000", "relay uid 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
