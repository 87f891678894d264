package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
)

var (
	ourMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	otherMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x12}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}
	vip       = netip.MustParseAddr("203.0.113.200")
	clientIP  = netip.MustParseAddr("203.0.113.100")
)

func set(ips ...string) ipSet {
	s := ipSet{}
	for _, ip := range ips {
		s[netip.MustParseAddr(ip)] = struct{}{}
	}
	return s
}

// arpFrame builds an Ethernet frame holding an ARP packet.
func arpFrame(t testing.TB, ethDst, ethSrc net.HardwareAddr, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatal(err)
	}
	return ethernetFrame(ethDst, ethSrc, p)
}

func request(t testing.TB, ethDst net.HardwareAddr, target netip.Addr) []byte {
	return arpFrame(t, ethDst, clientMAC, arp.OperationRequest, clientMAC, clientIP, net.HardwareAddr{0, 0, 0, 0, 0, 0}, target)
}

func TestARPReply(t *testing.T) {
	zeroMAC := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	announced := set("203.0.113.200", "2001:db8:1::200")
	withEtherType := func(f []byte, et uint16) []byte {
		f = bytes.Clone(f)
		f[12], f[13] = byte(et>>8), byte(et)
		return f
	}
	withByte := func(f []byte, i int, b byte) []byte {
		f = bytes.Clone(f)
		f[i] = b
		return f
	}
	tests := []struct {
		name   string
		frame  []byte
		answer bool
	}{
		{name: "broadcast request for an announced IP", frame: request(t, broadcastMAC, vip), answer: true},
		{name: "unicast request to our MAC (cache refresh)", frame: request(t, ourMAC, vip), answer: true},
		{name: "unicast request to another node's MAC", frame: request(t, otherMAC, vip)},
		{name: "multicast destination", frame: request(t, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, vip)},
		{name: "IP not announced (in the pool, unallocated)", frame: request(t, broadcastMAC, netip.MustParseAddr("203.0.113.201"))},
		{name: "a node's own address", frame: request(t, broadcastMAC, netip.MustParseAddr("203.0.113.11"))},
		{name: "address outside every pool", frame: request(t, broadcastMAC, netip.MustParseAddr("192.0.2.1"))},
		{name: "our own frame seen on the raw socket", frame: arpFrame(t, broadcastMAC, ourMAC, arp.OperationRequest, ourMAC, vip, zeroMAC, vip)},
		{name: "reply, not request", frame: arpFrame(t, broadcastMAC, clientMAC, arp.OperationReply, clientMAC, clientIP, zeroMAC, vip)},
		{name: "gratuitous ARP from another host", frame: arpFrame(t, broadcastMAC, otherMAC, arp.OperationRequest, otherMAC, vip, zeroMAC, vip)},
		{name: "ARP probe (sender 0.0.0.0) is answered", frame: arpFrame(t, broadcastMAC, clientMAC, arp.OperationRequest, clientMAC, netip.IPv4Unspecified(), zeroMAC, vip), answer: true},
		{name: "sender hardware address is broadcast", frame: arpFrame(t, broadcastMAC, clientMAC, arp.OperationRequest, broadcastMAC, clientIP, zeroMAC, vip)},
		{name: "sender hardware address is multicast", frame: arpFrame(t, broadcastMAC, clientMAC, arp.OperationRequest, net.HardwareAddr{0x01, 0, 0, 0, 0, 1}, clientIP, zeroMAC, vip)},
		{name: "sender hardware address is zero", frame: arpFrame(t, broadcastMAC, clientMAC, arp.OperationRequest, zeroMAC, clientIP, zeroMAC, vip)},
		{name: "wrong EtherType", frame: withEtherType(request(t, broadcastMAC, vip), 0x0800)},
		{name: "VLAN-tagged", frame: withEtherType(request(t, broadcastMAC, vip), 0x8100)},
		{name: "hardware type not Ethernet", frame: withByte(request(t, broadcastMAC, vip), ethHeaderLen+1, 6)},
		{name: "protocol type not IPv4", frame: withByte(request(t, broadcastMAC, vip), ethHeaderLen+2, 0x86)},
		{name: "hardware length 8", frame: withByte(request(t, broadcastMAC, vip), ethHeaderLen+4, 8)},
		{name: "protocol length 16", frame: withByte(request(t, broadcastMAC, vip), ethHeaderLen+5, 16)},
		{name: "unknown operation", frame: withByte(request(t, broadcastMAC, vip), ethHeaderLen+7, 9)},
		{name: "truncated inside the ARP payload", frame: request(t, broadcastMAC, vip)[:ethHeaderLen+27]},
		{name: "Ethernet header only", frame: request(t, broadcastMAC, vip)[:ethHeaderLen]},
		{name: "empty", frame: nil},
		{name: "unpadded 42-byte frame", frame: request(t, broadcastMAC, vip)[:42], answer: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := arpReply(tt.frame, ourMAC, announced)
			if !tt.answer {
				if got != nil {
					t.Fatalf("answered % x", got)
				}
				return
			}
			if got == nil {
				t.Fatal("no answer")
			}
			checkARPReply(t, got, tt.frame)
		})
	}
}

