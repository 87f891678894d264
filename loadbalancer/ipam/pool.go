package ipam

import (
	"math"
	"math/big"
	"net/netip"
	"slices"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Family is an IP address family.
type Family uint8

// The two families. Their values index per-family arrays.
const (
	IPv4 Family = 0
	IPv6 Family = 1
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf returns the family of addr.
func FamilyOf(addr netip.Addr) Family {
	if addr.Is4() {
		return IPv4
	}
	return IPv6
}

// pool is the allocator's state for one configured pool: its ranges per
// family, how many addresses are usable and used, and where the next search
// starts. It holds no per-address state; the Allocator's map does. What
// the pool contains, skips and counts is config.Pool's to say: this package
// keeps only what is in use and where to look next.
type pool struct {
	cfg    *config.Pool
	ranges [2][]netipx.IPRange
	usable [2]uint64 // saturating: a /64 has more than fits
	used   [2]uint64
	// cursor is the address handed out last per family; the next search
	// starts just after it.
	cursor [2]netip.Addr
}

func newPool(cfg *config.Pool) *pool {
	p := &pool{cfg: cfg}
	for _, r := range cfg.Ranges {
		f := FamilyOf(r.From())
		p.ranges[f] = append(p.ranges[f], r)
	}
	v4, v6 := cfg.Sizes()
	p.usable = [2]uint64{IPv4: saturate(v4), IPv6: saturate(v6)}
	return p
}

func (p *pool) name() string { return p.cfg.Name }

func (p *pool) hasFamily(f Family) bool { return len(p.ranges[f]) > 0 }

func (p *pool) contains(addr netip.Addr) bool { return p.cfg.Contains(addr) }

// restricted reports whether the pool allows only some Services.
func (p *pool) restricted() bool {
	return len(p.cfg.Namespaces) > 0 || len(p.cfg.ServiceSelector) > 0
}

// allows reports whether a Service may take addresses from this pool: the
// namespace and service-selector restrictions (our extension).
func (p *pool) allows(svc *Service) bool {
	if len(p.cfg.Namespaces) > 0 && !slices.Contains(p.cfg.Namespaces, svc.Namespace) {
		return false
	}
	if len(p.cfg.ServiceSelector) == 0 {
		return true
	}
	set := labels.Set(svc.Labels)
	for _, sel := range p.cfg.ServiceSelector {
		if sel.Matches(set) {
			return true
		}
	}
	return false
}

// nextFree returns a usable address of family f for which free is true,
// searching next-fit from the cursor. It visits at most the used addresses
// plus the skipped buggy ones before it finds a free one, so it never walks
// a large pool.
func (p *pool) nextFree(f Family, free func(netip.Addr) bool) (netip.Addr, bool) {
	if p.used[f] >= p.usable[f] {
		return netip.Addr{}, false
	}
	rs := p.ranges[f]
	start, at := 0, netip.Addr{}
	if c := p.cursor[f]; c.IsValid() {
		for i, r := range rs {
			if r.Contains(c) {
				start, at = i, c.Next()
				break
			}
		}
	}
	// Walk: the rest of the cursor's range, every other range in order,
	// then the cursor's range from its start up to the cursor.
	for n := 0; n <= len(rs); n++ {
		r := rs[(start+n)%len(rs)]
		from, to := r.From(), r.To()
		if n == 0 && at.IsValid() {
			from = at
		}
		if n == len(rs) {
			if !at.IsValid() {
				break
			}
			to = p.cursor[f]
		}
		for a := from; a.IsValid() && a.Compare(to) <= 0; a = a.Next() {
			if p.cfg.AvoidBuggyIPs && !p.cfg.Assignable(a) {
				continue
			}
			if free(a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// saturate is n as a uint64, or MaxUint64 if it does not fit (a /64 has
// more addresses than that).
func saturate(n *big.Int) uint64 {
	if !n.IsUint64() {
		return math.MaxUint64
	}
	return n.Uint64()
}
