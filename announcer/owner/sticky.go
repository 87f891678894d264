package owner

import (
	"net/netip"
)

// Claims tells what this node knows of the other nodes' claims.
type Claims interface {
	// Claims says whether node claims ip, by the record this node holds,
	// and whether that record is known (this node holds one for the
	// node's current process).
	Claims(node string, ip netip.Addr) (claims, known bool)
	// Holds says whether node holds ip without announcing it, by the
	// record this node holds (see the package doc, "Held claims").
	Holds(node string, ip netip.Addr) bool
}

// Input is one IP's decision.
type Input struct {
	// IP is the address.
	IP netip.Addr
	// Self is this node's name.
	Self string
	// Candidates are the live nodes that may announce IP, this node
	// included if it may. Duplicates and order do not matter.
	Candidates []string
	// Announced says whether this node announces IP now: its own claim,
	// which it always knows.
	Announced bool
	// Held says whether this node held IP at its last pass without
	// announcing it: its own held claim.
	Held bool
	// Others are the other nodes' claims. Nil means no records at all:
	// plain rendezvous hashing, and no node waits for records.
	Others Claims
}

// Outcome is the decision for one IP.
type Outcome struct {
	// Owner is the node that announces IP, "" when there are no
	// candidates.
	Owner string
	// Sticky says the owner holds IP by its claim, where Pick over the
	// candidates would choose another node: a failback avoided.
	Sticky bool
	// Wait says this node owns IP but must not start announcing it yet:
	// it does not hold the current claim record of every other
	// candidate, one of which may hold IP.
	Wait bool
}

// Decide applies the rule of the package doc: claimants first, the
// highest score among them; else the holders of held claims, the highest
// score among them; rendezvous over all candidates when there is neither.
func Decide(in Input) Outcome {
	if in.Others == nil {
		// Not even this node's own claim counts: a node that kept its IPs
		// by claim while the others pick by rendezvous would answer
		// alongside the winner.
		return Outcome{Owner: Pick(in.IP, in.Candidates)}
	}
	var claimants, holders []string
	unknown := false
	for _, c := range in.Candidates {
		var claims, holds, known bool
		switch {
		case c == in.Self:
			claims, holds, known = in.Announced, in.Held, true
		default:
			claims, known = in.Others.Claims(c, in.IP)
			holds = known && in.Others.Holds(c, in.IP)
		}
		if !known {
			unknown = true
			continue
		}
		switch {
		case claims:
			claimants = append(claimants, c)
		case holds:
			holders = append(holders, c)
		}
	}
	if len(claimants) == 0 {
		claimants = holders
	}
	var out Outcome
	if len(claimants) > 0 {
		out.Owner = Pick(in.IP, claimants)
		out.Sticky = out.Owner != Pick(in.IP, in.Candidates)
	} else {
		out.Owner = Pick(in.IP, in.Candidates)
	}
	// Keeping never waits; taking over does, while a candidate's claims
	// are unknown.
	out.Wait = out.Owner == in.Self && !in.Announced && unknown
	return out
}
