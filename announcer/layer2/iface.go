package layer2

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// InterfaceWithAddr returns the name of the interface that has ip
// configured. It is the default interface of a layer2 pool: the one that
// holds the node's IP is the one on the node's network segment.
func InterfaceWithAddr(ip netip.Addr) (string, error) {
	ip = ip.Unmap()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		got, ok := netip.AddrFromSlice(a.IP)
		if !ok || got.Unmap() != ip {
			continue
		}
		link, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("interface %d holding %s: %w", a.LinkIndex, ip, err)
		}
		return link.Attrs().Name, nil
	}
	return "", fmt.Errorf("no interface has address %s", ip)
}
