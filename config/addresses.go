package config

import (
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strings"

	"go4.org/netipx"
)

// parseAddressEntry parses one address-pools[].addresses entry: a CIDR
// ("203.0.113.0/28") or an inclusive range ("203.0.113.10-203.0.113.20",
// spaces around "-" allowed), as in MetalLB's classic configuration. The
// error text follows the quoted value, e.g. `"x" is not an IP range: ...`.
//
// Two choices differ from MetalLB v0.12, which silently masked a CIDR with
// host bits set: "192.168.1.5/24" is refused because it usually means the
// user pasted a host address and meant something narrower. Single
// addresses are refused as in MetalLB, with a hint to write "/32".
func parseAddressEntry(s string) (netipx.IPRange, error) {
	t := strings.TrimSpace(s)
	switch {
	case strings.Contains(t, "/"):
		p, err := parsePrefix(t)
		if err != nil {
			return netipx.IPRange{}, err
		}
		return netipx.RangeOfPrefix(p), nil
	case strings.Contains(t, "-"):
		a, b, _ := strings.Cut(t, "-")
		from, err := parseIP(strings.TrimSpace(a))
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("is not an IP range: %v", err)
		}
		to, err := parseIP(strings.TrimSpace(b))
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("is not an IP range: %v", err)
		}
		if from.Is4() != to.Is4() {
			return netipx.IPRange{}, fmt.Errorf("is not an IP range: %s and %s are not the same IP family", from, to)
		}
		if to.Less(from) {
			return netipx.IPRange{}, fmt.Errorf("is not an IP range: the end %s is before the start %s", to, from)
		}
		return netipx.IPRangeFrom(from, to), nil
	}
	if ip, err := parseIP(t); err == nil {
		return netipx.IPRange{}, fmt.Errorf("is a single address, not a CIDR or range: write %s/%d", ip, ip.BitLen())
	}
	return netipx.IPRange{}, fmt.Errorf("is not a CIDR (like 203.0.113.0/28) or a range (like 203.0.113.10-203.0.113.20)")
}

// parsePrefix parses a CIDR that must be a network address.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("is not a CIDR: %v", err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("is an IPv4-mapped IPv6 CIDR: write it as IPv4")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("has host bits set: did you mean %s?", m)
	}
	return p, nil
}

// parseIP parses an address for use on the wire: no IPv6 zone, and no
// IPv4-mapped IPv6 form, which would make "same family" ambiguous.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has an IPv6 zone, which is not allowed here", s)
	}
	if ip.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address: write it as IPv4", s)
	}
	return ip, nil
}

// AutoAssigns says whether Services that name no pool may get addresses
// from this pool. auto-assign defaults to true, as in MetalLB.
func (p *Pool) AutoAssigns() bool {
	return p.AutoAssign == nil || *p.AutoAssign
}

// Contains says whether ip is inside one of the pool's Ranges. It ignores
// avoid-buggy-ips; see Assignable. An IPv4-mapped IPv6 address is treated as
// its IPv4 form, and a zone is ignored.
func (p *Pool) Contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	// Ranges are sorted and disjoint: the only candidate is the first range
	// that ends at or after ip.
	i := sort.Search(len(p.Ranges), func(i int) bool { return !p.Ranges[i].To().Less(ip) })
	return i < len(p.Ranges) && p.Ranges[i].Contains(ip)
}

// Assignable says whether ip may be given to a Service from this pool: it
// is in the pool, and is not an IPv4 address ending in .0 or .255 when
// avoid-buggy-ips is set.
func (p *Pool) Assignable(ip netip.Addr) bool {
	return p.Contains(ip) && !(p.AvoidBuggyIPs && buggy(ip.Unmap()))
}

// buggy says whether ip is an IPv4 address that some broken networking
// gear mistakes for a network or broadcast address.
func buggy(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	last := ip.As4()[3]
	return last == 0 || last == 255
}

// Size is how many addresses the pool can assign: the addresses in Ranges,
// less the IPv4 addresses ending in .0 or .255 when avoid-buggy-ips is
// set. It is a big.Int because an IPv6 pool easily exceeds 2^64.
func (p *Pool) Size() *big.Int {
	v4, v6 := p.Sizes()
	return v4.Add(v4, v6)
}

// Sizes is Size per IP family. The allocator counts each family's use
// against it, so that counting what a pool may assign has one home.
func (p *Pool) Sizes() (v4, v6 *big.Int) {
	v4, v6 = new(big.Int), new(big.Int)
	one := big.NewInt(1)
	for _, r := range p.Ranges {
		from, to := r.From(), r.To()
		if from.Is4() {
			a, b := u32(from), u32(to)
			n := int64(b) - int64(a) + 1
			if p.AvoidBuggyIPs {
				n -= countMod256(a, b, 0) + countMod256(a, b, 255)
			}
			v4.Add(v4, big.NewInt(n))
			continue
		}
		fb, tb := from.As16(), to.As16()
		n := new(big.Int).Sub(new(big.Int).SetBytes(tb[:]), new(big.Int).SetBytes(fb[:]))
		v6.Add(v6, n.Add(n, one))
	}
	return v4, v6
}

func u32(ip netip.Addr) uint32 {
	b := ip.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// countMod256 counts the x in [a, b] with x%256 == r.
func countMod256(a, b uint32, r int64) int64 {
	upTo := func(x int64) int64 { // how many y in [0, x] have y%256 == r
		if x < r {
			return 0
		}
		return (x-r)/256 + 1
	}
	return upTo(int64(b)) - upTo(int64(a)-1)
}

// AggregationLengths are the prefix lengths announced for the pool's IPv4
// and IPv6 addresses: aggregation-length and aggregation-length-v6, by
// default 32 and 128, that is one route per Service IP.
func (a *BGPAdvertisement) AggregationLengths() (v4, v6 int) {
	v4, v6 = 32, 128
	if a.AggregationLength != nil {
		v4 = *a.AggregationLength
	}
	if a.AggregationLengthV6 != nil {
		v6 = *a.AggregationLengthV6
	}
	return v4, v6
}

// Prefix is the route announced for a Service IP under this advertisement:
// ip masked to the aggregation length of its family.
func (a *BGPAdvertisement) Prefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	v4, v6 := a.AggregationLengths()
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	p, _ := ip.Prefix(bits)
	return p
}
