package layer2

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// TestNeighborUnreachabilityDetection is the story of MetalLB #2920: a
// switch or router that has the VIP's MAC cached re-checks it now and then
// with a unicast neighbor solicitation, sent from its global address to the
// VIP itself at the cached MAC. If nobody answers, it drops the entry and
// traffic to the VIP stalls until it resolves again.
//
// Here the client plays that switch. Probes crafted with mdlayher/ndp from
// the client's namespace (to the owner's MAC, from the client's global and
// link-local addresses) are answered by the owner only, with a solicited,
// overriding advertisement carrying the owner's MAC, sent back to the
// prober from an address of the owner's interface of the prober's scope:
// never from the VIP, which is on lo. A probe at another node's MAC (a
// stale entry) is not confirmed. Then the client's own kernel does
// neighbor unreachability detection on a stale entry and finds the owner
// reachable.
func TestNeighborUnreachabilityDetection(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	const v6 = "2001:db8:1::200"
	vip := netip.MustParseAddr(v6)
	tb.createService("web", cluster, v6)
	ownerName := expectedOwner(v6, allNodes...)
	tb.waitServedBy(v6, ownerName)
	owner, client := tb.Lab.Host(ownerName), tb.Lab.Client()
	other := tb.Lab.Host(without(allNodes, ownerName)[0])
	ownerLL := linkLocal(t, owner)
	clientLL := linkLocal(t, client)
	// The takeover's unsolicited advertisements (0 to 3 s) are over, so
	// what the client hears next are answers.
	time.Sleep(3 * time.Second)

	p := newProber(t, client)
	defer p.Close()
	tests := []struct {
		name    string
		at      *lab.Host  // whose MAC the probe is sent to; nil: multicast
		src     netip.Addr // the probe's source
		wantSrc netip.Addr // the advertisement's source; invalid: no answer
		wantDst netip.Addr // and destination
		wantS   bool       // Solicited flag
	}{
		{name: "NUD probe from the client's global address", at: owner, src: client.IPv6(),
			wantSrc: owner.IPv6(), wantDst: client.IPv6(), wantS: true},
		{name: "NUD probe from the client's link-local address", at: owner, src: clientLL,
			wantSrc: ownerLL, wantDst: clientLL, wantS: true},
		{name: "NUD probe at another node's MAC is not confirmed", at: other, src: client.IPv6()},
		{name: "multicast solicitation from the client's global address", src: client.IPv6(),
			wantSrc: owner.IPv6(), wantDst: client.IPv6(), wantS: true},
		{name: "multicast solicitation from the client's link-local address", src: clientLL,
			wantSrc: ownerLL, wantDst: clientLL, wantS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := vip
			if tt.at != nil {
				// A neighbor entry makes the client's kernel send the
				// probe to that MAC, as a cached entry does.
				if err := client.SetNeighbor(v6, tt.at.MAC()); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := client.DelNeighbor(v6); err != nil {
						t.Error(err)
					}
				}()
			} else {
				dst, _ = ndp.SolicitedNodeMulticast(vip)
			}
			p.solicit(tt.src, dst, vip)
			got := p.advertisements(vip, time.Second)
			if !tt.wantSrc.IsValid() {
				if len(got) > 0 {
					t.Fatalf("answered: %v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got advertisements %v, want one from %s", got, ownerName)
			}
			want := advertisement{src: tt.wantSrc, dst: tt.wantDst, hopLimit: 255, mac: owner.MAC().String(), solicited: tt.wantS, override: true}
			if got[0] != want {
				t.Errorf("got %v\nwant %v", got[0], want)
			}
			if got[0].src == vip {
				t.Error("advertisement sent from the VIP, which is on lo, not on the interface")
			}
		})
	}

	t.Run("the client kernel's own NUD finds the owner reachable", func(t *testing.T) {
		// Probe a stale entry after 1 s instead of 5 s; three unicast
		// probes a second apart, then the entry fails.
		if err := client.SetSysctl("net.ipv6.neigh.eth0.delay_first_probe_time", "1"); err != nil {
			t.Fatal(err)
		}
		if err := client.SetSysctl("net.ipv6.neigh.eth0.mcast_resolicit", "0"); err != nil {
			t.Fatal(err)
		}
		if _, err := client.IP(tb.Ctx, fmt.Sprintf("neigh replace %s lladdr %s dev eth0 nud stale", v6, owner.MAC())); err != nil {
			t.Fatal(err)
		}
		// Traffic (an echo request: ICMP confirms nothing upward) makes
		// the kernel probe the stale entry with a unicast solicitation
		// from its global address.
		if err := client.Ping(tb.Ctx, v6, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		var mac, state string
		tb.Eventuallyf(func() string { return fmt.Sprintf("client's entry for %s REACHABLE (now %s %s)", v6, mac, state) }, func() bool {
			var err error
			mac, state, err = client.Neighbor(v6)
			if err != nil {
				t.Fatal(err)
			}
			if state == "FAILED" || state == "INCOMPLETE" {
				t.Fatalf("NUD failed: entry %s %s", mac, state)
			}
			return state == "REACHABLE"
		})
		if mac != owner.MAC().String() {
			t.Errorf("entry at %s, want the owner's %s", mac, owner.MAC())
		}
	})
}

