package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/glovebox/glovebox/proxy/internal/netcheck"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/upstream"
)

// ErrLocalDestination reports an allowed request whose destination is on
// Glovebox's own host (loopback, this host's addresses, the containers'
// networks) or a cloud metadata service. Users' requests never go there
// unless upstream.allow_local names the destination, whatever policy says:
// behind them are the browsers' DevTools forwarders, the egress and admin
// ports and the host's own services (Squid's "http_access deny
// to_localhost").
var ErrLocalDestination = errors.New("destination is on the Glovebox host")

// ruleLocalDest is the rule of a request refused for its destination.
const ruleLocalDest = "local destination"

// localGuard decides whether an allowed request may go to a destination.
type localGuard struct {
	self      *netcheck.HostAddrs
	nets      []netip.Prefix // the containers' networks
	allow     map[netcheck.AllowKey]bool
	allowNets []netip.Prefix // allow_local's CIDR entries
	// resolve finds a name's addresses; tests replace it.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

func newLocalGuard(self *netcheck.HostAddrs, nets []netip.Prefix, allowLocal []string) (*localGuard, error) {
	g := &localGuard{self: self, nets: nets, allow: map[netcheck.AllowKey]bool{},
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}}
	for i, s := range allowLocal {
		if p, err := netip.ParsePrefix(s); err == nil {
			g.allowNets = append(g.allowNets, p.Masked())
			continue
		}
		k, err := netcheck.ParseAllow(s)
		if err != nil {
			return nil, fmt.Errorf("upstream.allow_local[%d]: %w", i, err)
		}
		g.allow[k] = true
	}
	return g, nil
}

// allowed reports whether upstream.allow_local names host (any port) or
// host:port, or host is an address in one of its prefixes.
func (g *localGuard) allowed(host string, port string) bool {
	name := netcheck.CanonHost(policy.CanonIPHost(policy.NormHost(host)))
	if g.allow[netcheck.AllowKey{Host: name}] || g.allow[netcheck.AllowKey{Host: name, Port: port}] {
		return true
	}
	return g.allowedAddr(name)
}

// allowedAddr reports whether the address a (a string) is in one of
// allow_local's prefixes.
func (g *localGuard) allowedAddr(a string) bool {
	ip, err := netip.ParseAddr(a)
	return err == nil && netcheck.ContainsAddr(g.allowNets, ip)
}

// reason says why a is a local destination, or "" when it is not one.
func (g *localGuard) reason(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if b := a.As16(); a.Is6() && netcheck.NAT64WellKnown.Contains(a) {
		a = netip.AddrFrom4([4]byte(b[12:16]))
	}
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified() || a.Is4() && a.As4()[0] == 0:
		return "unspecified (this host)"
	case a.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	}
	if netcheck.IsMetadata(a) { // the egress's list (netcheck.go)
		return "a cloud metadata service"
	}
	for _, p := range g.nets {
		if p.Contains(a) {
			return "the isolated browsers' network"
		}
	}
	if g.self.Contains(a) {
		return "an address of this host"
	}
	return ""
}

// checkLiteral refuses a destination written as a local address or a
// loopback name, before anything is resolved or sent. hostport is
// host:port, or a bare host (port 80 or 443 by scheme is not needed: a
// host-wide allow_local entry is what matches then).
func (g *localGuard) checkLiteral(host, port string) error {
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if g.allowed(h, port) {
		return nil
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback name", ErrLocalDestination, host)
	}
	if a, err := netip.ParseAddr(policy.CanonIPHost(h)); err == nil {
		if why := g.reason(a); why != "" {
			return fmt.Errorf("%w: %s is %s", ErrLocalDestination, a, why)
		}
	}
	return nil
}

// dial connects to addr (host:port) directly: it resolves the name once,
// refuses it if any address is local, and dials the addresses it checked,
// so that a name cannot resolve to a public address for the check and to
// loopback for the dial.
func (g *localGuard) dial(ctx context.Context, dial upstream.DialFunc, network, addr string) (net.Conn, error) {
	addrs, port, err := g.check(ctx, addr)
	if err != nil {
		return nil, err
	}
	return netcheck.DialEach(ctx, addrs, port, func(ctx context.Context, target string) (net.Conn, error) {
		return dial(ctx, network, target)
	})
}

// check resolves addr's host once (an address is itself) and refuses it if
// any of its addresses is local; it returns the checked addresses, which
// are what is then dialled.
func (g *localGuard) check(ctx context.Context, addr string) ([]netip.Addr, uint16, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("dial %s: bad port", addr)
	}
	if err := g.checkLiteral(host, port); err != nil {
		return nil, 0, err
	}
	allowed := g.allowed(host, port)
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(policy.CanonIPHost(policy.NormHost(host))); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = netcheck.Resolve(ctx, host, g.resolve); err != nil {
		return nil, 0, err
	}
	for _, a := range addrs {
		if why := g.reason(a); why != "" && !allowed && !g.allowedAddr(a.String()) {
			return nil, 0, fmt.Errorf("%w: %s resolves to %s, %s", ErrLocalDestination, host, a, why)
		}
	}
	return addrs, uint16(n), nil
}

// viaParent opens a tunnel to addr through the parent proxy. A name
// Glovebox resolves is checked and the parent is given the checked address
// (CONNECT ip:port), so that it cannot resolve the name to this host again;
// one Glovebox cannot resolve (a chain where only the parent has DNS) goes
// to the parent by name, for it to resolve and refuse by its own rules.
func (g *localGuard) viaParent(ctx context.Context, addr string, tunnel func(ctx context.Context, target string) (net.Conn, error)) (net.Conn, error) {
	addrs, port, err := g.check(ctx, addr)
	switch {
	case errors.Is(err, ErrLocalDestination):
		return nil, err
	case err != nil:
		return tunnel(ctx, addr)
	}
	return netcheck.DialEach(ctx, addrs, port, tunnel)
}

// localDestPage is the answer to a request refused for its destination.
func localDestPage(r *http.Request, err error) *http.Response {
	return errorPage(r, http.StatusForbidden, "Glovebox does not go there",
		"Glovebox does not forward requests to its own host or to cloud metadata services ("+err.Error()+
			"). If this destination is an application users need, an administrator can list it in upstream.allow_local.")
}
