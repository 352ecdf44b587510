package netcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// DialEach connects to the first of addrs (port port) that answers,
// splitting ctx's time among them, at least 2 s each. It never resolves
// anything: the addresses are those that were checked. dial makes one
// connection to an address:port, direct or through a parent proxy.
func DialEach(ctx context.Context, addrs []netip.Addr, port uint16, dial func(ctx context.Context, target string) (net.Conn, error)) (net.Conn, error) {
	var errs []error
	for i, a := range addrs {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if left := len(addrs) - i; left > 1 {
			if dl, ok := ctx.Deadline(); ok {
				actx, cancel = context.WithTimeout(ctx, max(time.Until(dl)/time.Duration(left), 2*time.Second))
			}
		}
		c, err := dial(actx, netip.AddrPortFrom(a, port).String())
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// ContainsAddr reports whether one of prefixes holds a (unmapped, without
// a zone).
func ContainsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve looks host up once with resolve, which is what is then checked
// and dialled: an error, or no address, is a failure naming host.
func Resolve(ctx context.Context, host string, resolve func(context.Context, string) ([]netip.Addr, error)) ([]netip.Addr, error) {
	addrs, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}
