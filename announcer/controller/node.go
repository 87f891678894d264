package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// What this node knows of itself and of the other nodes from their Node
// objects: its Node, its IP (for memberlist and the BGP router ID), and
// the IPs of the nodes it gossips with. Every one of them reads the
// InternalIPs by internalIP, so that which address counts is decided once.

// Node returns this node's Node object from the cache.
func (c *Controller) Node() (*corev1.Node, error) {
	return c.nodes.Get(c.cfg.NodeName)
}

// internalIP returns the first InternalIP of n that want accepts, as
// IPv4 when it is an IPv4-mapped IPv6 address, or an invalid address.
func internalIP(n *corev1.Node, want func(netip.Addr) bool) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && want(ip.Unmap()) {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func anyIP(netip.Addr) bool { return true }

// NodeIP returns the first InternalIP of n, or an invalid address.
func NodeIP(n *corev1.Node) netip.Addr {
	return internalIP(n, anyIP)
}

// NodeIPv4 returns the first IPv4 InternalIP of this node from the cache,
// or an invalid address: the BGP router ID when --node-ip is IPv6.
func (c *Controller) NodeIPv4() netip.Addr {
	n, err := c.Node()
	if err != nil {
		return netip.Addr{}
	}
	return internalIP(n, netip.Addr.Is4)
}

// errNoNodeIP is returned when neither the flag nor the Node object gives
// the node's IP.
var errNoNodeIP = errors.New("the Node object has no InternalIP")

// LookupNodeIP returns this node's InternalIP from the cache.
func (c *Controller) LookupNodeIP() (netip.Addr, error) {
	n, err := c.Node()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("node %s: %w", c.cfg.NodeName, err)
	}
	ip := NodeIP(n)
	if !ip.IsValid() {
		return ip, fmt.Errorf("node %s: %w", c.cfg.NodeName, errNoNodeIP)
	}
	return ip, nil
}

// selfIP is the node's IP: Config.NodeIP, else from its Node object, if
// known.
func (c *Controller) selfIP() netip.Addr {
	if c.cfg.NodeIP.IsValid() {
		return c.cfg.NodeIP
	}
	n, err := c.Node()
	if err != nil {
		return netip.Addr{}
	}
	return NodeIP(n)
}

// PeerIPs returns one InternalIP of every other node, of the same family
// as self (memberlist speaks one family), sorted.
func (c *Controller) PeerIPs(self netip.Addr) []netip.Addr {
	nodes, _ := c.nodes.List(labels.Everything())
	sameFamily := func(ip netip.Addr) bool { return ip.Is4() == self.Is4() }
	var out []netip.Addr
	for _, n := range nodes {
		if n.Name == c.cfg.NodeName {
			continue
		}
		if ip := internalIP(n, sameFamily); ip.IsValid() {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
