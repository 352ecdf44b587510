//go:build linux

package netns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// New removes whatever veth and firewall a crashed Glovebox left
// (see Reap), checks the subnet is free on this host, and creates the
// firewall. Only one Network may run on a host at a time.
func New(cfg Config, log *slog.Logger) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.EgressPort == 0 {
		return nil, errors.New("isolate network: the egress port is not set: the egress proxy's address has no port")
	}
	subnet, _ := parseSubnet(cfg.Subnet)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Network{
		cfg:    cfg,
		log:    log.With("component", "isolate", "part", "network"),
		blocks: newBlocks(subnet),
		links:  map[string]*Link{},
		ifs:    map[string]bool{},
	}
	if err := n.Reap(); err != nil {
		return nil, err
	}
	if err := subnetFree(subnet); err != nil {
		return nil, fmt.Errorf("isolate network config: subnet: %w", err)
	}
	n.fw.Lock()
	err := createFirewall(cfg.EgressPort)
	n.fw.Unlock()
	if err != nil {
		return nil, fmt.Errorf("isolate network: %w", err)
	}
	n.mu.Lock()
	n.table = true
	n.mu.Unlock()
	n.log.Info("container network ready", "subnet", subnet.String(), "egress_port", cfg.EgressPort, "table", "inet "+TableName)
	return n, nil
}

// subnetFree fails if an address or a route of the host overlaps subnet: a
// container link would shadow part of it.
func subnetFree(subnet netip.Prefix) error {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := ipNetPrefix(a.IPNet); ok && p.Overlaps(subnet) {
			return fmt.Errorf("%s overlaps the host's address %s (%s); choose another range", subnet, a.IPNet, a.Label)
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list the host's routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := ipNetPrefix(r.Dst); ok && p.Bits() > 0 && p.Overlaps(subnet) {
			return fmt.Errorf("%s overlaps the host's route to %s; choose another range", subnet, r.Dst)
		}
	}
	return nil
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits).Masked(), true
}

// Attach gives the container whose network namespace is at netnsPath (such
// as /proc/PID/ns/net of a created task, before it starts) its link: a veth
// pair whose container end is eth0 inside, numbered from a free /30, with lo
// and eth0 up, no default route and no IPv6, and the firewall opened for it
// to the egress port on its host end. id labels the link and must be unique
// among the links attached.
func (n *Network) Attach(ctx context.Context, id string, netnsPath string) (_ *Link, retErr error) {
	if id == "" {
		return nil, errors.New("isolate network: attach: empty container id")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attach %s: %w", id, err)
	}
	name, err := n.reserve(id)
	if err != nil {
		return nil, err
	}
	block, err := n.blocks.get()
	if err != nil {
		n.release(id, name)
		return nil, fmt.Errorf("attach %s: %w", id, err)
	}
	a := &attachment{n: n, ctx: ctx, id: id, name: name, netnsPath: netnsPath}
	a.host, a.ctr = n.blocks.addrs(block)
	defer func() {
		if retErr == nil {
			return
		}
		if err := a.undo(); err != nil {
			// The veth keeps its name reserved and its block: Reap
			// removes it at the next start.
			n.log.Warn("clean up after a failed attach", "container", id, "if", name, "err", err)
			n.mu.Lock()
			delete(n.links, id)
			n.mu.Unlock()
			return
		}
		n.blocks.put(block)
		n.release(id, name)
	}()

	a.ns, err = vnetns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("attach %s: open network namespace %s: %w", id, netnsPath, err)
	}
	defer a.ns.Close()
	for _, step := range []func() error{
		a.createVeth,
		a.addressHostEnd,
		a.setUpInside,
		a.openFirewall,
	} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("attach %s: %w", id, err)
		}
	}

	l := &Link{
		ID:          id,
		HostIP:      net.IP(a.host.AsSlice()),
		ContainerIP: net.IP(a.ctr.AsSlice()),
		HostIf:      name,
		n:           n,
		block:       block,
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// Close took its list of links before this one was added; it is this
	// Attach's to undo.
	if n.closed {
		return nil, ErrClosed
	}
	n.links[id] = l
	n.log.Debug("link attached", "container", id, "if", name, "host_ip", a.host.String(), "container_ip", a.ctr.String())
	return l, nil
}

// reserve takes id (by a nil link until the link is made) and a name for
// its host end before the link exists, so that a concurrent Attach of the
// same id fails and a concurrent Reap leaves the link alone.
func (n *Network) reserve(id string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", ErrClosed
	}
	if _, ok := n.links[id]; ok {
		return "", fmt.Errorf("attach %s: already attached", id)
	}
	name := hostIfName(id)
	for i := 1; n.ifs[name]; i++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s#%d", id, i))
		name = hostIfPrefix + hex.EncodeToString(sum[:4])
	}
	n.links[id] = nil
	n.ifs[name] = true
	return name, nil
}

