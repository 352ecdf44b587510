//go:build linux

package podnet

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/glovebox/glovebox/isolate/internal/nftexpr"
)

// Lock replaces the table in the current network namespace by the rules,
// in one transaction.
func Lock(r Rules) error { return lock(r) }

// lock is Lock, in the network namespace of the given options'
// (nftables.WithNetNSFd) or the current one.
func lock(r Rules, opts ...nftables.ConnOption) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("podnet: %w", err)
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("podnet: nftables: %w", err)
	}
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	dropping := nftables.ChainPolicyDrop
	chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &dropping})
	}
	in, out := chain("input", nftables.ChainHookInput), chain("output", nftables.ChainHookOutput)
	add := func(ch *nftables.Chain, parts ...[]expr.Any) {
		var e []expr.Any
		for _, p := range parts {
			e = append(e, p...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(e, &expr.Verdict{Kind: expr.VerdictAccept})})
	}
	add(in, loopback(false))
	add(in, nftexpr.CtReply())
	add(in, nftexpr.TCPDport(r.RelayPort))
	add(in, neighbourDiscovery(ndRouterAdvert))
	add(out, loopback(true))
	add(out, nftexpr.CtReply())
	add(out, neighbourDiscovery(ndNeighbourSolicit))
	add(out, []expr.Any{
		&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(uint32(r.RelayUID))},
	}, nftexpr.TCPDport(r.EgressPort))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("podnet: nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// loopback matches the loopback interface, on input or output.
func loopback(out bool) []expr.Any {
	key := expr.MetaKeyIIF
	if out {
		key = expr.MetaKeyOIF
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		// The loopback device is index 1 in every network namespace.
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)},
	}
}

// The ICMPv6 types of neighbour discovery (RFC 4861) the lock lets
// through: router advertisements (in only), then neighbour solicitations
// and advertisements, in both directions.
const (
	ndRouterAdvert     = 134
	ndNeighbourSolicit = 135
	ndNeighbourAdvert  = 136
)

// neighbourDiscovery matches the ICMPv6 neighbour discovery messages from
// type from to neighbour advertisement with a hop limit of 255, which only
// a sender on the link can give them (RFC 4861 7.1.1). The kernel sends
// them for no socket, so the uid rule never matches them, and conntrack
// does not count them as a connection's: without this rule no IPv6
// address on the link is ever resolved.
func neighbourDiscovery(from byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		// The IPv6 header's hop limit, its eighth byte.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{255}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{from}, ToData: []byte{ndNeighbourAdvert}},
	}
}
