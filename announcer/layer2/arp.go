package layer2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
)

// Ethernet framing, written out because the frames are tiny and fixed.
const (
	ethHeaderLen = 14
	etherTypeARP = 0x0806
	etherTypeIP4 = 0x0800
	// minFrameLen is the shortest Ethernet frame without FCS. Real NICs pad
	// short frames, but veth and some drivers do not, and some switches
	// drop runts.
	minFrameLen = 60
	// arpLen is the ARP payload for Ethernet and IPv4.
	arpLen = 28
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpReply decides how to answer one Ethernet frame received on an
// interface with address mac, while announcing the IPs in announced. It
// returns the complete reply frame to send, or nil to stay silent.
//
// It answers only an ARP request, for Ethernet and IPv4, whose target IP is
// announced, that is addressed to broadcast or to mac, that does not come
// from mac itself (a raw socket also sees our own outgoing frames, such as
// gratuitous ARP) and whose sender hardware address is a unicast address
// to reply to. Gratuitous ARP from another host (sender IP = target IP) is
// not answered: it announces, it does not ask. An ARP probe (sender IP
// 0.0.0.0, RFC 5227) is answered, which tells the prober the address is in
// use.
func arpReply(frame []byte, mac net.HardwareAddr, announced ipSet) []byte {
	if len(frame) < ethHeaderLen+arpLen || len(mac) != 6 {
		return nil
	}
	dst, src := net.HardwareAddr(frame[0:6]), net.HardwareAddr(frame[6:12])
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return nil
	}
	if !bytes.Equal(dst, broadcastMAC) && !bytes.Equal(dst, mac) {
		return nil
	}
	if bytes.Equal(src, mac) {
		return nil
	}
	var req arp.Packet
	if err := req.UnmarshalBinary(frame[ethHeaderLen:]); err != nil {
		return nil
	}
	if req.HardwareType != 1 || req.ProtocolType != etherTypeIP4 ||
		req.HardwareAddrLength != 6 || req.IPLength != 4 ||
		req.Operation != arp.OperationRequest {
		return nil
	}
	if !usableUnicastMAC(req.SenderHardwareAddr) {
		return nil
	}
	if !req.TargetIP.Is4() || !announced.has(req.TargetIP) {
		return nil
	}
	if req.SenderIP == req.TargetIP {
		return nil
	}
	reply, err := arp.NewPacket(arp.OperationReply, mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err != nil {
		return nil
	}
	return ethernetFrame(req.SenderHardwareAddr, mac, reply)
}

// gratuitousARP returns the two frames that announce ip at mac to every
// host on the segment: a request and a reply, both broadcast, with sender
// IP = target IP = ip. Hosts differ in which of the two they heed, so both
// are sent.
func gratuitousARP(ip netip.Addr, mac net.HardwareAddr) [][]byte {
	var out [][]byte
	req, err := arp.NewPacket(arp.OperationRequest, mac, ip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, ip)
	if err != nil {
		return nil
	}
	out = append(out, ethernetFrame(broadcastMAC, mac, req))
	rep, err := arp.NewPacket(arp.OperationReply, mac, ip, broadcastMAC, ip)
	if err != nil {
		return nil
	}
	return append(out, ethernetFrame(broadcastMAC, mac, rep))
}

// ethernetFrame wraps an ARP packet, padded to the minimum frame length.
func ethernetFrame(dst, src net.HardwareAddr, p *arp.Packet) []byte {
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil
	}
	b := make([]byte, max(minFrameLen, ethHeaderLen+len(payload)))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	copy(b[ethHeaderLen:], payload)
	return b
}

// usableUnicastMAC says whether a is a 6-byte unicast, non-zero MAC that a
// reply may be addressed to. A multicast or broadcast sender is malformed
// or hostile; replying would flood the segment.
func usableUnicastMAC(a net.HardwareAddr) bool {
	if len(a) != 6 || a[0]&1 == 1 {
		return false
	}
	return !bytes.Equal(a, net.HardwareAddr{0, 0, 0, 0, 0, 0})
}
