package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
)

// FuzzARP feeds arbitrary frames to arpReply: it must never panic, and any
// answer must be an ARP reply from our MAC for an announced IP, addressed
// to the unicast sender of a request sent to broadcast or to us.
func FuzzARP(f *testing.F) {
	f.Add(request(f, broadcastMAC, vip))
	f.Add(request(f, ourMAC, vip))
	f.Add(request(f, otherMAC, vip))
	f.Add(request(f, broadcastMAC, clientIP))
	f.Add(request(f, broadcastMAC, vip)[:30])
	f.Add([]byte{})
	f.Add(gratuitousARP(vip, otherMAC)[0])
	f.Add(gratuitousARP(vip, otherMAC)[1])
	announced := set("203.0.113.200", "203.0.113.201", "2001:db8:1::200")
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := bytes.Clone(frame)
		if ip, mac, ok := arpConflict(frame, ourMAC, announced); ok && (!announced.has(ip) || bytes.Equal(mac, ourMAC)) {
			t.Fatalf("conflict on %s by %s", ip, mac)
		}
		reply := arpReply(frame, ourMAC, announced)
		if !bytes.Equal(in, frame) {
			t.Fatal("arpReply or arpConflict modified its input")
		}
		if reply == nil {
			return
		}
		dst := net.HardwareAddr(frame[0:6])
		if !bytes.Equal(dst, broadcastMAC) && !bytes.Equal(dst, ourMAC) {
			t.Fatalf("answered a frame for %s", dst)
		}
		var r arp.Packet
		if err := r.UnmarshalBinary(reply[ethHeaderLen:]); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if r.Operation != arp.OperationReply || !announced.has(r.SenderIP) || !bytes.Equal(r.SenderHardwareAddr, ourMAC) {
			t.Fatalf("bad reply %+v", r)
		}
		if !usableUnicastMAC(net.HardwareAddr(reply[0:6])) {
			t.Fatalf("reply addressed to %s", net.HardwareAddr(reply[0:6]))
		}
	})
}

// FuzzNDP feeds arbitrary ICMPv6 messages, sources and hop limits to
// ndpReply: it must never panic, and any answer must advertise an
// announced IPv6 address at our MAC.
func FuzzNDP(f *testing.F) {
	f.Add(nsBytes(f, vip6, sourceLLA(clientMAC)), client6.AsSlice(), 255)
	f.Add(nsBytes(f, vip6), netip.IPv6Unspecified().AsSlice(), 255)
	f.Add(nsBytes(f, vip6, sourceLLA(clientMAC))[:25], client6.AsSlice(), 255)
	f.Add(nsBytes(f, client6), clientLL.AsSlice(), 255)
	f.Add([]byte{135, 0, 0, 0}, client6.AsSlice(), 255)
	f.Add(naBytes(f, vip6, otherMAC), clientLL.AsSlice(), 255)
	announced := set("2001:db8:1::200", "2001:db8:1::201", "203.0.113.200")
	f.Fuzz(func(t *testing.T, msg, src []byte, hopLimit int) {
		s, _ := netip.AddrFromSlice(src)
		in := bytes.Clone(msg)
		req := nsRequest{msg: msg, src: s, hopLimit: hopLimit, ifIndex: ourIndex}
		if ip, mac, ok := ndpConflict(req, ourIndex, ourMAC, announced); ok && (!announced.has(ip) || bytes.Equal(mac, ourMAC) || hopLimit != 255) {
			t.Fatalf("conflict on %s by %s", ip, mac)
		}
		reply := ndpReply(req, ourIndex, ourMAC, announced)
		if !bytes.Equal(in, msg) {
			t.Fatal("ndpReply or ndpConflict modified its input")
		}
		if reply == nil {
			return
		}
		if hopLimit != 255 {
			t.Fatalf("answered with hop limit %d", hopLimit)
		}
		if !announced.has(reply.msg.TargetAddress) || !reply.msg.TargetAddress.Is6() {
			t.Fatalf("advertised %s", reply.msg.TargetAddress)
		}
		if !reply.dst.IsValid() || !reply.msg.Override {
			t.Fatalf("bad reply %+v to %s", reply.msg, reply.dst)
		}
	})
}