// release gives back what reserve took.
func (n *Network) release(id, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.links, id)
	delete(n.ifs, name)
}

// attachment is one Attach under way. Its steps run in order, and each
// registers in undos how to take back what it made in the kernel.
type attachment struct {
	n         *Network
	ctx       context.Context
	id, name  string // the container, and its host end's name
	netnsPath string
	ns        vnetns.NsHandle
	host, ctr netip.Addr
	veth      *netlink.Veth
	undos     []func() error
}

// undo runs the undos, the last registered first, whatever fails, and joins
// their errors.
func (a *attachment) undo() error {
	var errs []error
	for i := len(a.undos) - 1; i >= 0; i-- {
		errs = append(errs, a.undos[i]())
	}
	return errors.Join(errs...)
}

// createVeth makes the veth pair, its container end already eth0 inside the
// container's network namespace, and labels the host end with the id.
func (a *attachment) createVeth() error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.name
	a.veth = &netlink.Veth{LinkAttrs: attrs, PeerName: containerIf, PeerNamespace: netlink.NsFd(a.ns)}
	if err := netlink.LinkAdd(a.veth); err != nil {
		return fmt.Errorf("create veth %s: %w", a.name, err)
	}
	a.undos = append(a.undos, func() error { return deleteLink(a.name) })
	if err := netlink.LinkSetAlias(a.veth, linkAlias(a.id)); err != nil {
		return fmt.Errorf("label veth %s: %w", a.name, err)
	}
	return nil
}

// addressHostEnd numbers the host end and brings it up.
func (a *attachment) addressHostEnd() error {
	// Before the link is up: an IPv6-enabled veth gets a link-local
	// address as soon as it is. Per-link forwarding off keeps the host from
	// routing for the container even where ip_forward is on (the firewall
	// drops that too); arp_ignore keeps the host from answering ARP for
	// its other addresses, which would tell the container what they are.
	// None of these is a global setting.
	if err := writeSysctls(append(ipv6Off(a.name),
		"net/ipv4/conf/"+a.name+"/forwarding=0",
		"net/ipv4/conf/"+a.name+"/arp_ignore=1")...); err != nil {
		return err
	}
	if err := netlink.AddrAdd(a.veth, &netlink.Addr{IPNet: ipNet(a.host)}); err != nil {
		return fmt.Errorf("address %s on %s: %w", a.host, a.name, err)
	}
	if err := netlink.LinkSetUp(a.veth); err != nil {
		return fmt.Errorf("set %s up: %w", a.name, err)
	}
	return nil
}

// setUpInside numbers eth0 and brings it and lo up, in the container's
// network namespace.
func (a *attachment) setUpInside() error {
	if err := inNetns(a.ns, func() error { return setupInside(a.ctr) }); err != nil {
		return fmt.Errorf("inside %s: %w", a.netnsPath, err)
	}
	return nil
}

// openFirewall lets the container reach the egress port on its host end,
// unless the attach has ended meanwhile.
func (a *attachment) openFirewall() error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	a.n.fw.Lock()
	err := allowEgress(a.name, a.ctr, a.host, a.id)
	a.n.fw.Unlock()
	if err != nil {
		return err
	}
	a.undos = append(a.undos, func() error { return a.n.revoke(a.name, a.ctr, a.host) })
	return nil
}

// linkAlias labels a host end with the container it serves.
func linkAlias(id string) string {
	a := "glovebox:" + id
	if len(a) > 255 { // IFALIASZ - 1
		a = a[:255]
	}
	return a
}

func ipNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(30, 32)}
}

// setupInside numbers and brings up eth0 and lo; it runs on a thread in the
// container's network namespace. IPv6 goes off first, for every interface
// there is and will be, so that none gets an address. No route is added
// beyond the /30's own: the container reaches its host end and nothing else.
func setupInside(ctr netip.Addr) error {
	if err := writeSysctls(append(ipv6Off("default"), append(ipv6Off("all"), ipv6Off(containerIf)...)...)...); err != nil {
		return err
	}
	eth, err := netlink.LinkByName(containerIf)
	if err != nil {
		return fmt.Errorf("find %s: %w", containerIf, err)
	}
	if err := netlink.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(ctr)}); err != nil {
		return fmt.Errorf("address %s on %s: %w", ctr, containerIf, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	if err := netlink.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up: %w", containerIf, err)
	}
	return nil
}

