package config

import (
	"fmt"
	"net/netip"

	"go4.org/netipx"
)

// specialRange is an address block that must never be a Service address:
// announcing it would capture traffic that belongs to every host (loopback,
// this-network, broadcast), to no host (multicast, reserved), or to the
// local link. The allocator hands out a pool's addresses from the lowest
// up, so a pool such as 0.0.0.0/0 would give out 0.0.0.0 first.
type specialRange struct {
	what, text string
	r          netipx.IPRange
}

func mustRange(what, s string) specialRange {
	return specialRange{what, s, netipx.MustParseIPRange(s)}
}

func mustPrefix(what, s string) specialRange {
	return specialRange{what, s, netipx.RangeOfPrefix(netip.MustParsePrefix(s))}
}

// specialRanges are from the IANA special-purpose address registries
// (RFC 6890 and its updates). Documentation, private, shared and
// benchmarking space are allowed: they are what labs and private networks
// use. A pool entry is checked against these in this order and the first
// overlap is reported.
var specialRanges = []specialRange{
	mustPrefix("this-network", "0.0.0.0/8"),
	mustPrefix("loopback", "127.0.0.0/8"),
	mustPrefix("link-local", "169.254.0.0/16"),
	mustPrefix("multicast", "224.0.0.0/4"),
	// 240.0.0.0/4 less its last address, so that each is named for what
	// it is.
	mustRange("reserved", "240.0.0.0-255.255.255.254"),
	mustPrefix("limited broadcast", "255.255.255.255/32"),
	mustPrefix("unspecified", "::/128"),
	mustPrefix("loopback", "::1/128"),
	mustPrefix("IPv4-mapped", "::ffff:0:0/96"),
	mustPrefix("link-local", "fe80::/10"),
	mustPrefix("multicast", "ff00::/8"),
}

// checkSpecial returns why r may not be in a pool, or "".
func checkSpecial(r netipx.IPRange) string {
	for _, s := range specialRanges {
		if r.Overlaps(s.r) {
			return fmt.Sprintf("overlaps %s %s; a pool must hold only unicast addresses that the network routes to the nodes", s.what, s.text)
		}
	}
	return ""
}
