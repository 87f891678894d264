package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
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

// FuzzNDPExchange feeds arbitrary solicitations (with their destination)
// and interface addresses to ndpReply and naSources: neither may panic,
// and every source offered for an answer must be a distinct IPv6 address
// of the interface, never an announced IP, with one of the destination's
// scope first whenever the interface has one. ifaddrs is read as 17-byte
// records: an address, then the prefix length (low 7 bits, capped at 128)
// with the top bit meaning deprecated.
func FuzzNDPExchange(f *testing.F) {
	node := []byte{}
	for _, a := range []struct {
		ip   string
		bits byte
	}{{"fe80::ff:fe00:11", 64}, {"2001:db8:1::11", 64}, {"2001:db8:3::11", 64 | 0x80}} {
		node = append(node, netip.MustParseAddr(a.ip).AsSlice()...)
		node = append(node, a.bits)
	}
	good := nsBytes(f, vip6, sourceLLA(clientMAC))
	f.Add(good, client6.AsSlice(), snm(f, vip6).AsSlice(), 255, node)
	f.Add(good, client6.AsSlice(), vip6.AsSlice(), 255, node)
	f.Add(good, clientLL.AsSlice(), vip6.AsSlice(), 255, node)
	f.Add(nsBytes(f, vip6), netip.IPv6Unspecified().AsSlice(), snm(f, vip6).AsSlice(), 255, node)
	f.Add(good, client6.AsSlice(), vip6.AsSlice(), 255, []byte{})
	f.Add(good, client6.AsSlice(), vip6.AsSlice(), 255, append(vip6.AsSlice(), 64))
	announced := set("2001:db8:1::200", "2001:db8:1::201", "203.0.113.200")
	f.Fuzz(func(t *testing.T, msg, src, dst []byte, hopLimit int, ifaddrs []byte) {
		var addrs []ifAddr
		for len(ifaddrs) >= 17 {
			ip, _ := netip.AddrFromSlice(ifaddrs[:16])
			addrs = append(addrs, ifAddr{prefix: netip.PrefixFrom(ip, min(int(ifaddrs[16]&0x7f), 128)), deprecated: ifaddrs[16]&0x80 != 0})
			ifaddrs = ifaddrs[17:]
		}
		s, _ := netip.AddrFromSlice(src)
		d, _ := netip.AddrFromSlice(dst)
		reply := ndpReply(nsRequest{msg: msg, src: s, dst: d, hopLimit: hopLimit, ifIndex: ourIndex}, ourIndex, ourMAC, announced)
		to := d
		if reply != nil {
			if !reply.msg.Solicited && reply.dst != allNodes || reply.msg.Solicited && reply.dst.IsMulticast() {
				t.Fatalf("solicited=%v advertisement sent to %s", reply.msg.Solicited, reply.dst)
			}
			to = reply.dst
		}
		if !to.IsValid() {
			return
		}
		srcs := naSources(to, addrs, announced)
		linkScope := to.IsLinkLocalUnicast() || to.IsLinkLocalMulticast() || to.IsInterfaceLocalMulticast()
		haveScope := false
		for _, a := range addrs {
			ip := a.prefix.Addr()
			if ip.Is6() && !ip.Is4In6() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsMulticast() && !announced.has(ip) && ip.IsLinkLocalUnicast() == linkScope {
				haveScope = true
			}
		}
		seen := map[netip.Addr]bool{}
		for i, ip := range srcs {
			if seen[ip] || !ip.Is6() || ip.Is4In6() || ip.IsMulticast() || ip.IsUnspecified() || announced.has(ip) {
				t.Fatalf("source %s offered for %s (sources %v)", ip, to, srcs)
			}
			seen[ip] = true
			if !slices.ContainsFunc(addrs, func(a ifAddr) bool { return a.prefix.Addr() == ip }) {
				t.Fatalf("source %s is not an address of the interface", ip)
			}
			if i == 0 && haveScope && ip.IsLinkLocalUnicast() != linkScope {
				t.Fatalf("first source %s for %s, though the interface has one of its scope", ip, to)
			}
		}
	})
}
