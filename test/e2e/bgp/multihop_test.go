package bgp

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// farBGPD is bgpd.conf for the far router: it accepts the nodes, two hops
// away through the router, as eBGP multihop neighbors with BFD (multihop,
// RFC 5883) and a 30 s hold time, so that a node dropped faster was
// dropped by BFD.
func farBGPD() string {
	var b strings.Builder
	b.WriteString("hostname far\n")
	fmt.Fprintf(&b, "router bgp %d\n", lab.RouterASN)
	fmt.Fprintf(&b, " bgp router-id %s\n", lab.FarRouterAddr)
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n")
	b.WriteString(" neighbor NODES peer-group\n")
	fmt.Fprintf(&b, " neighbor NODES remote-as %d\n", lab.NodeASN)
	b.WriteString(" neighbor NODES passive\n neighbor NODES ebgp-multihop 255\n")
	b.WriteString(" neighbor NODES timers 10 30\n neighbor NODES timers connect 1\n")
	b.WriteString(" neighbor NODES bfd\n neighbor NODES bfd profile fast\n")
	fmt.Fprintf(&b, " bgp listen range %s peer-group NODES\n", lab.LANv4)
	b.WriteString(" address-family ipv4 unicast\n  neighbor NODES activate\n  maximum-paths 8\n exit-address-family\n")
	return b.String()
}

// farPeer is the nodes' peer entry for the far router.
func farPeer(multihop bool) string {
	s := "bfd-profiles:\n- name: fast\n  receive-interval: 100\n  transmit-interval: 100\n  detect-multiplier: 3\n" +
		"peers:\n- peer-address: " + lab.FarRouterAddr.String() + "\n  peer-asn: 64512\n  my-asn: 64513\n" +
		"  hold-time: 30s\n  keepalive-time: 10s\n  bfd-profile: fast\n"
	if multihop {
		s += "  ebgp-multihop: true\n"
	}
	return s
}

// TestEBGPMultihop proves ebgp-multihop against a router two hops away
// (the far router, behind the lab's router): node1 and node2, with the
// option, establish their sessions, run multihop BFD with it, and their
// routes reach it; node3, without the option, sends TTL-1 packets that die
// at the router, never establishes, and says why. A silent node1 is then
// dropped by multihop BFD, well within the 30 s hold time.
func TestEBGPMultihop(t *testing.T) {
	tb := newTestbed(t, options{farRouter: true})
	far, err := tb.Lab.StartFRRConfig(tb.Ctx, lab.FRRConfig{Host: tb.Lab.Far(), BGPD: farBGPD(), BFD: true, BFDD: bfdBFDD})
	if err != nil {
		t.Fatal(err)
	}
	farNeighbors := func() map[string]string {
		var out map[string]neighborDetail
		if err := far.VTYJSON("show bgp neighbors json", &out); err != nil {
			t.Logf("far: show bgp neighbors: %v", err)
		}
		states := map[string]string{}
		for a, d := range out {
			states[a] = d.State
		}
		return states
	}
	for _, h := range tb.Lab.Nodes() {
		tb.StartAnnouncerWith(h, tb.WriteConfig(h.Name()+".yaml", farPeer(h.Name() != "node3")+poolConfig))
	}
	n1, n2, n3 := tb.Lab.Host("node1"), tb.Lab.Host("node2"), tb.Lab.Host("node3")
	var states map[string]string
	tb.Eventuallyf(func() string { return fmt.Sprintf("node1 and node2 established with the far router: %v", states) }, func() bool {
		states = farNeighbors()
		return states[n1.IPv4().String()] == "Established" && states[n2.IPv4().String()] == "Established"
	})

	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10")
	prefix := hostPrefix("198.51.100.10")
	want := tb.nodeAddrs("198.51.100.10", "node1", "node2")
	farNexthops := func() []string {
		var out struct {
			Paths []bgpPath `json:"paths"`
		}
		if err := far.VTYJSON("show bgp ipv4 unicast "+prefix+" json", &out); err != nil {
			return nil
		}
		var hops []string
		for _, p := range out.Paths {
			for _, nh := range p.Nexthops {
				hops = append(hops, nh.IP)
			}
		}
		slices.Sort(hops)
		return hops
	}
	var hops []string
	tb.Eventuallyf(func() string { return fmt.Sprintf("%s at the far router via %v, has %v", prefix, want, hops) }, func() bool {
		hops = farNexthops()
		return slices.Equal(hops, want)
	})

	// node3, without ebgp-multihop, never got through, and says so.
	if s := farNeighbors()[n3.IPv4().String()]; s == "Established" {
		t.Errorf("node3 established with the far router without ebgp-multihop")
	}
	failures := `baremetal_announcer_bgp_session_failures_total{peer="` + lab.FarRouterAddr.String() + `"`
	tb.Eventuallyf(func() string {
		return "node3 counts its failed session; metrics:\n" + grepLines(tb.Metrics(n3), "baremetal_announcer_bgp_session")
	}, func() bool { return tb.hasMetric(n3, failures) })
	t.Logf("node3 without ebgp-multihop: %s", grepLines(tb.Metrics(n3), failures))
	if l := grepLines(tb.Announcers["node3"].Log(), "set ebgp-multihop"); l == "" {
		t.Error("node3's log does not suggest ebgp-multihop")
	} else {
		t.Logf("node3's log: %s", l)
	}

	// Multihop BFD: up with node1, then node1 goes silent.
	var bfd []bfdPeer
	tb.Eventuallyf(func() string { return fmt.Sprintf("far's multihop BFD with node1 up: %+v", bfd) }, func() bool {
		bfd = nil
		if err := far.VTYJSON("show bfd peers json", &bfd); err != nil {
			return false
		}
		return slices.ContainsFunc(bfd, func(p bfdPeer) bool { return p.Peer == n1.IPv4().String() && p.Multihop && p.Status == "up" })
	})
	start := time.Now()
	tb.freeze("node1")
	var gone time.Duration
	for time.Since(start) < bfdHoldTime*2/3 {
		if h := farNexthops(); len(h) > 0 && !slices.Contains(h, n1.IPv4().String()) {
			gone = time.Since(start)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gone == 0 {
		t.Fatalf("silent node1 still a next hop at the far router %v later: multihop BFD did not act", bfdHoldTime*2/3)
	}
	t.Logf("silent node1: next hop gone from the far router's BGP table after %v (multihop BFD 100 ms x 3, hold time %v)", gone.Round(time.Millisecond), bfdHoldTime)
}
