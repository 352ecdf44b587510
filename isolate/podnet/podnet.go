// Package podnet locks a browser pod's network namespace from inside, so
// that the pod is safe whatever the cluster's CNI does with
// NetworkPolicies: the Kubernetes runtime's init container (`glovebox
// pod-netlock`, with CAP_NET_ADMIN and nothing else) calls Lock before the
// browser and its relay start, as service meshes' init containers do.
//
// The rules, one nftables table of family inet, "glovebox_pod":
//
//	chain input  { type filter hook input priority filter; policy drop;
//		iif "lo" accept
//		ct state established,related accept
//		tcp dport RELAY accept
//		meta nfproto ipv6 icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept }
//	chain output { type filter hook output priority filter; policy drop;
//		oif "lo" accept
//		ct state established,related accept
//		meta skuid RELAYUID tcp dport EGRESS accept
//		meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept }
//
// So the browser's user reaches loopback only (the relay's proxy port and
// its own DevTools), the relay's user may open TCP connections to the egress
// port only (it connects only where its owner told it), no name is resolved
// (no DNS leaves the pod), and from outside only the relay's TLS port
// answers; IPv4 and IPv6 alike, the kernel's neighbour discovery on the
// link let through so that IPv6 addresses resolve. Loopback is open to
// every protocol: the browser's user can send UDP to the pod's own
// loopback (nothing listens there on UDP), but no UDP leaves the pod.
package podnet

import (
	"errors"
	"fmt"
)

// TableName is the pod's nftables table.
const TableName = "glovebox_pod"

// Rules says what Lock allows.
type Rules struct {
	// RelayPort is the relay's TLS port, the only one open from outside.
	RelayPort int
	// RelayUID is the relay's user, the only one that may connect out.
	RelayUID int
	// EgressPort is the only port it may connect to.
	EgressPort int
}

// Validate reports what is wrong with r.
func (r Rules) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    int
	}{{"relay port", r.RelayPort}, {"egress port", r.EgressPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: want 1 to 65535", p.name, p.v))
		}
	}
	if r.RelayUID <= 0 {
		errs = append(errs, fmt.Errorf("relay uid %d: want a user other than root", r.RelayUID))
	}
	return errors.Join(errs...)
}
