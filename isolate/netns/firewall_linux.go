//go:build linux

package netns

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/glovebox/glovebox/isolate/internal/nftexpr"
)

// The firewall is one nftables table of family inet, "glovebox":
//
//	table inet glovebox {
//		set egress { type ifname . ipv4_addr . ipv4_addr }  # host end . container . host end address
//		chain input {
//			type filter hook input priority filter; policy accept;
//			iifname "gbh*" ct state established,related accept
//			iifname "gbh*" meta nfproto ipv4 tcp dport EGRESS iifname . ip saddr . ip daddr @egress accept
//			iifname "gbh*" counter drop
//			iifname != "lo" tcp dport EGRESS counter drop
//		}
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			iifname "gbh*" counter drop
//			oifname "gbh*" counter drop
//		}
//		chain output {
//			type filter hook output priority filter; policy accept;
//			oifname "gbh*" ct state established,related accept
//			oifname "gbh*" counter drop
//		}
//	}
//
// A container reaches the egress port on its own link's host end and nothing
// else: not another port, not another container, nothing routed. The set's
// key holds the interface as well as both addresses, so a packet counts only
// on the link it was numbered for. The egress proxy listens on every address
// of the host; the last input rule keeps it from being an open proxy to the
// LAN (local connections arrive on lo). The host opens no connection into a
// container: DevTools is dialled from inside the container's namespace.
//
// A drop in any table is final, so other tables cannot open what this one
// closes; but a host firewall that drops the egress port on input also cuts
// the containers off.

const egressSet = "egress"

func fwTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

func fwSet() *nftables.Set {
	return &nftables.Set{
		Table:         fwTable(),
		Name:          egressSet,
		KeyType:       nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr, nftables.TypeIPAddr),
		Concatenation: true,
	}
}

// Registers for the set lookup: the 16-byte interface name takes the first
// four 32-bit registers (NFT_REG_1 is NFT_REG32_00 to 03), the two addresses
// the next two, as nft lays out a concatenation.
const (
	regIfname = unix.NFT_REG_1
	regSaddr  = unix.NFT_REG32_04
	regDaddr  = unix.NFT_REG32_05
)

// ifname pads name to IFNAMSIZ, as the kernel loads it into a register.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// ifMatch matches the input (or, if out, the output) interface: a prefix of
// its name when prefix, or the whole name.
func ifMatch(out bool, op expr.CmpOp, name string, prefix bool) []expr.Any {
	key := expr.MetaKeyIIFNAME
	if out {
		key = expr.MetaKeyOIFNAME
	}
	data := ifname(name)
	if prefix {
		data = []byte(name)
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// knownPair matches an IPv4 packet whose input interface, source and
// destination are an element of set.
func knownPair(set *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regIfname},
		&expr.Payload{DestRegister: regSaddr, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: regDaddr, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: regIfname, SetName: set.Name, SetID: set.ID},
	}
}

func accept() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }
func drop() []expr.Any   { return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}} }

func rule(parts ...[]expr.Any) []expr.Any {
	var r []expr.Any
	for _, p := range parts {
		r = append(r, p...)
	}
	return r
}

// createFirewall replaces the table, whatever is in it, by a fresh one for
// egressPort, in one transaction: there is no moment without a firewall.
func createFirewall(egressPort int) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("create firewall: %w", err)
	}
	t := fwTable()
	// Adding an existing table is no error; deleting a missing one is, so
	// the add makes the delete safe.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	set := fwSet()
	if err := c.AddSet(set, nil); err != nil {
		return fmt.Errorf("create firewall: set %s: %w", set.Name, err)
	}
	accepting := nftables.ChainPolicyAccept
	chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{
			Name:     name,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  hook,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &accepting,
		})
	}
	add := func(ch *nftables.Chain, exprs []expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	fromUs := ifMatch(false, expr.CmpOpEq, hostIfPrefix, true)
	toUs := ifMatch(true, expr.CmpOpEq, hostIfPrefix, true)

	in := chain("input", nftables.ChainHookInput)
	add(in, rule(fromUs, nftexpr.CtReply(), accept()))
	add(in, rule(fromUs, nftexpr.TCPDport(egressPort), knownPair(set), accept()))
	add(in, rule(fromUs, drop()))
	add(in, rule(ifMatch(false, expr.CmpOpNeq, "lo", false), nftexpr.TCPDport(egressPort), drop()))

	fwd := chain("forward", nftables.ChainHookForward)
	add(fwd, rule(fromUs, drop()))
	add(fwd, rule(toUs, drop()))

	out := chain("output", nftables.ChainHookOutput)
	add(out, rule(toUs, nftexpr.CtReply(), accept()))
	add(out, rule(toUs, drop()))

	if err := c.Flush(); err != nil {
		return fmt.Errorf("create firewall: nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// deleteFirewall deletes the table if there is one.
func deleteFirewall() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("delete firewall: %w", err)
	}
	t := fwTable()
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete firewall: nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// firewallExists reports whether the table is in the ruleset.
func firewallExists() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	_, err = c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil, err
}

// fwElement is the set element that lets container ctr reach host on link
// hostIf; id labels it.
func fwElement(hostIf string, ctr, host netip.Addr, id string) nftables.SetElement {
	key := ifname(hostIf)
	key = append(key, ctr.AsSlice()...)
	key = append(key, host.AsSlice()...)
	// The kernel keeps at most 256 bytes of user data per element, of
	// which the comment is one attribute.
	if len(id) > 128 {
		id = id[:128]
	}
	return nftables.SetElement{Key: key, Comment: id}
}

// allowEgress lets container ctr reach the egress port on host over hostIf.
func allowEgress(hostIf string, ctr, host netip.Addr, id string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("allow egress for %s: %w", hostIf, err)
	}
	if err := c.SetAddElements(fwSet(), []nftables.SetElement{fwElement(hostIf, ctr, host, id)}); err != nil {
		return fmt.Errorf("allow egress for %s: %w", hostIf, err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("allow egress for %s: %w", hostIf, err)
	}
	return nil
}

// revokeEgress undoes allowEgress. An element or table already gone is no
// error.
func revokeEgress(hostIf string, ctr, host netip.Addr) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("revoke egress for %s: %w", hostIf, err)
	}
	if err := c.SetDeleteElements(fwSet(), []nftables.SetElement{fwElement(hostIf, ctr, host, "")}); err != nil {
		return fmt.Errorf("revoke egress for %s: %w", hostIf, err)
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("revoke egress for %s: %w", hostIf, err)
	}
	return nil
}
