package layer2

import "net/netip"

// ipSet is an immutable set of announced IPs. A new set replaces the old
// one atomically, so the read loops never take a lock.
type ipSet map[netip.Addr]struct{}

func (s ipSet) has(ip netip.Addr) bool {
	_, ok := s[ip]
	return ok
}

// families says whether the set has IPv4 and IPv6 addresses.
func (s ipSet) families() (v4, v6 bool) {
	for ip := range s {
		if ip.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}