// ipv6Off is the setting that turns IPv6 off on interface dev ("all" and
// "default" included), or none if the kernel has no IPv6.
func ipv6Off(dev string) []string {
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return nil
	}
	return []string{"net/ipv6/conf/" + dev + "/disable_ipv6=1"}
}

// writeSysctls writes each "key=value" (key a path under /proc/sys) in the
// network namespace of the calling thread.
func writeSysctls(kvs ...string) error {
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		f, err := os.OpenFile("/proc/sys/"+k, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
		_, err = f.WriteString(v)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	return nil
}

// inNetns runs fn on a thread switched into ns. The thread goes back to the
// host's namespace afterwards; if it cannot, it stays locked and ends with
// its goroutine, so no other goroutine ever runs in the container's network.
func inNetns(ns vnetns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		host, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open the host's network namespace: %w", err)
			return
		}
		defer host.Close()
		if err := vnetns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		err = fn()
		if serr := vnetns.Set(host); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to the host's network namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// deleteLink deletes the veth whose host end is name (its peer goes with
// it). A link already gone is no error.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find veth %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete veth %s: %w", name, err)
	}
	return nil
}

// revoke closes the firewall to a link's container.
func (n *Network) revoke(hostIf string, ctr, host netip.Addr) error {
	n.fw.Lock()
	defer n.fw.Unlock()
	return revokeEgress(hostIf, ctr, host)
}

// Close deletes the link's veth (the container's end goes with it), closes
// the firewall to it and frees its addresses. It is safe to call more than
// once; after an error, calling it again retries.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	n := l.n
	host, _ := netip.AddrFromSlice(l.HostIP)
	ctr, _ := netip.AddrFromSlice(l.ContainerIP)
	// The firewall first: for a moment the link exists with no way through
	// rather than the other way round.
	if err := n.revoke(l.HostIf, ctr, host); err != nil {
		return fmt.Errorf("close link %s: %w", l.ID, err)
	}
	if err := deleteLink(l.HostIf); err != nil {
		return fmt.Errorf("close link %s: %w", l.ID, err)
	}
	l.closed = true
	// Freed only once the veth is gone, so the next container to get the
	// block does not meet the old route.
	n.blocks.put(l.block)
	n.mu.Lock()
	if n.links[l.ID] == l {
		delete(n.links, l.ID)
	}
	delete(n.ifs, l.HostIf)
	n.mu.Unlock()
	n.log.Debug("link closed", "container", l.ID, "if", l.HostIf)
	return nil
}

// Reap deletes what a Glovebox that crashed left: every veth whose name has
// Glovebox's prefix and, unless this Network has its own table in place, the
// firewall table. A live Network's own links and table are left alone.
func (n *Network) Reap() error {
	n.mu.Lock()
	ours := make(map[string]bool, len(n.ifs))
	for name := range n.ifs {
		ours[name] = true
	}
	keepTable := n.table
	n.mu.Unlock()

	var links []netlink.Link
	var err error
	for range 5 {
		links, err = netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("isolate network: reap: list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || !strings.HasPrefix(a.Name, hostIfPrefix) || ours[a.Name] {
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", a.Name, err))
			continue
		}
		n.log.Info("reaped a veth left by an earlier run", "if", a.Name, "alias", a.Alias)
	}
	if !keepTable {
		n.fw.Lock()
		had, _ := firewallExists()
		err := deleteFirewall()
		n.fw.Unlock()
		if err != nil {
			errs = append(errs, err)
		} else if had {
			n.log.Info("reaped the firewall table left by an earlier run", "table", "inet "+TableName)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("isolate network: reap: %w", err)
	}
	return nil
}

// Close closes every link still attached and deletes the firewall. Attach
// fails with ErrClosed after it. It is safe to call more than once; after an
// error, calling it again retries.
func (n *Network) Close() error {
	n.mu.Lock()
	n.closed = true
	links := make([]*Link, 0, len(n.links))
	for _, l := range n.links {
		if l != nil { // nil: still attaching, which then fails with ErrClosed
			links = append(links, l)
		}
	}
	n.mu.Unlock()

	// Deleting a veth waits for the kernel (some 20 ms here), mostly
	// outside its lock, so links close side by side.
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, l := range links {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = l.Close()
		})
	}
	wg.Wait()
	n.mu.Lock()
	table := n.table
	n.mu.Unlock()
	if table {
		n.fw.Lock()
		err := deleteFirewall()
		n.fw.Unlock()
		if err != nil {
			errs = append(errs, err)
		} else {
			n.mu.Lock()
			n.table = false
			n.mu.Unlock()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("isolate network: close: %w", err)
	}
	if len(links) > 0 || table {
		n.log.Info("container network closed", "links", len(links))
	}
	return nil
}
