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
// A node may go on announcing what it announces (Keep) while the live
// voters in its view, itself included, are a majority of the voters. It may
// start announcing more (TakeOver: a failover, a new Service) only while
// the voters that are alive and not suspected are a majority. In a tie
// (exactly half) the half holding the voter with the smallest name wins,
// so an even split still has one serving side and never two. Two disjoint
// sides that agree on the voters can never both hold a majority, or both
// hold the smallest name.
//
// Keep counts suspects and TakeOver does not because an isolated node
// loses its peers one probe at a time: the first one it declares dead is
// declared some 200 ms after it was suspected, and by then the others are
// suspected too, so the isolated node never takes over the first one's IPs
// while its stale view still shows a majority. A healthy node, for its
// part, withdraws nothing because a peer is briefly suspected under load.
//
// A majority that needs other members also needs recent contact with
// them: an acknowledged probe or a probe received within the contact
// window (membership.ContactWindow, shorter than the 300 ms in which the
// others can declare a node dead). A node whose gossip is cut therefore
// falls silent before the others take over its IPs, whatever the cluster
// size, while a healthy node, which hears from its peers every 50 ms or
// so, is never held back. A node that is a majority on its own (a cluster
// of one, or the smallest name of two) needs no contact.
//
// # Small clusters
//
//   - One node: it is its own majority and always claims.
//   - Two nodes: a dead peer and a partition look the same from either
//     side, so only one side may serve alone. The node with the smaller
//     name keeps serving, and takes over at once when the other fails.
//     The other takes over from it only once the peer is known gone: it
//     left on purpose (SIGTERM: at once), its announcer Pod is not Ready
//     (the kubelet reports a crashed container within a second or two) or
//     its Node is not Ready (node-monitor-grace-period, 40 s by default,
//     after a node crash). Until then the IPs of the smaller node are not
//     answered: the price of never answering twice.
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

// Member is one live member in this node's view.
type Member struct {
	// Suspect means failure detection suspects the member; it is still
	// live until declared dead.
	Suspect bool
}

// Input is what one decision needs.
type Input struct {
	// Self is this node's name.
	Self string
	// Expected are the announcers the API expects to run. Duplicates are
	// harmless.
	Expected []string
	// Members are the live members in this node's view, itself included,
	// by name.
	Members map[string]Member
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
	// Keep means it may go on announcing the IPs it owns and announces.
	Keep bool
	// TakeOver means it may start announcing IPs it owns but does not
	// announce yet.
	TakeOver bool
	// Voters, Live and Alive count the voters, those of them in the member
	// view, and those of them alive and not suspected.
	Voters, Live, Alive int
	// Reason says why Keep or TakeOver is false, for logs and metrics.
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
		if _, live := in.Members[e]; live || in.Gone == nil || in.Gone(e) == "" {
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
	smallestLive, smallestAlive := false, false
	for _, n := range voters {
		m, live := in.Members[n]
		if !live {
			continue
		}
		v.Live++
		if n == smallest {
			smallestLive = true
		}
		if !m.Suspect {
			v.Alive++
			if n == smallest {
				smallestAlive = true
			}
		}
	}
	// Can this node claim with nobody else, so that contact with the
	// others does not matter?
	alone := majority(1, len(voters), smallest == in.Self)
	contact := alone || in.Contact
	v.Keep = majority(v.Live, len(voters), smallestLive) && contact
	v.TakeOver = majority(v.Alive, len(voters), smallestAlive) && contact
	switch {
	case !contact:
		v.Reason = "no contact with any other announcer within the contact window"
	case !v.Keep:
		v.Reason = fmt.Sprintf("only %d of %d announcers are live members", v.Live, len(voters))
	case !v.TakeOver:
		v.Reason = fmt.Sprintf("only %d of %d announcers are alive and not suspected", v.Alive, len(voters))
	}
	return v
}

// majority says whether have of total voters decide: more than half, or
// exactly half including the voter with the smallest name.
func majority(have, total int, withSmallest bool) bool {
	return 2*have > total || 2*have == total && withSmallest
}
