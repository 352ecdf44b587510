// Package netns gives each of Glovebox's containers its network: a network
// namespace joined to the host by one veth pair of its own, numbered from a
// /30 of the configured subnet, and the nftables firewall that lets the
// container reach the egress proxy on its host end and nothing else.
//
// It imports no other Glovebox package (its tests share a lock with
// isolate's, isolate/internal/testlock): the containerd runtime in package
// isolate calls it (through isolate.Networker) with the path of a task's
// network namespace and gets a *Link back.
package netns