// linkLocal returns the link-local address of h's eth0.
func linkLocal(t *testing.T, h *lab.Host) netip.Addr {
	t.Helper()
	var out netip.Addr
	if err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.IsLinkLocalUnicast() {
					out = ip
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !out.IsValid() {
		t.Fatalf("%s has no link-local address on eth0", h.Name())
	}
	return out
}

// prober sends neighbor solicitations from the client and reads the
// advertisements that come back, with their IP header fields.
type prober struct {
	t       *testing.T
	pc      *ipv6.PacketConn
	ifIndex int
	mac     net.HardwareAddr
}

func newProber(t *testing.T, client *lab.Host) *prober {
	p := &prober{t: t, mac: client.MAC()}
	if err := client.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p.ifIndex = ifi.Index
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		p.pc = c.IPv6PacketConn()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := p.pc.SetICMPFilter(&f); err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetControlMessage(ipv6.FlagDst|ipv6.FlagHopLimit|ipv6.FlagInterface, true); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *prober) Close() { p.pc.Close() }

// solicit sends a neighbor solicitation for target from src to dst (the
// target itself for a unicast probe, or its solicited-node group), with
// the client's MAC as source link-layer option. The zone is the numeric
// interface index: Go's zone-name cache is process-wide and every lab
// host has an eth0.
func (p *prober) solicit(src, dst, target netip.Addr) {
	p.t.Helper()
	msg, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: p.mac},
	}})
	if err != nil {
		p.t.Fatal(err)
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: src.AsSlice(), IfIndex: p.ifIndex}
	if _, err := p.pc.WriteTo(msg, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: strconv.Itoa(p.ifIndex)}); err != nil {
		p.t.Fatalf("sending a solicitation from %s to %s: %v", src, dst, err)
	}
}

// advertisement is what the client saw of one neighbor advertisement.
type advertisement struct {
	src, dst            netip.Addr
	hopLimit            int
	mac                 string // target link-layer address
	solicited, override bool
}

func (a advertisement) String() string {
	return fmt.Sprintf("NA %s -> %s hop limit %d, target at %s, solicited %v, override %v", a.src, a.dst, a.hopLimit, a.mac, a.solicited, a.override)
}

// advertisements collects, for wait, the advertisements for target that
// the client receives, less unsolicited ones to all nodes: those are an
// owner's takeover announcements (repeated whenever membership changes,
// which a loaded machine provokes), not answers.
func (p *prober) advertisements(target netip.Addr, wait time.Duration) []advertisement {
	p.t.Helper()
	var out []advertisement
	buf := make([]byte, 1500)
	if err := p.pc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		p.t.Fatal(err)
	}
	for {
		n, cm, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return out
		}
		m, err := ndp.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != target || cm == nil || cm.IfIndex != p.ifIndex {
			continue
		}
		a := advertisement{hopLimit: cm.HopLimit, solicited: na.Solicited, override: na.Override}
		if ip, ok := from.(*net.IPAddr); ok {
			a.src, _ = netip.AddrFromSlice(ip.IP)
		}
		a.dst, _ = netip.AddrFromSlice(cm.Dst)
		if !na.Solicited && a.dst.IsMulticast() {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				a.mac = lla.Addr.String()
			}
		}
		if na.Router {
			a.mac += " (router flag set)"
		}
		out = append(out, a)
	}
}
