//go:build linux

package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate/internal/testlock"
)

// The network tests make real network namespaces, veths and nftables rules,
// and send traffic only over loopback and into the namespaces they make.
// They run one at a time, and not beside isolate's tests of the containers'
// network (testlock): a Network owns the host's one table.

// testIfPrefix names the tests' own veths, which stand for a LAN interface
// and are not Glovebox's; testNetnsPrefix the namespaces the tests make.
const (
	testIfPrefix    = "gbt"
	testNetnsPrefix = "gbtest-"
)

// blocked is the timeout of a connection the firewall should drop: a dropped
// SYN gets no answer, so the dial times out.
const blocked = 400 * time.Millisecond

var netTest struct {
	once   sync.Once
	reason string
	seq    atomic.Int64
	// hadRunNetns is whether /run/netns was there before the tests
	// made their namespaces in it.
	hadRunNetns bool
}

// needNetwork skips tb unless this machine lets it make network namespaces,
// veths and nftables tables, and checks when tb ends that nothing of the
// network's or the test's is left.
func needNetwork(tb testing.TB) {
	tb.Helper()
	netTest.once.Do(func() {
		_, err := os.Stat("/run/netns")
		netTest.hadRunNetns = err == nil
		if os.Geteuid() != 0 {
			netTest.reason = "the network tests need root: they make network namespaces, veths and an nftables table"
			return
		}
		c, err := nftables.New()
		if err == nil {
			_, err = c.ListTablesOfFamily(nftables.TableFamilyINet)
		}
		if err != nil {
			netTest.reason = "nftables is unavailable: " + err.Error()
		}
	})
	if netTest.reason != "" {
		testenv.Missing(tb, "%s", netTest.reason)
	}
	testlock.Network(tb)
	// Registered first, so it runs after every other cleanup of tb.
	tb.Cleanup(func() { checkNetworkLeft(tb) })
}

func checkNetworkLeft(tb testing.TB) {
	tb.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		tb.Errorf("leak check: list links: %v", err)
	}
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, hostIfPrefix) || strings.HasPrefix(name, testIfPrefix) {
			tb.Errorf("left behind: link %s (%s)", name, l.Attrs().Alias)
		}
	}
	if ok, err := firewallExists(); ok || err != nil {
		tb.Errorf("left behind: nftables table inet %s (err %v)", TableName, err)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), testNetnsPrefix) {
			tb.Errorf("left behind: network namespace %s", e.Name())
		}
	}
	if !netTest.hadRunNetns && len(ents) == 0 {
		os.Remove("/run/netns") // made by vnetns.NewNamed
	}
}

// testNS is a network namespace the test made, named under /run/netns.
type testNS struct {
	name, path string
	h          vnetns.NsHandle
}

func newTestNS(tb testing.TB) *testNS {
	tb.Helper()
	ns := &testNS{name: fmt.Sprintf("%s%d-%d", testNetnsPrefix, os.Getpid(), netTest.seq.Add(1))}
	ns.path = "/run/netns/" + ns.name
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		host, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer host.Close()
		ns.h, err = vnetns.NewNamed(ns.name)
		if serr := vnetns.Set(host); serr != nil {
			errc <- errors.Join(err, serr) // the thread stays locked and ends
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("make network namespace %s: %v", ns.name, err)
	}
	tb.Cleanup(func() {
		ns.h.Close()
		if err := vnetns.DeleteNamed(ns.name); err != nil {
			tb.Errorf("delete network namespace %s: %v", ns.name, err)
		}
	})
	return ns
}

// do runs fn in the namespace; a nil ns is the host.
func (ns *testNS) do(fn func() error) error {
	if ns == nil {
		return fn()
	}
	return inNetns(ns.h, fn)
}

