// Package owner chooses which node announces a layer 2 IP.
//
// Every announcer computes the owner of every IP on its own, from the same
// inputs: the IP and the set of live, eligible node names. No coordination
// is needed beyond agreeing on those inputs, which membership gossip and
// the Kubernetes API provide; after a partition heals, the views merge and
// every node arrives at the same owner again.
//
// The choice is rendezvous (highest-random-weight) hashing: each node gets
// a pseudo-random score for the IP and the highest score wins. This spreads
// IPs evenly across nodes and, when a node leaves, moves only the IPs that
// node owned (everyone else's scores are unchanged); when a node joins it
// takes over only the IPs for which it now has the highest score.
//
// The score function is part of the protocol between announcers: two
// versions running side by side during a rolling update must pick the same
// owner. Never change it.
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
