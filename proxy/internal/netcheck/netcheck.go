// Package netcheck knows which addresses are not public destinations:
// IANA's special-purpose ranges, the cloud metadata services, operators'
// deny lists, this host's own addresses, and the allow lists that open
// them. Both of Glovebox's proxies ask it. It imports no other Glovebox
// package.
package netcheck

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
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
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"}, // Alibaba's metadata 100.100.100.200 is in it
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
	NAT64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16–47
)

// internalReason says why a is not a public destination, or "" if it is one.
// IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96,
// 6to4) are judged by the address they embed, so ::ffff:127.0.0.1 and
// 64:ff9b::a00:1 are as internal as 127.0.0.1 and 10.0.0.1.
func InternalReason(a netip.Addr) string {
	if a.Zone() != "" {
		return "scoped address"
	}
	a = a.Unmap()
	if a.Is4() {
		return rangeReason(internalV4, a)
	}
	if v4, form, ok := embeddedV4(a); ok {
		if why := InternalReason(v4); why != "" {
			return form + " of " + why
		}
		return ""
	}
	if !globalUnicast6.Contains(a) {
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
	return rangeReason(internalV6, a)
}

// embeddedV4 returns the IPv4 address a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address carries, and which form it is. IPv4-mapped addresses
// are not among them: callers Unmap first.
func embeddedV4(a netip.Addr) (v4 netip.Addr, form string, ok bool) {
	b := a.As16()
	switch {
	case NAT64WellKnown.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64 form", true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4 form", true
	}
	return netip.Addr{}, "", false
}

// rangeReason is the description of the first of rs that holds a, or "".
func rangeReason(rs []specialRange, a netip.Addr) string {
	for _, r := range rs {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	return ""
}

// metadataRanges are the clouds' instance metadata and host agent
// addresses: behind them are the machine's credentials. The egress refuses
// them even for a host allow_internal names; isMetadata lets the front
// proxy, which may reach internal sites, refuse them too.
var metadataRanges = []specialRange{
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata (AWS, GCP, Azure, OCI, OpenStack and others)"}, // GCP's metadata.google.internal
	{netip.MustParsePrefix("169.254.170.2/32"), "cloud metadata (AWS ECS task credentials)"},
	{netip.MustParsePrefix("169.254.170.23/32"), "cloud metadata (AWS EKS Pod Identity)"},
	{netip.MustParsePrefix("169.254.0.23/32"), "cloud metadata (Tencent Cloud)"},
	{netip.MustParsePrefix("100.100.100.200/32"), "cloud metadata (Alibaba Cloud)"},
	{netip.MustParsePrefix("168.63.129.16/32"), "cloud host agent (Azure WireServer)"}, // a public address the hypervisor answers
	{netip.MustParsePrefix("192.0.0.192/32"), "cloud metadata (Oracle Cloud Classic)"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata (AWS, IPv6)"},
	{netip.MustParsePrefix("fd00:ec2::23/128"), "cloud metadata (AWS EKS Pod Identity, IPv6)"},
}

// isMetadata reports whether a is a cloud metadata address, in any of its
// forms (IPv4-mapped, NAT64, 6to4, with a zone).
func IsMetadata(a netip.Addr) bool {
	return Denylist(metadataRanges).Reason(a) != ""
}

// addrDenylist is a list of refused address blocks that nothing allows:
// the cloud metadata addresses and the operator's own (egress.deny).
type Denylist []specialRange

// newAddrDenylist is the metadata addresses and the prefixes of
// egress.deny; an error names the bad entry's key.
func NewDenylist(deny []string) (Denylist, error) {
	d := append(Denylist(nil), metadataRanges...)
	for i, s := range deny {
		p, err := ParseDenyPrefix(s)
		if err != nil {
			return nil, fmt.Errorf("egress.deny[%d]: %w", i, err)
		}
		d = append(d, specialRange{p, "refused by egress.deny " + p.String()})
	}
	return d, nil
}

// reason says which entry of d refuses a, or "". An IPv4 block also holds
// the IPv6 forms of its addresses: ::ffff:a.b.c.d, NAT64 and 6to4.
func (d Denylist) Reason(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if why := rangeReason(d, a); why != "" {
		return why
	}
	if v4, form, ok := embeddedV4(a); ok {
		if why := rangeReason(d, v4); why != "" {
			return form + " of " + why
		}
	}
	return ""
}

// parseDenyPrefix reads a CIDR prefix or a single address. IPv4-mapped
// prefixes (::ffff:10.0.0.0/104) become IPv4 ones, which is how addresses
// are compared.
func ParseDenyPrefix(s string) (netip.Prefix, error) {
	bad := fmt.Errorf("%q: want a CIDR prefix (10.0.0.0/8, fd00::/8) or an IP address", s)
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, bad
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, bad
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// endsInNumber reports whether host's last label (a trailing dot aside) is
// a number, decimal or 0x hex: browsers (the WHATWG URL standard) then read
// the whole host as an IPv4 address (parseLegacyIPv4), or reject it, but
// never look it up.
func EndsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	// However large: 0x100000000 is a bad address, not a name.
	hex, ok := strings.CutPrefix(strings.ToLower(last), "0x")
	return ok && strings.Trim(hex, "0123456789abcdef") == ""
}

// hostAddrTTL is how long hostAddrs trusts its list of this host's addresses.
const HostAddrTTL = 5 * time.Second

// hostAddrs knows this host's own interface addresses. A site that resolves
// to one of them (a public address configured on a bare-metal box) is as
// internal as loopback: behind it are the host's own services, such as the
// user-facing proxy, the admin address and ssh.
type HostAddrs struct {
	List func() ([]net.Addr, error) // net.InterfaceAddrs; tests replace it

	mu      sync.Mutex
	set     map[netip.Addr]bool
	fetched time.Time
}

// contains reports whether a is one of this host's addresses. When the list
// cannot be read it keeps the last one it had.
func (h *HostAddrs) Contains(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.set == nil || time.Since(h.fetched) > HostAddrTTL {
		if as, err := h.List(); err == nil || h.set == nil {
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