// dial connects to addr from the namespace and returns the first line the
// server sends.
func (ns *testNS) dial(addr string, timeout time.Duration) (string, error) {
	var line string
	err := ns.do(func() error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// serve listens on addr in the namespace and greets every connection with
// name; it returns the port.
func (ns *testNS) serve(tb testing.TB, addr, name string) int {
	tb.Helper()
	var ln net.Listener
	if err := ns.do(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		tb.Fatalf("listen on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// listenUDP opens a UDP socket on addr in the namespace.
func (ns *testNS) listenUDP(tb testing.TB, addr string) *net.UDPConn {
	tb.Helper()
	var c *net.UDPConn
	if err := ns.do(func() error {
		a, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", a)
		return err
	}); err != nil {
		tb.Fatalf("listen on udp %s: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// sendUDP sends msg to addr from the namespace.
func (ns *testNS) sendUDP(addr, msg string) error {
	return ns.do(func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(msg))
		return err
	})
}

// received returns what c receives within d, or "".
func received(c *net.UDPConn, d time.Duration) string {
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(d))
	k, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return ""
	}
	return string(buf[:k])
}

// lanRange returns a /24 for the test's own links, which stand for a LAN,
// that no address or route of the host touches: the test's links shadow
// nothing real.
func lanRange(tb testing.TB) netip.Prefix {
	tb.Helper()
	for _, s := range []string{"198.51.100.0/24", "203.0.113.0/24", "100.64.213.0/24", "10.213.77.0/24"} {
		if p := netip.MustParsePrefix(s); subnetFree(p) == nil {
			return p
		}
	}
	testenv.Missing(tb, "no range free on this host for the test's own links")
	return netip.Prefix{}
}

// block30 returns the i-th /30 of p.
func block30(p netip.Prefix, i int) netip.Prefix {
	host, _ := newBlocks(p).addrs(i)
	return netip.PrefixFrom(host, 30).Masked()
}

// plainLink joins ns to the host by a veth that is not Glovebox's, as a LAN
// would be: the host end, name, gets the first address of block and eth0
// inside the second, with routes inside to dsts via the host end. forward
// turns forwarding on for its host end only.
func plainLink(tb testing.TB, ns *testNS, name string, block netip.Prefix, forward bool, dsts ...netip.Prefix) {
	host := netip.PrefixFrom(block.Addr().Next(), 30)
	peer := netip.PrefixFrom(host.Addr().Next(), 30)
	tb.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.h)}
	if err := netlink.LinkAdd(veth); err != nil {
		tb.Fatalf("create veth %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := deleteLink(name); err != nil {
			tb.Errorf("delete %s: %v", name, err)
		}
	})
	fwd := "0"
	if forward {
		fwd = "1"
	}
	if err := writeSysctls(append(ipv6Off(name), "net/ipv4/conf/"+name+"/forwarding="+fwd)...); err != nil {
		tb.Fatal(err)
	}
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: prefixNet(host)}); err != nil {
		tb.Fatalf("address %s: %v", host, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		tb.Fatal(err)
	}
	if err := ns.do(func() error {
		if err := writeSysctls(append(ipv6Off("all"), ipv6Off("default")...)...); err != nil {
			return err
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(eth, &netlink.Addr{IPNet: prefixNet(peer)}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(eth); err != nil {
			return err
		}
		for _, r := range dsts {
			if err := addRoute(r, host.Addr()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatalf("set %s up inside: %v", name, err)
	}
}

// addRoute adds a route to dst via gw in the calling thread's namespace.
func addRoute(dst netip.Prefix, gw netip.Addr) error {
	return netlink.RouteAdd(&netlink.Route{Dst: prefixNet(dst), Gw: net.IP(gw.AsSlice())})
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestNetwork(tb testing.TB, egressPort int, edit func(*Config)) *Network {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.EgressPort = egressPort
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg, testLogger())
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("Network.Close: %v", err)
		}
	})
	return n
}

func attach(tb testing.TB, n *Network, id string, ns *testNS) *Link {
	tb.Helper()
	l, err := n.Attach(context.Background(), id, ns.path)
	if err != nil {
		tb.Fatalf("Attach %s: %v", id, err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("Link.Close %s: %v", id, err)
		}
	})
	return l
}

func hostPort(ip net.IP, port int) string { return net.JoinHostPort(ip.String(), strconv.Itoa(port)) }

func mustAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func readSysctl(k string) string {
	b, err := os.ReadFile("/proc/sys/" + k)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// elements lists the firewall's set, as keys with their comments.
func elements(tb testing.TB) map[string]string {
	tb.Helper()
	c, err := nftables.New()
	if err != nil {
		tb.Fatal(err)
	}
	els, err := c.GetSetElements(fwSet())
	if err != nil {
		tb.Fatalf("list the firewall's set: %v", err)
	}
	m := map[string]string{}
	for _, e := range els {
		m[string(e.Key)] = e.Comment
	}
	return m
}

func hasElement(tb testing.TB, l *Link) bool {
	tb.Helper()
	key := fwElement(l.HostIf, mustAddr(l.ContainerIP), mustAddr(l.HostIP), "").Key
	_, ok := elements(tb)[string(key)]
	return ok
}

func TestNetworkAttach(t *testing.T) {
	needNetwork(t)
	n := newTestNetwork(t, 3128, nil)
	ns := newTestNS(t)
	l := attach(t, n, "tab-attach", ns)

	host, ctr := mustAddr(l.HostIP), mustAddr(l.ContainerIP)
	subnet := netip.MustParsePrefix(DefaultConfig().Subnet)
	block := netip.PrefixFrom(host, 30).Masked()
	if !subnet.Contains(host) || host != block.Addr().Next() || ctr != host.Next() {
		t.Errorf("addresses %s, %s: want .1 and .2 of a /30 of %s", host, ctr, subnet)
	}
	if l.ID != "tab-attach" || l.HostIf != hostIfName("tab-attach") || len(l.HostIf) > 15 {
		t.Errorf("link %+v: want ID tab-attach, HostIf %s", l, hostIfName("tab-attach"))
	}
	if got, want := l.EgressAddr(), hostPort(l.HostIP, 3128); got != want || n.EgressPort() != 3128 {
		t.Errorf("EgressAddr %s, EgressPort %d; want %s, 3128", got, n.EgressPort(), want)
	}

	// The host end.
	hl, err := netlink.LinkByName(l.HostIf)
	if err != nil {
		t.Fatalf("host end: %v", err)
	}
	if hl.Type() != "veth" || hl.Attrs().Alias != "glovebox:tab-attach" || hl.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host end: type %s, alias %q, flags %v; want an up veth labelled glovebox:tab-attach", hl.Type(), hl.Attrs().Alias, hl.Attrs().Flags)
	}
	checkAddrs(t, "host end", hl, netip.PrefixFrom(host, 30))
	if v := readSysctl("net/ipv6/conf/" + l.HostIf + "/disable_ipv6"); v != "1" {
		t.Errorf("host end: disable_ipv6 = %s, want 1", v)
	}
	for k, want := range map[string]string{"forwarding": "0", "arp_ignore": "1"} {
		if v := readSysctl("net/ipv4/conf/" + l.HostIf + "/" + k); v != want {
			t.Errorf("host end: %s = %s, want %s", k, v, want)
		}
	}

	// Inside.
	if err := ns.do(func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		var names []string
		for _, il := range links {
			names = append(names, il.Attrs().Name)
			if il.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("inside: %s is down", il.Attrs().Name)
			}
		}
		if slices.Sort(names); !slices.Equal(names, []string{"eth0", "lo"}) {
			t.Errorf("inside: links %v, want eth0 and lo", names)
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		checkAddrs(t, "inside eth0", eth, netip.PrefixFrom(ctr, 30))
		v6, err := netlink.AddrList(nil, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		if len(v6) > 0 {
			t.Errorf("inside: IPv6 addresses %v, want none", v6)
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Gw != nil {
				t.Errorf("inside: route %v; want only the /30's own", r)
			}
		}
		if len(routes) != 1 || routes[0].Dst.String() != block.String() {
			t.Errorf("inside: routes %v, want one to %s", routes, block)
		}
		for _, k := range []string{"all", "default", "eth0", "lo"} {
			if v := readSysctl("net/ipv6/conf/" + k + "/disable_ipv6"); v != "1" {
				t.Errorf("inside: %s disable_ipv6 = %s, want 1", k, v)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("inside: %v", err)
	}

	// The firewall.
	els := elements(t)
	key := fwElement(l.HostIf, ctr, host, "").Key
	if c, ok := els[string(key)]; !ok || c != "tab-attach" || len(els) != 1 {
		t.Errorf("firewall set: %d elements, ours present %v with comment %q; want only ours, labelled tab-attach", len(els), ok, c)
	}
}

// checkAddrs checks l has exactly the IPv4 address want and no IPv6 one.
func checkAddrs(t *testing.T, what string, l netlink.Link, want netip.Prefix) {
	t.Helper()
	v4, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(v4) != 1 || v4[0].IPNet.String() != want.String() {
		t.Errorf("%s: IPv4 addresses %v, want %s", what, v4, want)
	}
	v6, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(v6) > 0 {
		t.Errorf("%s: IPv6 addresses %v, want none", what, v6)
	}
}

func TestFirewallIsolation(t *testing.T) {
	needNetwork(t)
	var hostNS *testNS // nil: the host itself
	egress := hostNS.serve(t, "0.0.0.0:0", "egress")
	other := hostNS.serve(t, "0.0.0.0:0", "other")
	loop := hostNS.serve(t, "127.0.0.1:0", "loopback")
	n := newTestNetwork(t, egress, nil)
	a, b := newTestNS(t), newTestNS(t)
	la, lb := attach(t, n, "tab-a", a), attach(t, n, "tab-b", b)
	inB := b.serve(t, "0.0.0.0:0", "container b")
	inALoop := a.serve(t, "127.0.0.1:0", "container a loopback")
	// A LAN interface (a veth that is not ours) into a namespace of the
	// test's own.
	lan := newTestNS(t)
	lanBlock := block30(lanRange(t), 0)
	plainLink(t, lan, testIfPrefix+"lan", lanBlock, false)
	lanAddr := lanBlock.Addr().Next().String()

	tests := []struct {
		name    string
		from    *testNS
		addr    string
		want    string // the greeting, or "" when the connection must fail
		dropped bool   // fails by timing out: the firewall dropped it
	}{
		{"egress port on its host end, with the reply", a, hostPort(la.HostIP, egress), "egress", false},
		{"egress port from the other container", b, hostPort(lb.HostIP, egress), "egress", false},
		{"another port on its host end", a, hostPort(la.HostIP, other), "", true},
		{"egress port on another container's host end", a, hostPort(lb.HostIP, egress), "", false},
		{"another container", a, hostPort(lb.ContainerIP, inB), "", false},
		{"the host's loopback", a, net.JoinHostPort("127.0.0.1", strconv.Itoa(loop)), "", false},
		{"the host's other address", a, net.JoinHostPort(lanAddr, strconv.Itoa(egress)), "", false},
		{"its own loopback (control)", a, net.JoinHostPort("127.0.0.1", strconv.Itoa(inALoop)), "container a loopback", false},
		{"host to a container", hostNS, hostPort(lb.ContainerIP, inB), "", true},
		{"container to itself (control)", b, hostPort(lb.ContainerIP, inB), "container b", false},
		{"egress port from the LAN", lan, net.JoinHostPort(lanAddr, strconv.Itoa(egress)), "", true},
		{"another port from the LAN (control)", lan, net.JoinHostPort(lanAddr, strconv.Itoa(other)), "other", false},
		{"egress port over loopback", hostNS, net.JoinHostPort("127.0.0.1", strconv.Itoa(egress)), "egress", false},
		{"a host end from the LAN", lan, hostPort(la.HostIP, egress), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 5 * time.Second
			if tt.want == "" {
				timeout = blocked
			}
			got, err := tt.from.dial(tt.addr, timeout)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Errorf("dial %s: %q, %v; want %q", tt.addr, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("dial %s: connected (%q), want it blocked", tt.addr, got)
			}
			var ne net.Error
			if timedOut := errors.As(err, &ne) && ne.Timeout(); tt.dropped && !timedOut {
				t.Errorf("dial %s: %v; want a timeout (dropped by the firewall)", tt.addr, err)
			}
			t.Logf("dial %s: %v", tt.addr, err)
		})
	}
}

// TestFirewallForward checks that nothing is routed to or from a container,
// even where the host forwards. It turns forwarding on for the test's own
// interfaces and for one link's host end (never globally), after showing
// that the host forwards between two namespaces that are not containers.
func TestFirewallForward(t *testing.T) {
	needNetwork(t)
	n := newTestNetwork(t, 3128, nil)
	a := newTestNS(t)
	la := attach(t, n, "tab-fwd", a)
	c, d := newTestNS(t), newTestNS(t)
	subnet := netip.MustParsePrefix(DefaultConfig().Subnet)
	lan := lanRange(t)
	cBlock, dBlock := block30(lan, 0), block30(lan, 1)
	plainLink(t, c, testIfPrefix+"c", cBlock, true, dBlock, subnet)
	plainLink(t, d, testIfPrefix+"d", dBlock, true, cBlock, subnet)
	if err := a.do(func() error { return addRoute(lan, mustAddr(la.HostIP)) }); err != nil {
		t.Fatal(err)
	}
	inA := a.listenUDP(t, la.ContainerIP.String()+":0")
	inD := d.listenUDP(t, dBlock.Addr().Next().Next().String()+":0")
	aAddr, dAddr := inA.LocalAddr().String(), inD.LocalAddr().String()

	if err := c.sendUDP(dAddr, "control"); err != nil {
		t.Fatal(err)
	}
	if got := received(inD, 2*time.Second); got != "control" {
		t.Fatalf("the host does not forward between two test namespaces (got %q), so this test shows nothing", got)
	}

	if err := c.sendUDP(aAddr, "from the LAN"); err != nil {
		t.Fatal(err)
	}
	if got := received(inA, blocked); got != "" {
		t.Errorf("the container received %q, routed from the LAN", got)
	}

	// As on a host with forwarding on everywhere.
	if err := writeSysctls("net/ipv4/conf/" + la.HostIf + "/forwarding=1"); err != nil {
		t.Fatal(err)
	}
	if err := a.sendUDP(dAddr, "from the container"); err != nil {
		t.Fatal(err)
	}
	if got := received(inD, blocked); got != "" {
		t.Errorf("the LAN received %q, routed from a container", got)
	}
}

// TestFirewallRuleset checks the rules as nft reads them back, which shows
// the set lookup's registers are laid out as nft's own.
func TestFirewallRuleset(t *testing.T) {
	needNetwork(t)
	nft, err := exec.LookPath("nft")
	if err != nil {
		testenv.Missing(t, "no nft command to read the rules back with: %v", err)
	}
	n := newTestNetwork(t, 3128, nil)
	l := attach(t, n, "tab-rules", newTestNS(t))
	out, err := exec.Command(nft, "list", "table", "inet", TableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	for _, want := range []string{
		"type ifname . ipv4_addr . ipv4_addr",
		fmt.Sprintf(`"%s" . %s . %s comment "tab-rules"`, l.HostIf, l.ContainerIP, l.HostIP),
		"hook input priority filter; policy accept;",
		`iifname "gbh*" ct state established,related accept`,
		`iifname "gbh*" tcp dport 3128 iifname . ip saddr . ip daddr @egress accept`,
		`iifname "gbh*" counter packets`,
		`iifname != "lo" tcp dport 3128 counter packets`,
		"hook forward priority filter; policy accept;",
		`oifname "gbh*" counter packets`,
		"hook output priority filter; policy accept;",
		`oifname "gbh*" ct state established,related accept`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ruleset lacks %q", want)
		}
	}
}

func TestLinkClose(t *testing.T) {
	needNetwork(t)
	n := newTestNetwork(t, 3128, nil)
	ns := newTestNS(t)
	l, err := n.Attach(t.Context(), "tab-close", ns.path)
	if err != nil {
		t.Fatal(err)
	}
	if !hasElement(t, l) {
		t.Fatal("no firewall element after Attach")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkVethGone(t, l.HostIf, ns)
	if els := elements(t); len(els) != 0 {
		t.Errorf("firewall set still has %d elements", len(els))
	}
	if k := n.blocks.n; k != 0 {
		t.Errorf("%d blocks in use, want 0", k)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The id and the namespace can be used again; the next block is given.
	l2 := attach(t, n, "tab-close", ns)
	if l2.HostIP.Equal(l.HostIP) {
		t.Errorf("the freed block %s was given again at once", l.HostIP)
	}
}

// checkVethGone checks that the veth whose host end is hostIf is gone, and
// eth0 with it from ns.
func checkVethGone(t *testing.T, hostIf string, ns *testNS) {
	t.Helper()
	if _, err := netlink.LinkByName(hostIf); err == nil {
		t.Errorf("host end %s still there", hostIf)
	}
	if err := ns.do(func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("eth0 still inside")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// checkNothingHeld checks n holds no block, name or link, as after a failed
// Attach.
func checkNothingHeld(t *testing.T, n *Network) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocks.n != 0 || len(n.ifs) != 0 || len(n.links) != 0 {
		t.Errorf("after a failed Attach: %d blocks, %d names, %d links held", n.blocks.n, len(n.ifs), len(n.links))
	}
}

func TestNetworkClose(t *testing.T) {
	needNetwork(t)
	n := newTestNetwork(t, 3128, nil)
	l1 := attach(t, n, "tab-1", newTestNS(t))
	l2 := attach(t, n, "tab-2", newTestNS(t))
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, l := range []*Link{l1, l2} {
		if _, err := netlink.LinkByName(l.HostIf); err == nil {
			t.Errorf("%s still there", l.HostIf)
		}
	}
	if ok, err := firewallExists(); ok || err != nil {
		t.Errorf("table still there (err %v)", err)
	}
	if _, err := n.Attach(t.Context(), "tab-3", newTestNS(t).path); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNetworkReap(t *testing.T) {
	needNetwork(t)
	var hostNS *testNS
	egress := hostNS.serve(t, "0.0.0.0:0", "egress")
	// A Glovebox that crashed: its Network and links are never closed.
	crashed, err := New(Config{Subnet: DefaultConfig().Subnet, EgressPort: egress}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	nsA, nsB := newTestNS(t), newTestNS(t)
	var old []*Link
	for id, ns := range map[string]*testNS{"tab-a": nsA, "tab-b": nsB} {
		l, err := crashed.Attach(t.Context(), id, ns.path)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, l)
	}
	stray := strayVeth(t, hostIfPrefix+"deadbeef")

	n := newTestNetwork(t, egress, nil)
	for _, name := range []string{hostIfName("tab-a"), hostIfName("tab-b"), stray} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("%s survived New", name)
		}
	}
	if els := elements(t); len(els) != 0 {
		t.Errorf("the new table has %d elements, want none", len(els))
	}
	for _, ns := range []*testNS{nsA, nsB} {
		ns.do(func() error {
			if _, err := netlink.LinkByName("eth0"); err == nil {
				t.Errorf("eth0 survived in %s", ns.name)
			}
			return nil
		})
	}

	// Closing a link that was reaped (its veth and element gone) is no
	// error, and touches nothing of the new Network's.
	for _, l := range old {
		if err := l.Close(); err != nil {
			t.Errorf("Close of a reaped link: %v", err)
		}
	}

	// Reap on a live Network keeps its links and table.
	l := attach(t, n, "tab-a", nsA)
	stray = strayVeth(t, hostIfPrefix+"0badf00d")
	if err := n.Reap(); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if _, err := netlink.LinkByName(stray); err == nil {
		t.Errorf("%s survived Reap", stray)
	}
	if _, err := netlink.LinkByName(l.HostIf); err != nil {
		t.Errorf("Reap deleted the live link: %v", err)
	}
	if !hasElement(t, l) {
		t.Error("Reap deleted the live link's firewall element")
	}
	if got, err := nsA.dial(hostPort(l.HostIP, egress), 5*time.Second); err != nil || got != "egress" {
		t.Errorf("after Reap, the live link reaches the egress port: %q, %v", got, err)
	}
}

// strayVeth makes a veth pair named as Glovebox's, as if a crash had left it.
func strayVeth(t *testing.T, name string) string {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: testIfPrefix + name[len(hostIfPrefix):]}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() { deleteLink(name) })
	return name
}

func TestNetworkConcurrentAttach(t *testing.T) {
	needNetwork(t)
	n := newTestNetwork(t, 3128, nil)
	const k = 10
	nss := make([]*testNS, k)
	for i := range nss {
		nss[i] = newTestNS(t)
	}
	links := make([]*Link, k)
	errs := make([]error, k)
	var attached, closed sync.WaitGroup
	release := make(chan struct{})
	for i := range k {
		attached.Add(1)
		closed.Add(1)
		go func() {
			defer closed.Done()
			l, err := n.Attach(t.Context(), fmt.Sprintf("tab-%d", i), nss[i].path)
			links[i], errs[i] = l, err
			attached.Done()
			if err != nil {
				return
			}
			<-release // all attached at once
			errs[i] = l.Close()
		}()
	}
	attached.Wait()
	seen := map[string]int{}
	for i, l := range links {
		if errs[i] != nil {
			t.Errorf("Attach %d: %v", i, errs[i])
			continue
		}
		for _, s := range []string{l.HostIP.String(), l.ContainerIP.String(), l.HostIf} {
			if j, dup := seen[s]; dup {
				t.Errorf("links %d and %d share %s", j, i, s)
			}
			seen[s] = i
		}
		if !hasElement(t, l) {
			t.Errorf("link %d has no firewall element", i)
		}
	}
	if got := n.blocks.n; got != k {
		t.Errorf("%d blocks in use, want %d", got, k)
	}
	close(release)
	closed.Wait()
	for i, err := range errs {
		if links[i] != nil && err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	if got := n.blocks.n; got != 0 {
		t.Errorf("%d blocks in use after Close, want 0", got)
	}

	// One id attached twice at once: one Attach wins.
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 2 {
		wg.Go(func() {
			l, err := n.Attach(t.Context(), "tab-same", nss[i].path)
			if err != nil {
				if !strings.Contains(err.Error(), "already attached") {
					t.Errorf("Attach of the same id: %v", err)
				}
				return
			}
			won.Add(1)
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() == 0 {
		t.Error("neither Attach of the same id won")
	}
}

func TestNetworkAttachErrors(t *testing.T) {
	needNetwork(t)
	// One /30: room for one container.
	n := newTestNetwork(t, 3128, func(c *Config) { c.Subnet = "198.18.0.0/30" })
	ns := newTestNS(t)
	for _, tt := range []struct {
		name, id, path string
		ctx            func() context.Context
		want           string
	}{
		{"empty id", "", ns.path, t.Context, "empty container id"},
		{"no namespace", "tab-x", "/nonexistent/ns/net", t.Context, "open network namespace"},
		{"not a network namespace", "tab-x", "/proc/self/ns/mnt", t.Context, "create veth"},
		{"cancelled", "tab-x", ns.path, func() context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, "context canceled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Attach(tt.ctx(), tt.id, tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Attach: %v, want an error saying %q", err, tt.want)
			}
			checkNothingHeld(t, n)
		})
	}
	attach(t, n, "tab-1", ns)
	if _, err := n.Attach(t.Context(), "tab-1", newTestNS(t).path); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("Attach of an attached id: %v", err)
	}
	if _, err := n.Attach(t.Context(), "tab-2", newTestNS(t).path); !errors.Is(err, ErrSubnetFull) {
		t.Errorf("Attach on a full subnet: %v, want ErrSubnetFull", err)
	}
	if _, err := n.Attach(t.Context(), "tab-2", newTestNS(t).path); !errors.Is(err, ErrSubnetFull) {
		t.Errorf("Attach again on a full subnet: %v, want ErrSubnetFull (the failed id is free)", err)
	}
}

// TestNetworkAttachUndo fails an Attach at its last step, the firewall's,
// by taking the table away: what the steps before made (the veth, its
// addresses, eth0 inside) goes, and the id, name and block are free again.
func TestNetworkAttachUndo(t *testing.T) {
	needNetwork(t)
	n := newTestNetwork(t, 3128, nil)
	ns := newTestNS(t)
	n.fw.Lock()
	err := deleteFirewall()
	n.fw.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		n.fw.Lock()
		defer n.fw.Unlock()
		if err := createFirewall(3128); err != nil {
			t.Errorf("put the table back: %v", err)
		}
	}()

	if _, err := n.Attach(t.Context(), "tab-undo", ns.path); err == nil || !strings.Contains(err.Error(), "allow egress") {
		t.Fatalf("Attach with no table: %v, want the firewall step's error", err)
	}
	checkVethGone(t, hostIfName("tab-undo"), ns)
	checkNothingHeld(t, n)
}

func TestNetworkSubnetClash(t *testing.T) {
	needNetwork(t)
	ns := newTestNS(t)
	lan := lanRange(t)
	block := block30(lan, 0)
	plainLink(t, ns, testIfPrefix+"clash", block, false)
	_, err := New(Config{Subnet: lan.String(), EgressPort: 3128}, testLogger())
	if err == nil || !strings.Contains(err.Error(), "subnet:") || !strings.Contains(err.Error(), netip.PrefixFrom(block.Addr().Next(), 30).String()) {
		t.Errorf("New over a host address: %v; want an error naming subnet and the address", err)
	}
	if _, err := New(Config{Subnet: "198.18.0.0/15"}, testLogger()); err == nil {
		t.Error("New with no egress port passed")
	}
}

// BenchmarkAttach measures one container's network: veth, addresses inside
// and out, and firewall element, then their removal.
func BenchmarkAttach(b *testing.B) {
	needNetwork(b)
	n := newTestNetwork(b, 3128, nil)
	ns := newTestNS(b)
	var attachT, closeT time.Duration
	for b.Loop() {
		t0 := time.Now()
		l, err := n.Attach(b.Context(), "tab-bench", ns.path)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		attachT += t1.Sub(t0)
		closeT += time.Since(t1)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(attachT+closeT), "ms/attach+close")
	b.ReportMetric(ms(attachT), "ms/attach")
	b.ReportMetric(ms(closeT), "ms/close")
}
