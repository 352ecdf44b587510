package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// specialRange is an address block the isolated browsers may not reach
// unless allow_internal names the host.
type specialRange struct {
	prefix netip.Prefix
	what   string
}

// internalV4 lists the IPv4 blocks that are not ordinary public Internet
// destinations (IANA's special-purpose registry, RFC 6890 and successors).
// Documentation and benchmarking blocks are in the list because nothing
// legitimate lives there and 198.18.0.0/15 is the containers' own subnet.
var internalV4 = []specialRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)"}, // Linux connects 0.0.0.0 to the host itself
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"}, // DS-Lite, NAT64 discovery
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (the containers' subnet)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"}, // includes 255.255.255.255
}

// internalV6 lists the blocks inside global unicast 2000::/3 that are not
// public destinations. Everything outside 2000::/3 (loopback, unspecified,
// ULA fc00::/7, link-local fe80::/10, site-local, multicast, discard-only,
// SRv6, local-use NAT64 64:ff9b:1::/48) is refused wholesale, except the
// IPv4-mapped and well-known NAT64 forms, whose embedded IPv4 address is
// checked instead.
var internalV6 = []specialRange{
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments"}, // Teredo (its embedded IPv4 is obfuscated), ORCHID, benchmarking
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},         // RFC 3849
	{netip.MustParsePrefix("3fff::/20"), "documentation"},             // RFC 9637
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16–47
)

// internalReason says why a is not a public destination, or "" if it is one.
// IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96,
// 6to4) are judged by the address they embed, so ::ffff:127.0.0.1 and
// 64:ff9b::a00:1 are as internal as 127.0.0.1 and 10.0.0.1.
func internalReason(a netip.Addr) string {
	if a.Zone() != "" {
		return "scoped address"
	}
	a = a.Unmap()
	if a.Is4() {
		for _, r := range internalV4 {
			if r.prefix.Contains(a) {
				return r.what
			}
		}
		return ""
	}
	b := a.As16()
	switch {
	case nat64WellKnown.Contains(a):
		if why := internalReason(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
			return "NAT64 form of " + why
		}
		return ""
	case sixToFour.Contains(a):
		if why := internalReason(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
			return "6to4 form of " + why
		}
		return ""
	case !globalUnicast6.Contains(a):
		switch {
		case a.IsLoopback():
			return "loopback"
		case a.IsUnspecified():
			return "unspecified"
		case a.IsLinkLocalUnicast():
			return "link-local"
		case a.IsMulticast():
			return "multicast"
		case a.IsPrivate():
			return "unique local (ULA)"
		}
		return "not global unicast IPv6"
	}
	for _, r := range internalV6 {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	return ""
}

// hostAddrTTL is how long hostAddrs trusts its list of this host's addresses.
const hostAddrTTL = 5 * time.Second

// hostAddrs knows this host's own interface addresses. A site that resolves
// to one of them (a public address configured on a bare-metal box) is as
// internal as loopback: behind it are the host's own services, such as the
// user-facing proxy, the admin address and ssh.
type hostAddrs struct {
	list func() ([]net.Addr, error) // net.InterfaceAddrs; tests replace it

	mu      sync.Mutex
	set     map[netip.Addr]bool
	fetched time.Time
}

// contains reports whether a is one of this host's addresses. When the list
// cannot be read it keeps the last one it had.
func (h *hostAddrs) contains(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.set == nil || time.Since(h.fetched) > hostAddrTTL {
		if as, err := h.list(); err == nil || h.set == nil {
			set := map[netip.Addr]bool{}
			for _, na := range as {
				if p, err := netip.ParsePrefix(na.String()); err == nil {
					set[p.Addr().Unmap()] = true
				}
			}
			h.set = set
		}
		h.fetched = time.Now()
	}
	return h.set[a.WithZone("").Unmap()]
}