// checkARPReply checks that reply answers req: an ARP reply from our MAC
// saying the target IP is at our MAC, addressed to the requester.
func checkARPReply(t *testing.T, reply, req []byte) {
	t.Helper()
	var q, r arp.Packet
	if err := q.UnmarshalBinary(req[ethHeaderLen:]); err != nil {
		t.Fatal(err)
	}
	if len(reply) < minFrameLen {
		t.Errorf("reply is %d bytes, want at least %d", len(reply), minFrameLen)
	}
	if err := r.UnmarshalBinary(reply[ethHeaderLen:]); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if got := net.HardwareAddr(reply[0:6]); !bytes.Equal(got, q.SenderHardwareAddr) {
		t.Errorf("Ethernet destination %s, want the requester %s", got, q.SenderHardwareAddr)
	}
	if got := net.HardwareAddr(reply[6:12]); !bytes.Equal(got, ourMAC) {
		t.Errorf("Ethernet source %s, want %s", got, ourMAC)
	}
	if r.Operation != arp.OperationReply {
		t.Errorf("operation %v, want reply", r.Operation)
	}
	if !bytes.Equal(r.SenderHardwareAddr, ourMAC) || r.SenderIP != q.TargetIP {
		t.Errorf("sender %s/%s, want %s/%s", r.SenderHardwareAddr, r.SenderIP, ourMAC, q.TargetIP)
	}
	if !bytes.Equal(r.TargetHardwareAddr, q.SenderHardwareAddr) || r.TargetIP != q.SenderIP {
		t.Errorf("target %s/%s, want %s/%s", r.TargetHardwareAddr, r.TargetIP, q.SenderHardwareAddr, q.SenderIP)
	}
}

func TestGratuitousARP(t *testing.T) {
	frames := gratuitousARP(vip, ourMAC)
	if len(frames) != 2 {
		t.Fatalf("got %d frames, want a request and a reply", len(frames))
	}
	for i, want := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		f := frames[i]
		if !bytes.Equal(f[0:6], broadcastMAC) || !bytes.Equal(f[6:12], ourMAC) {
			t.Errorf("frame %d: Ethernet %s → %s, want %s → broadcast", i, net.HardwareAddr(f[6:12]), net.HardwareAddr(f[0:6]), ourMAC)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f[ethHeaderLen:]); err != nil {
			t.Fatal(err)
		}
		if p.Operation != want || p.SenderIP != vip || p.TargetIP != vip || !bytes.Equal(p.SenderHardwareAddr, ourMAC) {
			t.Errorf("frame %d: %+v, want %v with sender = target = %s at %s", i, p, want, vip, ourMAC)
		}
		// Our own gratuitous ARP, seen by our raw socket, must not be
		// answered.
		if r := arpReply(f, ourMAC, set(vip.String())); r != nil {
			t.Errorf("frame %d: answered our own gratuitous ARP", i)
		}
	}
}
