// Package agreement decides, for a layer 2 pool, which live announcers
// share this node's definition of it, and whether they are the ones who
// may announce its IPs: the rule that keeps two config versions from both
// claiming one IP.
//
// Each announcer reads its own copy of the cloud-config (and of the CCM's
// retained addresses), and edits reach the nodes minutes apart in the
// worst case. Every node advertises, in its memberlist metadata (package
// nodemeta), a fingerprint of each layer 2 pool definition it announces
// by: the pool's name, protocol, addresses and node-selectors, everything
// that decides which nodes are candidates for its IPs. (Interfaces are left
// out: they say where a node answers, not whether it may.)
//
// # The rule
//
// For an IP, a node looks up the pool that covers it and that pool's
// fingerprint. The group is the live members that advertise the same
// fingerprint: they hold the identical definition, so they compute the
// identical candidates and the same owner. The group decides, and its
// members announce the pool's IPs, only when it holds a majority of the
// live members, or exactly half of them including the member with the
// smallest name. Members of other groups (an older or newer version of the
// pool, or no such pool at all) neither announce the IP nor count as
// candidates.
//
// A member that holds a different definition covering the same IP belongs
// to a different group, and two different groups cannot both hold a
// majority of the same live members, or both hold the smallest name: no IP
// has owners from two config versions at once. This needs no ordering of
// versions and no coordinator, and it is local to a pool: an edit of one
// pool leaves every other pool's IPs where they are.
//
// While an edit rolls out, the IPs of the changed pool are served by the
// group that has the majority; they move to the new group's owners once
// the new definition has reached more than half of the nodes. A group that
// has just won the majority in this node's view waits a short settle time
// before it takes anything over (the controller's job), so that the losing
// group, which hears of the change one gossip round later, has withdrawn.
//
// Members without metadata run a version from before this rule; they are
// taken to share every definition, which is what they assume of the
// others. This only matters during an upgrade of the announcer itself.
package agreement

import (
	"hash/fnv"
	"slices"
	"strings"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/nodemeta"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Fingerprint identifies a pool's definition for the rule: name, protocol,
// addresses (as parsed: sorted and merged ranges) and node-selectors (as
// compiled, in any order).
func Fingerprint(p *config.Pool) uint32 {
	h := fnv.New32a()
	var b strings.Builder
	b.WriteString(p.Name)
	b.WriteByte(0)
	b.WriteString(string(p.Protocol))
	b.WriteByte(0)
	for _, r := range p.Ranges {
		b.WriteString(r.From().String())
		b.WriteByte('-')
		b.WriteString(r.To().String())
		b.WriteByte(',')
	}
	b.WriteByte(0)
	var sels []string
	for _, s := range p.NodeSelector {
		sels = append(sels, s.String())
	}
	slices.Sort(sels)
	b.WriteString(strings.Join(sels, "\x01"))
	h.Write([]byte(b.String()))
	return h.Sum32()
}

// View is this node's view of the live members, itself included, and
// their metadata; nil metadata is a member from before the rule.
type View map[string]*nodemeta.Meta

// Group is the outcome for one pool definition.
type Group struct {
	// Decides means the group's members announce the pool's IPs.
	Decides bool
	// Servable are the group's members that can serve the pool now: the
	// candidates, before eligibility.
	Servable map[string]bool
	// Size is the number of the group's members, servable or not, and
	// Live the number of live members.
	Size, Live int
}

// Group applies the rule of the package doc to the pool definition fp.
func (v View) Group(fp uint32) Group {
	g := Group{Servable: map[string]bool{}, Live: len(v)}
	smallest, smallestIn := "", false
	for name, m := range v {
		in, servable := true, true
		if m != nil {
			in, servable = m.Has(fp)
		}
		if smallest == "" || name < smallest {
			smallest, smallestIn = name, in
		}
		if !in {
			continue
		}
		g.Size++
		if servable {
			g.Servable[name] = true
		}
	}
	g.Decides = 2*g.Size > g.Live || 2*g.Size == g.Live && smallestIn && g.Size > 0
	return g
}
