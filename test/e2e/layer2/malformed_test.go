package layer2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpFrame is an Ethernet frame from the client carrying an ARP packet.
func arpFrame(t *testing.T, src net.HardwareAddr, op arp.Operation, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, net.HardwareAddr{0, 0, 0, 0, 0, 0}, tpa)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := make([]byte, 14, 60)
	copy(f[0:6], broadcast)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], 0x0806)
	f = append(f, payload...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// TestMalformedPacketsGetNoAnswer sends truncated and malformed ARP
// requests and neighbor solicitations for an announced IP from the
// client: no announcer answers any of them and none crashes, while a
// well-formed request right after is answered.
func TestMalformedPacketsGetNoAnswer(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	const v4, v6 = "203.0.113.200", "2001:db8:1::200"
	tb.createService("web", cluster, v4, v6)
	tb.waitServedBy(v4, expectedOwner(v4, allNodes...))
	tb.waitServedBy(v6, expectedOwner(v6, allNodes...))
	client := tb.Lab.Client()
	mac := client.MAC()
	vip := netip.MustParseAddr(v4)

	t.Run("ARP", func(t *testing.T) {
		var conn *packet.Conn
		if err := client.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			conn, err = packet.Listen(ifi, packet.Raw, 0x0806, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		good := arpFrame(t, mac, arp.OperationRequest, mac, client.IPv4(), vip)
		mutate := func(i int, b byte) []byte { f := bytes.Clone(good); f[i] = b; return f }
		bad := map[string][]byte{
			"truncated ARP payload":     good[:14+20],
			"Ethernet header only":      good[:14],
			"hardware length 255":       mutate(14+4, 255),
			"protocol length 16":        mutate(14+5, 16),
			"protocol type IPv6":        mutate(14+2, 0x86),
			"operation 3":               mutate(14+7, 3),
			"multicast sender hardware": arpFrame(t, mac, arp.OperationRequest, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, client.IPv4(), vip),
			"gratuitous for the VIP":    arpFrame(t, mac, arp.OperationRequest, mac, vip, vip),
		}
		for name, f := range bad {
			if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: broadcast}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if r := arpReplies(t, conn, mac, 200*time.Millisecond); len(r) > 0 {
				t.Errorf("%s: answered by %v", name, tb.names(r))
			}
		}
		if _, err := conn.WriteTo(good, &packet.Addr{HardwareAddr: broadcast}); err != nil {
			t.Fatal(err)
		}
		if r := tb.names(arpReplies(t, conn, mac, time.Second)); len(r) != 1 || r[0] != expectedOwner(v4, allNodes...) {
			t.Errorf("well-formed request answered by %v, want the owner only", r)
		}
	})

	t.Run("NDP", func(t *testing.T) {
		var pc *ipv6.PacketConn
		var ifIndex int
		if err := client.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			ifIndex = ifi.Index
			c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
			if err != nil {
				return err
			}
			pc = c.IPv6PacketConn()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
		if err := pc.SetICMPFilter(&f); err != nil {
			t.Fatal(err)
		}
		target := netip.MustParseAddr(v6)
		group, _ := ndp.SolicitedNodeMulticast(target)
		good, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac},
		}})
		if err != nil {
			t.Fatal(err)
		}
		mutate := func(i int, b byte) []byte { m := bytes.Clone(good); m[i] = b; return m }
		bad := []struct {
			name     string
			msg      []byte
			hopLimit int
		}{
			{"truncated before the target", good[:20], 255},
			{"truncated option", good[:len(good)-3], 255},
			{"option length 0", mutate(25, 0), 255},
			{"option longer than the message", mutate(25, 9), 255},
			{"code 1", mutate(1, 1), 255},
			{"hop limit 64", good, 64},
		}
		dst := &net.IPAddr{IP: group.AsSlice(), Zone: strconv.Itoa(ifIndex)}
		for _, b := range bad {
			cm := &ipv6.ControlMessage{HopLimit: b.hopLimit, IfIndex: ifIndex}
			if _, err := pc.WriteTo(b.msg, cm, dst); err != nil {
				t.Fatalf("%s: %v", b.name, err)
			}
			if r := naFor(t, pc, target, 200*time.Millisecond); len(r) > 0 {
				t.Errorf("%s: answered by %v", b.name, tb.names(r))
			}
		}
		if _, err := pc.WriteTo(good, &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifIndex}, dst); err != nil {
			t.Fatal(err)
		}
		if r := tb.names(naFor(t, pc, target, time.Second)); len(r) != 1 || r[0] != expectedOwner(v6, allNodes...) {
			t.Errorf("well-formed solicitation answered by %v, want the owner only", r)
		}
		// A solicitation sent to the IP itself, as a client re-checking a
		// cached entry does (neighbor unreachability detection), is
		// answered too.
		unicast := &net.IPAddr{IP: target.AsSlice(), Zone: strconv.Itoa(ifIndex)}
		if _, err := pc.WriteTo(good, &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifIndex}, unicast); err != nil {
			t.Fatal(err)
		}
		if r := tb.names(naFor(t, pc, target, time.Second)); len(r) != 1 || r[0] != expectedOwner(v6, allNodes...) {
			t.Errorf("unicast solicitation answered by %v, want the owner only", r)
		}
	})

	for name, p := range tb.Announcers {
		if !p.Running() {
			t.Errorf("announcer on %s exited: %v", name, p.Err())
		}
	}
}

// arpReplies collects the senders of ARP replies addressed to mac within
// wait.
func arpReplies(t *testing.T, conn *packet.Conn, mac net.HardwareAddr, wait time.Duration) []net.HardwareAddr {
	t.Helper()
	var out []net.HardwareAddr
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for {
		if err := conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return out
		}
		var p arp.Packet
		if n < 14 || !bytes.Equal(buf[0:6], mac) || p.UnmarshalBinary(buf[14:n]) != nil || p.Operation != arp.OperationReply {
			continue
		}
		out = append(out, p.SenderHardwareAddr)
	}
}

// naFor collects the target link-layer addresses of solicited neighbor
// advertisements for target within wait. Unsolicited ones are the owner's
// repeated takeover announcements, not answers.
func naFor(t *testing.T, pc *ipv6.PacketConn, target netip.Addr, wait time.Duration) []net.HardwareAddr {
	t.Helper()
	var out []net.HardwareAddr
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for {
		if err := pc.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, _, _, err := pc.ReadFrom(buf)
		if err != nil {
			return out
		}
		m, err := ndp.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || !na.Solicited || na.TargetAddress != target {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				out = append(out, lla.Addr)
			}
		}
	}
}
