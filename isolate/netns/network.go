package netns

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// Config configures the network of the containerd runtime: each
// container gets one veth pair of its own, and from it can reach exactly one
// thing, the egress proxy on the host end of that pair.
type Config struct {
	// Subnet is the IPv4 range the containers' links are numbered from, in
	// CIDR form. It is cut into /30 blocks, one per running container: the
	// host end of the link gets the block's first address (.1), the
	// container the second (.2). The default, 198.18.0.0/15, is reserved for
	// benchmarking (RFC 2544), so it is unlikely to clash with a real
	// network, and gives 32768 containers. It must not overlap any address
	// or route of the host. A /30 is the smallest (one container).
	Subnet string `mapstructure:"subnet"`
	// EgressPort is the TCP port of the egress proxy, the only port a
	// container may reach, on the host end of its own link. It is not a
	// setting of its own: it is taken from the egress proxy's address.
	EgressPort int `mapstructure:"-"`
}

// DefaultConfig returns the network's defaults. EgressPort is left
// for the wiring to set.
func DefaultConfig() Config {
	return Config{Subnet: "198.18.0.0/15"}
}

// Validate reports every setting that is wrong, naming its key. An EgressPort
// of zero passes, since the wiring may set it after the settings are read;
// New refuses it.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseSubnet(c.Subnet); err != nil {
		errs = append(errs, fmt.Errorf("subnet: %w", err))
	}
	if c.EgressPort < 0 || c.EgressPort > 65535 {
		errs = append(errs, fmt.Errorf("egress port %d (from the egress proxy's address) is not a TCP port", c.EgressPort))
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolate network config: %w", errors.Join(errs...))
	}
	return nil
}

// parseSubnet checks s is an IPv4 network of at least one /30 and returns it.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range such as 198.18.0.0/15", s)
	}
	switch {
	case !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%q is not IPv4: containers get no IPv6", s)
	case p.Bits() > 30:
		return netip.Prefix{}, fmt.Errorf("%q is smaller than a /30, the block one container needs", s)
	case p.Bits() < 8:
		return netip.Prefix{}, fmt.Errorf("%q is larger than a /8; a /15 already numbers 32768 containers", s)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the range is %s", s, p.Masked())
	}
	for _, r := range reservedV4 {
		if r.Overlaps(p) {
			return netip.Prefix{}, fmt.Errorf("%q overlaps %s, which the host needs for itself", s, r)
		}
	}
	return p, nil
}

// reservedV4 are ranges a container link must never take over.
var reservedV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// ErrCapacity is the category of errors that say a limit is reached rather
// than that something failed: no room now, maybe later. ErrSubnetFull
// wraps it. isolate.ErrCapacity is the same error, so that callers of the
// runtimes need not know this package.
var ErrCapacity = errors.New("isolate: no room for another browser")

// ErrSubnetFull is returned by Attach when every /30 of the subnet is in use.
// It wraps ErrCapacity.
var ErrSubnetFull = fmt.Errorf("%w: every address block of the container subnet is in use", ErrCapacity)

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("isolate network: closed")

// hostIfPrefix starts the name of the host end of every veth Glovebox
// creates, so that Reap can find what a crashed Glovebox left.
const hostIfPrefix = "gbh"

// HostInterfacePrefix starts the name of the host end of every container's
// veth: interfaces that only the containers reach.
const HostInterfacePrefix = hostIfPrefix

// containerIf is the name of the container's end of its veth.
const containerIf = "eth0"

// TableName is the nftables table (family inet) that holds all of Glovebox's
// firewall; nothing else of Glovebox's is in the ruleset.
const TableName = "glovebox"

// hostIfName names the host end of id's veth: the prefix and 8 hex digits of
// a hash of id (tab ids may be longer than the 15 bytes a name may have, or
// share a prefix). The full id is in the link's alias.
func hostIfName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hostIfPrefix + hex.EncodeToString(sum[:4])
}

// Network gives each container a veth pair of its own, numbered from a /30 of
// the subnet, and keeps the firewall that lets a container reach the egress
// proxy and nothing else. It is safe for concurrent use. One Network per host:
// New removes whatever veth or table of Glovebox's it finds.
type Network struct {
	cfg    Config
	log    *slog.Logger
	blocks *blocks

	// fw serialises changes to the firewall: the nftables library shares
	// set ids between connections without a lock of its own.
	fw sync.Mutex

	mu     sync.Mutex
	links  map[string]*Link // by ID; nil while attaching
	ifs    map[string]bool  // host end names in use
	closed bool
	table  bool // the table is ours: it was created and not deleted since
}

// EgressPort returns the TCP port containers may reach on their host end.
func (n *Network) EgressPort() int { return n.cfg.EgressPort }

// Link is one container's veth pair. Close it when the container is gone.
type Link struct {
	// ID is the container's id, as given to Attach.
	ID string
	// HostIP is the host end's address: where the container reaches the
	// egress proxy.
	HostIP net.IP
	// ContainerIP is the container end's address, the source of every
	// connection the container makes.
	ContainerIP net.IP
	// HostIf is the name of the host end: "gbh" and 8 hex digits of a
	// hash of ID, whose alias is "glovebox:" and ID. The container end is
	// eth0 inside the container's network namespace.
	HostIf string

	n     *Network
	block int

	mu     sync.Mutex
	closed bool
}

// EgressAddr returns host:port of the egress proxy as the container reaches
// it, for Chromium's --proxy-server.
func (l *Link) EgressAddr() string {
	return net.JoinHostPort(l.HostIP.String(), strconv.Itoa(l.n.cfg.EgressPort))
}

// blocks hands out the /30 blocks of a subnet. It searches from the block
// after the last one it gave, so that a freed block, and the address a
// finished container had, is reused last: a log line or a connection still
// in flight that names that address then belongs to one container only, as
// long as possible.
type blocks struct {
	base netip.Addr
	mu   sync.Mutex
	used []bool
	next int
	n    int // in use
}

func newBlocks(p netip.Prefix) *blocks {
	return &blocks{base: p.Addr(), used: make([]bool, 1<<(30-p.Bits()))}
}

// get reserves a free block and returns its index.
func (b *blocks) get() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == len(b.used) {
		return 0, ErrSubnetFull
	}
	for i := range len(b.used) {
		k := (b.next + i) % len(b.used)
		if !b.used[k] {
			b.used[k] = true
			b.n++
			b.next = (k + 1) % len(b.used)
			return k, nil
		}
	}
	panic("isolate: block count out of step with the blocks in use")
}

// put frees block k.
func (b *blocks) put(k int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used[k] {
		b.used[k] = false
		b.n--
	}
}

// addrs returns the host and container addresses of block k.
func (b *blocks) addrs(k int) (host, ctr netip.Addr) {
	v := b.base.As4()
	u := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	u += uint32(k) * 4
	at := func(off uint32) netip.Addr {
		x := u + off
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	}
	return at(1), at(2)
}
