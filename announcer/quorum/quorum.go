// Package quorum decides whether an announcer may claim layer 2 IPs at all:
// the split-brain guard.
//
// Every announcer computes the owner of each IP from its own view of the
// live announcers (package owner). A node that cannot gossip (a firewall on
// port 7946, a wrong memberlist key, a cable that carries ARP but not its
// peers' packets) sees every other node die, computes itself as the owner
// of everything, and answers ARP for IPs the others still serve: two MACs
// for one IP, for as long as the fault lasts. The guard makes such a node
// fall silent instead.
//
// # The rule
//
// The voters are the announcers the Kubernetes API expects: every node
// with an announcer Pod (or every Node, when the announcer does not run as
// a DaemonSet), minus those that are missing from this node's member view
// and known to be gone. Known gone means the API says so (the Node is not
// Ready, the announcer Pod is not Ready or is being deleted) or the member
// left the memberlist cluster on purpose (a SIGTERM handover). A missing
// voter that is not known gone may be alive on the other side of a
// partition, so it counts against this node.
//
// A node may claim IPs (keep announcing them, take over more) only while
// the live voters in its view, itself included, are a majority of the
// voters. In a tie (exactly half) the half holding the voter with the
// smallest name wins, so an even split still has one serving side and
// never two. Two disjoint sides that agree on the voters can never both
// hold a majority, or both hold the smallest name.
//
// A majority that needs other members also needs recent contact with
// them: an acknowledged probe or a probe received within the contact
// window (membership.ContactWindow: 200 ms, confirmed 50 ms later). An
// isolated node's view still shows its peers alive until it declares them
// dead one probe at a time, and with many peers the first declarations
// leave a stale majority. But it hears nothing: it falls silent 250–300 ms
// after the cut, as the others can at most just be declaring it dead (a
// probe round of 100 ms plus the 200 ms suspicion timeout) and before they
// take over its IPs, and before it could declare any of them dead itself. A healthy node hears from its
// peers every 50 ms or so and is never held back. A node that is a
// majority on its own (a cluster of one, or the smaller name of two) needs
// no contact.
//
// A minority of two or more nodes cut off together keeps contact among
// itself. Such a partition is rare on one layer 2 segment (it would cut
// clients off as well), and it is caught only as the minority declares the
// majority dead: between its first declaration and the one that loses it
// the majority (one probe round each, a few hundred milliseconds), it may
// take over IPs that the majority also serves. memberlist does not expose
// its suspicion state safely, which would close that window.
//
// # Small clusters
//
//   - One node: it is its own majority and always claims.
//   - Two nodes: a dead peer and a partition look the same from either
//     side, so only one side may serve alone. The node with the smaller
//     name keeps serving, and takes over at once when the other fails.
//     When the smaller one fails, the other falls silent (it cannot tell
//     the failure from a partition) until the peer is known gone: it left
//     on purpose (SIGTERM: at once), its announcer Pod is not Ready (the
//     kubelet reports a crashed container within a second or two) or its
//     Node is not Ready (node-monitor-grace-period, 40 s by default, after
//     a node crash). Then it serves everything. Until then the cluster's
//     layer 2 IPs are not answered: the price of never answering twice.
//   - Three or more: a single failure leaves a majority, which takes over
//     within the usual failure detection time. A minority survivor waits
//     for the API to confirm that the others are gone.
//
// The guard adds no delay to a failover that a majority sees: the verdict
// is computed in the same pass that the member change triggers.
//
// The package is pure: it takes a snapshot and returns a verdict, so that
// tests drive it without sockets or clocks.
package quorum

import (
	"fmt"
	"slices"
)

// Input is what one decision needs.
type Input struct {
	// Self is this node's name.
	Self string
	// Expected are the announcers the API expects to run. Duplicates are
	// harmless.
	Expected []string
	// Members are the live members in this node's view (alive or
	// suspected, not yet declared dead), itself included.
	Members map[string]bool
	// Gone says why an expected member is known not to be running an
	// announcer that answers ("" if it is not known gone). It is asked only
	// about members missing from Members: a live member always counts.
	// Nil means nothing is known gone.
	Gone func(name string) string
	// Contact says whether this node heard from another member within the
	// contact window.
	Contact bool
}

// Verdict is what this node may do.
type Verdict struct {
	// Claim means it may announce the IPs it owns: keep those it
	// announces and take over others.
	Claim bool
	// Voters and Live count the voters and those of them in the member
	// view.
	Voters, Live int
	// Reason says why Claim is false, for logs.
	Reason string
}

// Decide applies the rule of the package doc.
func Decide(in Input) Verdict {
	var voters []string
	seen := map[string]bool{}
	for _, e := range in.Expected {
		if seen[e] {
			continue
		}
		seen[e] = true
		if in.Members[e] || in.Gone == nil || in.Gone(e) == "" {
			voters = append(voters, e)
		}
	}
	slices.Sort(voters)
	v := Verdict{Voters: len(voters)}
	if !slices.Contains(voters, in.Self) {
		v.Reason = "the API lists no announcer on this node"
		return v
	}
	smallest := voters[0]
	for _, n := range voters {
		if in.Members[n] {
			v.Live++
		}
	}
	// Can this node claim with nobody else, so that contact with the
	// others does not matter?
	alone := majority(1, len(voters), smallest == in.Self)
	switch {
	case !majority(v.Live, len(voters), in.Members[smallest]):
		v.Reason = fmt.Sprintf("only %d of %d announcers are live members", v.Live, len(voters))
	case !alone && !in.Contact:
		v.Reason = "no contact with any other announcer within the contact window"
	default:
		v.Claim = true
	}
	return v
}

// majority says whether have of total voters decide: more than half, or
// exactly half including the voter with the smallest name.
func majority(have, total int, withSmallest bool) bool {
	return 2*have > total || 2*have == total && withSmallest
}
