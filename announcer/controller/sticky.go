package controller

import (
	"net/netip"
	"slices"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
)

// RebalanceInterval is how often, with sticky owners, this node may give
// up one IP to even out the load (owner.Release): slow on purpose, as each
// release breaks that IP's connections once. It counts from the start, so
// a node never releases anything right after it or a peer came back.
const RebalanceInterval = 30 * time.Second

// claimer is a Members that carries the nodes' claim records (package
// membership): which layer 2 IPs each announces.
type claimer interface {
	Claims() owner.Snapshot
}

// SetStickyOwners makes a layer 2 IP stay with the node that announces it
// while that node remains a candidate, instead of going back to its
// rendezvous winner when that one returns (package owner: no forced
// failback). It needs a Members that carries claim records, and every
// announcer of the cluster must run with the same setting: a node that
// picks by rendezvous answers alongside a holder that keeps by claim. Call
// it before Run.
func (c *Controller) SetStickyOwners(on bool) {
	c.guard.sticky = on
}

// heldClaimer is a layer 2 announcer that publishes, with its next
// announcements, the IPs this node holds without announcing them.
type heldClaimer interface {
	SetHeldClaims(ips []netip.Addr)
}

// publishHeld hands a, when it publishes claims, the IPs of decisions
// that this node holds back but keeps its claim to, and returns them for
// the next pass's snapshot.
func publishHeld(a announcer.Announcer, decisions map[netip.Addr]*ipDecision) map[netip.Addr]bool {
	held := map[netip.Addr]bool{}
	var ips []netip.Addr
	for ip, d := range decisions {
		if d.holdsClaim {
			held[ip] = true
			ips = append(ips, ip)
		}
	}
	if hc, ok := a.(heldClaimer); ok {
		hc.SetHeldClaims(ips)
	}
	return held
}

// rebalance withdraws from mine, at most, the one IP that owner.Release
// picks, among those this node announced before the pass, when the
// records of every candidate of those IPs are known. It returns the IP,
// or an invalid one.
func rebalance(s snapshot, decisions map[netip.Addr]*ipDecision, mine map[netip.Addr]announcer.Announcement) netip.Addr {
	records, ok := s.claims.(owner.Snapshot)
	if !ok {
		return netip.Addr{}
	}
	var held []netip.Addr
	for ip := range mine {
		if _, before := s.announced[ip]; !before {
			continue
		}
		known := true
		for _, n := range decisions[ip].candidates {
			if _, k := records.Load(n); n != s.self && !k {
				known = false
			}
		}
		if known {
			held = append(held, ip)
		}
	}
	if len(held) == 0 {
		return netip.Addr{}
	}
	slices.SortFunc(held, netip.Addr.Compare)
	ip, ok := owner.Release(s.self, held,
		func(ip netip.Addr) []string { return decisions[ip].candidates },
		func(n string) int {
			if n == s.self {
				return len(mine)
			}
			l, _ := records.Load(n)
			return l
		})
	if !ok {
		return netip.Addr{}
	}
	delete(mine, ip)
	decisions[ip].held = heldRebalance
	return ip
}
