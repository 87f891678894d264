package layer2

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
)

func TestARPConflict(t *testing.T) {
	announced := set("203.0.113.200")
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	other := netip.MustParseAddr("203.0.113.201")
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"another host's gratuitous request", arpFrame(t, broadcastMAC, otherMAC, arp.OperationRequest, otherMAC, vip, zero, vip), true},
		{"another host's gratuitous reply", arpFrame(t, broadcastMAC, otherMAC, arp.OperationReply, otherMAC, vip, broadcastMAC, vip), true},
		{"another host's reply to us", arpFrame(t, ourMAC, otherMAC, arp.OperationReply, otherMAC, vip, ourMAC, clientIP), true},
		{"our own gratuitous ARP", gratuitousARP(vip, ourMAC)[0], false},
		{"our MAC as sender from elsewhere", arpFrame(t, broadcastMAC, otherMAC, arp.OperationReply, ourMAC, vip, broadcastMAC, vip), false},
		{"a client asking", request(t, broadcastMAC, vip), false},
		{"gratuitous ARP for an IP we do not announce", arpFrame(t, broadcastMAC, otherMAC, arp.OperationRequest, otherMAC, other, zero, other), false},
		{"a broadcast sender MAC", arpFrame(t, broadcastMAC, otherMAC, arp.OperationReply, broadcastMAC, vip, broadcastMAC, vip), false},
		{"truncated", arpFrame(t, broadcastMAC, otherMAC, arp.OperationReply, otherMAC, vip, broadcastMAC, vip)[:30], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, mac, ok := arpConflict(tt.frame, ourMAC, announced)
			if ok != tt.want {
				t.Fatalf("arpConflict = %v, want %v", ok, tt.want)
			}
			if ok && (ip != vip || !bytes.Equal(mac, otherMAC)) {
				t.Errorf("conflict on %s by %s, want %s by %s", ip, mac, vip, otherMAC)
			}
		})
	}
}

func naBytes(t testing.TB, target netip.Addr, mac net.HardwareAddr) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(unsolicitedNA(target, mac))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNDPConflict(t *testing.T) {
	announced := set("2001:db8:1::200")
	tests := []struct {
		name string
		req  nsRequest
		want bool
	}{
		{"another host's unsolicited NA", nsRequest{msg: naBytes(t, vip6, otherMAC), src: clientLL, hopLimit: 255, ifIndex: ourIndex}, true},
		{"our own NA looped back", nsRequest{msg: naBytes(t, vip6, ourMAC), src: clientLL, hopLimit: 255, ifIndex: ourIndex}, false},
		{"an NA for another IP", nsRequest{msg: naBytes(t, client6, otherMAC), src: clientLL, hopLimit: 255, ifIndex: ourIndex}, false},
		{"a routed NA (hop limit 64)", nsRequest{msg: naBytes(t, vip6, otherMAC), src: clientLL, hopLimit: 64, ifIndex: ourIndex}, false},
		{"another interface", nsRequest{msg: naBytes(t, vip6, otherMAC), src: clientLL, hopLimit: 255, ifIndex: ourIndex + 1}, false},
		{"a solicitation", nsRequest{msg: nsBytes(t, vip6, sourceLLA(otherMAC)), src: client6, hopLimit: 255, ifIndex: ourIndex}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, mac, ok := ndpConflict(tt.req, ourIndex, ourMAC, announced)
			if ok != tt.want {
				t.Fatalf("ndpConflict = %v, want %v", ok, tt.want)
			}
			if ok && (ip != vip6 || !bytes.Equal(mac, otherMAC)) {
				t.Errorf("conflict on %s by %s", ip, mac)
			}
		})
	}
}

// TestConflictsNeedTheGrace: a sighting counts only if the IP is still
// announced after the grace, and once per IP and MAC.
func TestConflictsNeedTheGrace(t *testing.T) {
	var mu sync.Mutex
	announcedNow := map[netip.Addr]bool{vip: true, vip6: true}
	var got []netip.Addr
	c := newConflicts(20*time.Millisecond, time.Hour,
		func(ip netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return announcedNow[ip] },
		func(ip netip.Addr, _ net.HardwareAddr) { mu.Lock(); defer mu.Unlock(); got = append(got, ip) })
	defer c.close()
	c.saw(vip, otherMAC)
	c.saw(vip, otherMAC)
	c.saw(vip6, otherMAC)
	// vip6 moves away legitimately within the grace.
	mu.Lock()
	announcedNow[vip6] = false
	mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	c.saw(vip, otherMAC) // the same conflict again: counted already
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != vip {
		t.Errorf("counted %v, want %s once", got, vip)
	}
}

// TestAnnouncerCountsConflicts: another MAC's gratuitous ARP for an IP we
// keep announcing reaches the handler; after Quiesce (a handover) it does
// not.
func TestAnnouncerCountsConflicts(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0}
	a.conflicts.close()
	a.conflicts = newConflicts(10*time.Millisecond, time.Hour, a.stillAnnounces, a.conflictConfirmed)
	seen := make(chan netip.Addr, 4)
	a.SetConflictHandler(func(ip netip.Addr, _ net.HardwareAddr) { seen <- ip })
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	arpc := fn.arpConn("eth0")
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	arpc.in <- arpFrame(t, broadcastMAC, otherMAC, arp.OperationRequest, otherMAC, vip, zero, vip)
	if ip := recv(t, seen, "a conflict"); ip != vip {
		t.Errorf("conflict on %s", ip)
	}
	a.Quiesce()
	arpc.in <- arpFrame(t, broadcastMAC, clientMAC, arp.OperationRequest, clientMAC, vip, zero, vip)
	none(t, seen, "a conflict during a handover")
}

func TestUsable(t *testing.T) {
	a, _ := newTestAnnouncer(t)
	flags := net.FlagUp | net.FlagRunning
	a.interfaceByName = func(name string) (*net.Interface, error) {
		switch name {
		case "up":
			return &net.Interface{Name: name, Index: 1, HardwareAddr: ourMAC, Flags: flags}, nil
		case "down":
			return &net.Interface{Name: name, Index: 2, HardwareAddr: ourMAC}, nil
		case "nocarrier":
			return &net.Interface{Name: name, Index: 3, HardwareAddr: ourMAC, Flags: net.FlagUp}, nil
		}
		return nil, errors.New("no such network interface")
	}
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"up", true}, {"down", false}, {"nocarrier", false}, {"missing", false}} {
		if err := a.Usable(tt.name); (err == nil) != tt.ok {
			t.Errorf("Usable(%s) = %v, want usable %v", tt.name, err, tt.ok)
		}
	}
	// A socket that cannot be opened makes an interface unusable, and
	// says so on HealthChanges.
	a.listenARP = func(*net.Interface) (net.PacketConn, error) { return nil, errors.New("operation not permitted") }
	select {
	case <-a.HealthChanges():
	default:
	}
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("up")}); err == nil {
		t.Fatal("SetAnnouncements with a failing socket: no error")
	}
	if err := a.Usable("up"); err == nil {
		t.Error("an interface whose ARP socket failed is usable")
	}
	recv(t, a.HealthChanges(), "a health change")
	a.listenARP = func(*net.Interface) (net.PacketConn, error) { return newFakeARP(), nil }
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("up")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Usable("up"); err != nil {
		t.Errorf("after the socket opened: %v", err)
	}
}
