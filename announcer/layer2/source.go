package layer2

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// Source addresses of neighbor advertisements.
//
// RFC 4861 section 4.4 says the source of an advertisement is "an address
// assigned to the interface from which the advertisement is sent". The IPs
// this package answers for are not assigned to that interface (kube-proxy
// holds them on lo), so they are not candidates, and neither is any address
// of another interface. Left to itself the kernel could pick either: for a
// global destination its source selection (RFC 6724) prefers a global
// address, and when the interface has none it takes one from lo (a VIP) or
// from the management network's interface. So the source is chosen here,
// from the interface's own addresses, and handed to the kernel with each
// packet:
//
//   - to a link-local or link-scoped multicast destination (the all-nodes
//     group of unsolicited and duplicate-detection advertisements), a
//     link-local address, as every router and host uses for neighbor
//     discovery;
//   - to a global destination (a switch or router checking reachability
//     from its global address, MetalLB #2920), a global address, preferring
//     one on the destination's prefix and then the longest shared prefix
//     (RFC 6724 rules 2 and 8), never depending on which address was
//     configured first (MetalLB #2685 failed when the global address was
//     not the interface's first);
//   - addresses whose preferred lifetime is over come after the others
//     (RFC 6724 rule 3), and tentative or duplicate ones are not listed at
//     all, since the kernel refuses to send from them.
//
// Every address of the interface stays a candidate in that order: if the
// first is refused (removed since it was read), the next one is tried.

// ifAddr is one IPv6 address assigned to an interface.
type ifAddr struct {
	prefix netip.Prefix
	// deprecated is set when the preferred lifetime is over.
	deprecated bool
}

// naSources returns the addresses an advertisement to dst may be sent
// from, best first: the interface's addresses in addrs, less any announced
// IP. It returns nil when the interface has no usable IPv6 address.
func naSources(dst netip.Addr, addrs []ifAddr, announced ipSet) []netip.Addr {
	type candidate struct {
		addr       netip.Addr
		scopeMiss  bool // scope differs from dst's
		deprecated bool
		offLink    bool // dst is not on the address's prefix
		shared     int  // leading bits shared with dst
		order      int
	}
	dst = dst.WithZone("")
	linkScope := dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast()
	var cs []candidate
	for i, a := range addrs {
		ip := a.prefix.Addr().WithZone("")
		if !ip.Is6() || ip.Is4In6() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || announced.has(ip) {
			continue
		}
		if slices.ContainsFunc(cs, func(c candidate) bool { return c.addr == ip }) {
			continue
		}
		c := candidate{addr: ip, scopeMiss: ip.IsLinkLocalUnicast() != linkScope, deprecated: a.deprecated, order: i}
		if !linkScope {
			c.offLink = !a.prefix.IsValid() || !a.prefix.Masked().Contains(dst)
			c.shared = sharedBits(ip, dst)
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(x, y candidate) int {
		return cmp.Or(
			boolCmp(x.scopeMiss, y.scopeMiss),
			boolCmp(x.deprecated, y.deprecated),
			boolCmp(x.offLink, y.offLink),
			cmp.Compare(y.shared, x.shared),
			cmp.Compare(x.order, y.order),
		)
	})
	var out []netip.Addr
	for _, c := range cs {
		out = append(out, c.addr)
	}
	return out
}

// boolCmp orders false before true.
func boolCmp(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// sharedBits is the length of the common prefix of two IPv6 addresses.
func sharedBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n := 0
			for d&0x80 == 0 {
				d <<= 1
				n++
			}
			return i*8 + n
		}
	}
	return 128
}

// addrRefresh bounds how stale the cached addresses of an interface may
// be. Reading them is a netlink dump; a flood of solicitations must not
// turn into a flood of dumps, and addresses change rarely (a failed send
// refreshes them at once anyway).
const addrRefresh = 5 * time.Second

// addrForcedRefresh bounds the reads that a failed send forces: a send
// that keeps failing for another reason (no route to the destination) must
// not read the addresses for every solicitation either.
const addrForcedRefresh = time.Second

// addrCache holds an interface's IPv6 addresses, read at most every
// addrRefresh, or every addrForcedRefresh when a caller needs them fresh.
type addrCache struct {
	index int
	read  func(index int) ([]ifAddr, error)

	mu    sync.Mutex
	addrs []ifAddr
	at    time.Time
	err   error
}

// get returns the addresses, reading them again if they are older than
// addrRefresh, or than addrForcedRefresh if fresh is set.
func (c *addrCache) get(now time.Time, fresh bool) ([]ifAddr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	age := now.Sub(c.at)
	if c.at.IsZero() || age < 0 || age >= addrRefresh || fresh && age >= addrForcedRefresh {
		c.addrs, c.err = c.read(c.index)
		c.at = now
	}
	return c.addrs, c.err
}

// interfaceAddrs reads the IPv6 addresses of the interface with index
// through netlink, with their flags: tentative (duplicate address
// detection still running) and duplicate addresses cannot be sent from and
// are left out.
func interfaceAddrs(index int) ([]ifAddr, error) {
	list, err := netlink.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("listing IPv6 addresses of interface %d: %w", index, err)
	}
	var out []ifAddr
	for _, a := range list {
		if a.Flags&(syscall.IFA_F_TENTATIVE|syscall.IFA_F_DADFAILED) != 0 || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, ifAddr{
			prefix:     netip.PrefixFrom(ip, ones),
			deprecated: a.Flags&syscall.IFA_F_DEPRECATED != 0,
		})
	}
	return out, nil
}
