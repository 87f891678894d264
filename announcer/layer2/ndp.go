package layer2

import (
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// allNodes is where unsolicited neighbor advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

// nsRequest is one ICMPv6 message received on an interface, with what the
// kernel told about it.
type nsRequest struct {
	// msg is the ICMPv6 message, from its type byte on.
	msg []byte
	// src and dst are the IPv6 source and destination; dst is invalid when
	// unknown.
	src, dst netip.Addr
	// hopLimit is the received hop limit, or -1 when unknown.
	hopLimit int
	// ifIndex is the interface it arrived on, or 0 when unknown.
	ifIndex int
}

// naReply is a neighbor advertisement and where to send it.
type naReply struct {
	msg *ndp.NeighborAdvertisement
	dst netip.Addr
}

// ndpReply decides how to answer one ICMPv6 message received on the
// interface with index ifIndex and address mac, while announcing the IPs in
// announced. It returns nil to stay silent.
//
// It answers only a neighbor solicitation that passes RFC 4861 section
// 7.1.1 validation (hop limit 255, code 0, well-formed options, a unicast
// target, and from the unspecified address only when sent to the
// solicited-node group and without a source link-layer option) and whose
// target is announced. The destination may be the solicited-node group or
// the IP itself: a unicast solicitation is a reachability check (RFC 4861
// section 7.3.1) by a host that already has this node's MAC cached, and
// must be confirmed like any other. A solicitation from the unspecified
// address is duplicate address detection by another host: the
// advertisement goes to all nodes, which tells it the address is taken
// (RFC 4861 section 7.2.4).
func ndpReply(req nsRequest, ifIndex int, mac net.HardwareAddr, announced ipSet) *naReply {
	if len(mac) != 6 {
		return nil
	}
	if req.ifIndex != 0 && req.ifIndex != ifIndex {
		return nil
	}
	if req.hopLimit != ndp.HopLimit {
		return nil
	}
	if len(req.msg) < 2 || req.msg[0] != byte(ipv6.ICMPTypeNeighborSolicitation) || req.msg[1] != 0 {
		return nil
	}
	if !req.src.Is6() || req.src.Is4In6() || req.src.IsMulticast() {
		return nil
	}
	m, err := ndp.ParseMessage(req.msg)
	if err != nil {
		return nil
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return nil
	}
	target := ns.TargetAddress.WithZone("")
	if !target.Is6() || target.Is4In6() || target.IsMulticast() || !announced.has(target) {
		return nil
	}
	hasSourceLLA := false
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			hasSourceLLA = true
		}
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      mac,
		}},
	}
	if req.src.IsUnspecified() {
		if hasSourceLLA {
			return nil
		}
		if req.dst.IsValid() {
			want, err := ndp.SolicitedNodeMulticast(target)
			if err != nil || req.dst.WithZone("") != want {
				return nil
			}
		}
		return &naReply{msg: na, dst: allNodes}
	}
	na.Solicited = true
	return &naReply{msg: na, dst: req.src}
}

// unsolicitedNA is the advertisement that tells every host on the segment
// that ip is now at mac, overriding any cached entry.
func unsolicitedNA(ip netip.Addr, mac net.HardwareAddr) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      mac,
		}},
	}
}
