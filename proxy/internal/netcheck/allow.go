package netcheck

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/glovebox/glovebox/proxy/policy"
)

// allowKey is one allow_internal entry; port "" allows every port.
type AllowKey struct{ Host, Port string }

// parseAllowInternal reads "host" or "host:port" ("[v6]:port", bare v6 too).
func ParseAllow(s string) (AllowKey, error) {
	bad := fmt.Errorf("%q: want host or host:port", s)
	if s == "" || strings.ContainsAny(s, "/@?# \t") {
		return AllowKey{}, bad
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if h == "" || err != nil || n == 0 {
			return AllowKey{}, bad
		}
		return AllowKey{Host: CanonHost(h), Port: strconv.Itoa(int(n))}, nil
	}
	h := strings.Trim(s, "[]")
	if strings.Contains(h, ":") {
		if _, err := netip.ParseAddr(h); err != nil {
			return AllowKey{}, bad
		}
	}
	return AllowKey{Host: CanonHost(h)}, nil
}

// canonHost is a host in the form allow_internal is matched in: lower case,
// no brackets or trailing dot, IP addresses in their canonical spelling.
func CanonHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	if a, ok := policy.ParseLegacyIPv4(h); ok {
		return a.String() // as egressTarget reads it
	}
	return h
}

// validHostname reports whether name (no trailing dot) is a DNS name of
// letters, digits, "-" and "_": labels of 1–63, 253 in all.
func ValidHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
