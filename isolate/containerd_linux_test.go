//go:build linux

package isolate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/google/nftables"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/glovebox/glovebox/isolate/internal/testlock"
	"github.com/glovebox/glovebox/isolate/netns"
)

// blocked is the timeout of a connection that must not be answered: a SYN
// the firewall drops gets no answer, so the dial times out.
const blocked = 400 * time.Millisecond

// needNetwork skips tb unless this machine lets the containers have a
// network (root, nftables), and checks when tb ends that no veth or
// firewall table of the network's is left. The network's own tests are in
// package netns.
func needNetwork(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("the container network needs root: it makes veths and an nftables table")
	}
	nft, err := nftables.New()
	if err == nil {
		_, err = nft.ListTablesOfFamily(nftables.TableFamilyINet)
	}
	if err != nil {
		tb.Skip("nftables is unavailable: " + err.Error())
	}
	testlock.Network(tb)
	// Registered first, so it runs after every other cleanup of tb.
	tb.Cleanup(func() {
		links, err := netlink.LinkList()
		if err != nil {
			tb.Errorf("leak check: list links: %v", err)
		}
		for _, l := range links {
			if name := l.Attrs().Name; strings.HasPrefix(name, netns.HostInterfacePrefix) {
				tb.Errorf("left behind: link %s (%s)", name, l.Attrs().Alias)
			}
		}
		tables, err := nft.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			tb.Errorf("leak check: list nftables tables: %v", err)
		}
		for _, t := range tables {
			if t.Name == netns.TableName {
				tb.Errorf("left behind: nftables table inet %s", t.Name)
			}
		}
	})
}

// newTestNetwork returns a container network whose containers may reach
// egressPort on their host ends, closed when tb ends.
func newTestNetwork(tb testing.TB, egressPort int, edit func(*netns.Config)) *netns.Network {
	tb.Helper()
	cfg := netns.DefaultConfig()
	cfg.EgressPort = egressPort
	if edit != nil {
		edit(&cfg)
	}
	n, err := netns.New(cfg, testLogger())
	if err != nil {
		tb.Fatalf("netns.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("Network.Close: %v", err)
		}
	})
	return n
}

