package owner

import (
	"net/netip"
	"slices"
)

// The imbalance Release acts on: the holder has at least RebalanceMin more
// IPs than the IP's rendezvous winner, and more than RebalanceFactorNum /
// RebalanceFactorDen times as many. Both, so that a small cluster with a
// few IPs (3 against 1 is 3×) and a large one with many (1,010 against
// 1,000 is 10 more) are left alone: each move breaks connections.
const (
	RebalanceMin       = 4
	RebalanceFactorNum = 3
	RebalanceFactorDen = 2
)

// Release returns the one IP that self should give up to even out the
// load, if any: among the IPs self announces (held) whose rendezvous
// winner over their candidates is another node with a load far enough
// below self's, the one whose winner has the least, the smallest IP on a
// tie. load says how many IPs a node announces, by its claim record.
//
// The caller withdraws the IP and publishes its record; the winner, which
// then sees no claimant, takes it over. Call it at most once per
// rebalance interval, so that moves stay rare and one at a time.
func Release(self string, held []netip.Addr, candidates func(netip.Addr) []string, load func(node string) int) (netip.Addr, bool) {
	mine := load(self)
	var (
		best     netip.Addr
		bestLoad int
		found    bool
	)
	sorted := slices.Clone(held)
	slices.SortFunc(sorted, netip.Addr.Compare)
	for _, ip := range sorted {
		w := Pick(ip, candidates(ip))
		if w == "" || w == self {
			continue
		}
		l := load(w)
		if mine-l < RebalanceMin || mine*RebalanceFactorDen <= l*RebalanceFactorNum {
			continue
		}
		if !found || l < bestLoad {
			best, bestLoad, found = ip, l, true
		}
	}
	return best, found
}
