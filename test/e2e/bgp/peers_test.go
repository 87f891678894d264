package bgp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// neighborDetail is what FRR says of one session.
type neighborDetail struct {
	State          string `json:"bgpState"`
	RemoteRouterID string `json:"remoteRouterId"`
	HoldMsecs      int    `json:"bgpTimerHoldTimeMsecs"`
	KeepaliveMsecs int    `json:"bgpTimerKeepAliveIntervalMsecs"`
	HostForeign    string `json:"hostForeign"`
}

func (tb *testbed) neighborDetails() map[string]neighborDetail {
	var out map[string]neighborDetail
	if err := tb.showJSON("bgpd", "show bgp neighbors json", &out); err != nil {
		tb.T.Logf("show bgp neighbors: %v", err)
	}
	return out
}

// TestPeerOptions proves the peer options against FRR, whose peer group
// now offers timers 30 90 instead of the lab's forced 1 3:
//   - hold-time 9s and keepalive-time 3s are what FRR negotiates;
//   - node1 dials from source-address 203.0.113.21, a second address of
//     its own, which FRR sees as the neighbor and as the route's next hop;
//   - node1's router-id is what FRR sees, and the others' the default, the
//     node's IPv4 address;
//   - the IPv6 peer has node-selectors that only node1 matches: only node1
//     dials it, the others never try.
func TestPeerOptions(t *testing.T) {
	bgpd := strings.Replace(defaultBGPD(), " neighbor NODES timers 1 3\n", " neighbor NODES timers 30 90\n", 1)
	tb := newTestbed(t, options{bgpd: bgpd})
	n1 := tb.Lab.Host("node1")
	if out, err := n1.IP(tb.Ctx, "addr add 203.0.113.21/24 dev eth0"); err != nil {
		t.Fatalf("second address on node1: %v: %s", err, out)
	}
	tb.LabelNode("node1", "rack", "a")

	peer := func(extra string) string {
		return "- peer-address: 203.0.113.1\n  peer-asn: 64512\n  my-asn: 64513\n  hold-time: 9s\n  keepalive-time: 3s\n" + extra
	}
	v6 := "- peer-address: 2001:db8:1::1\n  peer-asn: 64512\n  my-asn: 64513\n  hold-time: 9s\n  keepalive-time: 3s\n" +
		"  node-selectors:\n  - match-labels: {rack: a}\n"
	configs := map[string]string{
		"node1": "peers:\n" + peer("  source-address: 203.0.113.21\n  router-id: 192.0.2.71\n") + v6,
		"node2": "peers:\n" + peer("") + v6,
		"node3": "peers:\n" + peer("") + v6,
	}
	for _, h := range tb.Lab.Nodes() {
		tb.StartAnnouncerWith(h, tb.WriteConfig(h.Name()+".yaml", configs[h.Name()]+poolConfig))
	}
	for _, a := range []string{"203.0.113.21", "203.0.113.12", "203.0.113.13", "2001:db8:1::11"} {
		tb.Eventually("FRR session with "+a, func() bool { return tb.neighbors()[a] == "Established" })
	}
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	tb.Eventually("route via 203.0.113.21, .12, .13", func() bool {
		got := tb.bgpNexthops(hostPrefix("198.51.100.10"))
		return fmt.Sprint(got) == "[203.0.113.12 203.0.113.13 203.0.113.21]"
	})
	tb.waitRoute("2001:db8:2::10", "node1")

	nd := tb.neighborDetails()
	raw, _ := tb.show("bgpd", "show bgp neighbors 203.0.113.21 json")
	want := map[string]string{"203.0.113.21": "192.0.2.71", "203.0.113.12": "203.0.113.12", "203.0.113.13": "203.0.113.13"}
	for addr, id := range want {
		d := nd[addr]
		if d.RemoteRouterID != id {
			t.Errorf("FRR sees router ID %q from %s, want %s", d.RemoteRouterID, addr, id)
		}
		if d.HoldMsecs != 9000 || d.KeepaliveMsecs != 3000 {
			t.Errorf("FRR's negotiated timers with %s: hold %d ms, keepalive %d ms; want 9000 and 3000", addr, d.HoldMsecs, d.KeepaliveMsecs)
		}
	}
	if _, ok := nd["203.0.113.11"]; ok {
		t.Errorf("node1 dialled from 203.0.113.11, not its source-address")
	}
	if t.Failed() {
		t.Logf("FRR on 203.0.113.21:\n%s", raw)
	}
	t.Logf("FRR: node1 from %s, router ID %s, hold %d ms, keepalive %d ms", "203.0.113.21", nd["203.0.113.21"].RemoteRouterID,
		nd["203.0.113.21"].HoldMsecs, nd["203.0.113.21"].KeepaliveMsecs)

	// node2 and node3 never dial the IPv6 peer: FRR has never seen them
	// there, and they have no session with it. Wait a few connect
	// intervals for an attempt that should not come.
	time.Sleep(3 * time.Second)
	nd = tb.neighborDetails()
	for _, h := range []string{"node2", "node3"} {
		a := tb.Lab.Host(h).IPv6().String()
		if _, ok := nd[a]; ok {
			t.Errorf("%s dialled the IPv6 peer, whose node-selectors it does not match", h)
		}
		if m := tb.Metrics(tb.Lab.Host(h)); strings.Contains(m, `peer="2001:db8:1::1"`) {
			t.Errorf("%s has a session with the IPv6 peer:\n%s", h, grepLines(m, "2001:db8:1::1"))
		}
	}
}

// defaultBGPD is the lab's bgpd.conf.
func defaultBGPD() string { return lab.DefaultBGPDConf("") }