// TestContainerdNetwork runs a browser with the real Network: Chromium's
// requests go to the egress proxy on the host end of its veth, named from
// its /etc/hosts, and DevTools is not on the veth.
func TestContainerdNetwork(t *testing.T) {
	needContainerd(t)
	needNetwork(t)

	// A free port for the egress proxy; it listens on the link's host end
	// once that exists.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	n := newTestNetwork(t, port, nil)
	c := newTestContainerd(t, nil, n)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cgroups := cgroupChildren()
	b, err := c.Start(ctx, Spec{TabID: "tab-net"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	link := ctrState(t, c, b).link
	if link == nil || b.Addr == nil || !b.Addr.Equal(link.ContainerIP) {
		t.Fatalf("Addr = %v, link %+v", b.Addr, link)
	}

	// The egress proxy's stand-in answers every request itself and
	// records who asked.
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.RemoteAddr+" "+r.Method+" "+r.URL.String())
		mu.Unlock()
		if r.URL.Host != "glovebox.test" {
			http.Error(w, "refused by the test's egress proxy", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, "<title>via egress</title><p>hello")
	})}
	pl, err := net.Listen("tcp", net.JoinHostPort(link.HostIP.String(), strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(pl)
	defer srv.Close()

	actx, acancel := remote.NewAllocator(ctx, devtoolsBridge(t, b), remote.NoModifyURL)
	defer acancel()
	cctx, ccancel := chromedp.NewContext(actx)
	defer ccancel()
	if err := chromedp.Do(cctx, chromedp.Navigate("http://glovebox.test/hello")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	title, err := chromedp.Run(cctx, chromedp.Title())
	if err != nil || title != "via egress" {
		t.Errorf("title = %q, %v: want the egress proxy's page", title, err)
	}
	mu.Lock()
	var fromBrowser bool
	for _, s := range seen {
		if strings.HasPrefix(s, b.Addr.String()+":") && strings.Contains(s, "http://glovebox.test/hello") {
			fromBrowser = true
		}
	}
	if !fromBrowser {
		t.Errorf("the proxy saw %q, want GET http://glovebox.test/hello from %s", seen, b.Addr)
	}
	mu.Unlock()
	ccancel()
	acancel()

	// DevTools is not on the veth.
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(b.Addr.String(), strconv.Itoa(devtoolsPort)), blocked); err == nil {
		conn.Close()
		t.Errorf("DevTools answers on the container's address %s", b.Addr)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkNothingLeft(t, c, cgroups)
}

// TestContainerdStartFailsAttached fails a start after its network step, as
// DevTools does not answer in time: the link goes with the rest.
func TestContainerdStartFailsAttached(t *testing.T) {
	needContainerd(t)
	needNetwork(t)
	n := newTestNetwork(t, 3129, nil)
	c := newTestContainerd(t, nil, n)
	c.cfg.StartTimeout = 50 * time.Millisecond // after NewContainerd, which the daemon's start bounds
	cgroups := cgroupChildren()
	b, err := c.Start(t.Context(), Spec{TabID: "tab-fail-net"})
	if err == nil {
		b.Close()
		t.Fatal("Start succeeded")
	}
	if !strings.Contains(err.Error(), "did not answer within 50ms") {
		t.Errorf("error %q is not DevTools' timeout", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, netns.HostInterfacePrefix) {
			t.Errorf("link %s (%s) left after the failed start", l.Attrs().Name, l.Attrs().Alias)
		}
	}
	checkNothingLeft(t, c, cgroups)
}

// TestContainerdStartCapacity: on a subnet with room for one container, a
// second start fails with ErrCapacity, not as a failure, and leaves nothing.
func TestContainerdStartCapacity(t *testing.T) {
	needContainerd(t)
	needNetwork(t)
	n := newTestNetwork(t, 3129, func(c *netns.Config) { c.Subnet = "198.18.0.0/30" })
	c := newTestContainerd(t, nil, n)
	cgroups := cgroupChildren()
	first, err := c.Start(t.Context(), Spec{TabID: "tab-first"})
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	defer first.Close()
	b, err := c.Start(t.Context(), Spec{TabID: "tab-second"})
	if err == nil {
		b.Close()
		t.Fatal("a second Start on a subnet of one /30 succeeded")
	}
	if !errors.Is(err, ErrCapacity) || !errors.Is(err, netns.ErrSubnetFull) {
		t.Errorf("second Start: %v, want ErrCapacity (netns.ErrSubnetFull)", err)
	}
	if got := c.Running(); got != 1 {
		t.Errorf("Running = %d, want 1", got)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkNothingLeft(t, c, cgroups)
}

func TestContainerdSeccomp(t *testing.T) {
	spec := applySpec(t, testCtrSpec())
	got := spec.Linux.Seccomp
	// containerd's default profile for a process with no capabilities...
	want := seccomp.DefaultProfile(spec)
	if got.DefaultAction != specs.ActErrno || !reflect.DeepEqual(got.Architectures, want.Architectures) {
		t.Errorf("default action %s, arches %v: want containerd's", got.DefaultAction, got.Architectures)
	}
	for _, sc := range want.Syscalls {
		for _, n := range sc.Names {
			if n == "chroot" || n == "unshare" || n == "mount" || n == "setns" {
				t.Errorf("containerd's profile for no capabilities allows %s: the test's premise is wrong", n)
			}
		}
	}
	// ...and the three additions for Chromium's sandbox, exactly.
	n := len(want.Syscalls)
	if len(got.Syscalls) != n+3 || !reflect.DeepEqual(got.Syscalls[:n], want.Syscalls) {
		t.Fatalf("profile has %d rules, want containerd's %d then Chromium's 3", len(got.Syscalls), n)
	}
	add := got.Syscalls[n:]
	clone := specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{
		Index: 0, Value: unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP, Op: specs.OpMaskedEqual}}}
	unshare := specs.LinuxSyscall{Names: []string{"unshare"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{
		Index: 0, Value: unix.CLONE_NEWUSER, Op: specs.OpEqualTo}}}
	chroot := specs.LinuxSyscall{Names: []string{"chroot"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{}}
	for i, want := range []specs.LinuxSyscall{clone, unshare, chroot} {
		if !reflect.DeepEqual(add[i], want) {
			t.Errorf("addition %d = %+v, want %+v", i, add[i], want)
		}
	}
	// What the clone rule lets through: user, PID and network namespaces.
	allows := func(flags uint64) bool { return flags&add[0].Args[0].Value == add[0].Args[0].ValueTwo }
	if !allows(unix.CLONE_NEWUSER|unix.CLONE_NEWPID|unix.CLONE_NEWNET) || allows(unix.CLONE_NEWNS) || allows(unix.CLONE_NEWCGROUP|unix.CLONE_NEWUSER) {
		t.Error("the clone rule lets the wrong namespaces through")
	}
}
