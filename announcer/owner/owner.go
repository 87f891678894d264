package owner

import (
	"net/netip"
)

// Pick returns the node among candidates that should announce ip, or ""
// if there are no candidates. Duplicate names are harmless. The result does
// not depend on the order of candidates.
func Pick(ip netip.Addr, candidates []string) string {
	ipHash := hashIP(ip)
	var (
		best      string
		bestScore uint64
	)
	for _, n := range candidates {
		s := score(hashString(n), ipHash)
		// Ties between different names are astronomically rare, but the
		// result must still be the same on every node, so break them by
		// name.
		if best == "" || s > bestScore || (s == bestScore && n < best) {
			best, bestScore = n, s
		}
	}
	return best
}

// score combines a node's hash with an IP's hash. The mixer makes every
// bit of the score depend on every bit of both inputs, so the winner is
// uncorrelated across nearby IPs and similar node names.
func score(nodeHash, ipHash uint64) uint64 {
	return mix(nodeHash ^ ipHash)
}

// FNV-1a, 64 bit: small, stable and in every language, so the choice can be
// reproduced by hand (see the tests) and by tools outside this binary.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// hashIP hashes the 16-byte form, so an IPv4 address and its IPv4-mapped
// IPv6 form get the same owner, and any zone is ignored.
func hashIP(ip netip.Addr) uint64 {
	b := ip.Unmap().As16()
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

// mix is MurmurHash3's 64-bit finalizer. FNV alone has weak high bits for
// short inputs that differ only in their last byte, which would make
// consecutive IPs favour the same node.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
