//go:build linux

package podnet

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

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
	add(out, loopback(true))
	add(out, nftexpr.CtReply())
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
