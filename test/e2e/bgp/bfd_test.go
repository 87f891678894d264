package bgp

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// bfdHoldTime is the BGP hold time of the BFD tests: long enough that a
// node dropped within it was dropped by BFD, not by BGP.
const bfdHoldTime = 30 * time.Second

// bfdPeersConfig peers every node with the router over both families with
// a 30 s hold time and BFD at 100 ms x 3 (detection time 0.3 s).
const bfdPeersConfig = `bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  detect-multiplier: 3
peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 30s
  keepalive-time: 10s
  bfd-profile: fast
- peer-address: 2001:db8:1::1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 30s
  keepalive-time: 10s
  bfd-profile: fast
`

// bfdBGPD is the lab's bgpd.conf with a 30 s hold time and BFD on every
// node's session, with bfdd's profile "fast".
func bfdBGPD() string {
	return strings.Replace(lab.DefaultBGPDConf(""), " neighbor NODES timers 1 3\n",
		" neighbor NODES timers 10 30\n neighbor NODES bfd\n neighbor NODES bfd profile fast\n", 1)
}

// bfdBFDD is bfdd.conf with the profile the router uses for the nodes: the
// same 100 ms x 3 as theirs.
const bfdBFDD = `bfd
 profile fast
  transmit-interval 100
  receive-interval 100
  detect-multiplier 3
 !
!
`

// bfdPeer is one of FRR's BFD sessions.
type bfdPeer struct {
	Peer      string `json:"peer"`
	Status    string `json:"status"`
	Diag      string `json:"diagnostic"`
	RemDiag   string `json:"remote-diagnostic"`
	Multihop  bool   `json:"multihop"`
	RxMin     int    `json:"receive-interval"`
	TxMin     int    `json:"transmit-interval"`
	RemoteRx  int    `json:"remote-receive-interval"`
	RemoteTx  int    `json:"remote-transmit-interval"`
	DetectMul int    `json:"detect-multiplier"`
}

// bfdPeers returns FRR's BFD sessions by peer address.
func (tb *testbed) bfdPeers() map[string]bfdPeer {
	var peers []bfdPeer
	// Through vtysh: bfdd's own vty socket does not know the command.
	if err := tb.frr.VTYJSON("show bfd peers json", &peers); err != nil {
		tb.T.Logf("show bfd peers: %v", err)
		return nil
	}
	out := map[string]bfdPeer{}
	for _, p := range peers {
		out[p.Peer] = p
	}
	return out
}

// waitBFDUp waits until FRR's BFD session with every node is up, over both
// families.
func (tb *testbed) waitBFDUp() {
	tb.T.Helper()
	var peers map[string]bfdPeer
	tb.Eventuallyf(func() string { return fmt.Sprintf("FRR's BFD sessions with the 3 nodes up: %+v", peers) }, func() bool {
		peers = tb.bfdPeers()
		for _, h := range tb.Lab.Nodes() {
			for _, a := range []string{h.IPv4().String(), h.IPv6().String()} {
				if peers[a].Status != "up" {
					return false
				}
			}
		}
		return true
	})
}

// freeze stops (SIGSTOP) the announcer of node: its TCP sessions stay
// open, nothing is sent; the node has gone silent. thaw (SIGCONT) undoes
// it, and the test's cleanup thaws it anyway.
func (tb *testbed) freeze(node string) {
	tb.T.Helper()
	p := tb.Announcers[node]
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		tb.T.Fatal(err)
	}
	tb.T.Cleanup(func() { _ = p.Signal(syscall.SIGCONT) })
}

func (tb *testbed) thaw(node string) {
	tb.T.Helper()
	if err := tb.Announcers[node].Signal(syscall.SIGCONT); err != nil {
		tb.T.Fatal(err)
	}
}

// nexthopGone waits, at most within, until addr is no next hop of prefix
// in FRR's RIB and in the router's kernel, while others still are, and
// returns when each happened after start (0 if not within).
func (tb *testbed) nexthopGone(prefix, addr string, start time.Time, within time.Duration) (rib, kernel time.Duration) {
	for time.Since(start) < within && (rib == 0 || kernel == 0) {
		if r := tb.ribNexthops(prefix); rib == 0 && len(r) > 0 && !slices.Contains(r, addr) {
			rib = time.Since(start)
		}
		if k := tb.kernelNexthops(prefix); kernel == 0 && len(k) > 0 && !slices.Contains(k, addr) {
			kernel = time.Since(start)
		}
	}
	return rib, kernel
}

// TestBFDDropsSilentNode is the blind spot BFD closes: a node goes silent
// (its announcer frozen, its TCP sessions left open) and the router drops
// its next hop from its RIB and kernel within BFD's detection time (0.3 s),
// not after the 30 s hold time. Thawed, the node comes back; it counted
// the flap and said why. SIGTERM still drains first with BFD on.
func TestBFDDropsSilentNode(t *testing.T) {
	tb := newTestbed(t, options{cloudConfig: bfdPeersConfig + poolConfig, bgpd: bfdBGPD(), bfdd: bfdBFDD})
	tb.startAll()
	tb.waitBFDUp()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	all := []string{"node1", "node2", "node3"}
	tb.waitRoute("198.51.100.10", all...)
	tb.waitRoute("2001:db8:2::10", all...)
	n1 := tb.Lab.Host("node1")
	state := `baremetal_announcer_bfd_session_state{peer="203.0.113.1",state="up"}`
	tb.Eventually("node1 reports BFD up", func() bool { return tb.hasMetric(n1, state) })
	p := tb.bfdPeers()[n1.IPv4().String()]
	t.Logf("FRR's BFD session with node1: %+v", p)
	if p.RemoteTx != 100 || p.RemoteRx != 100 {
		t.Errorf("FRR sees node1's intervals tx %d ms rx %d ms, want 100 and 100", p.RemoteTx, p.RemoteRx)
	}

	start := time.Now()
	tb.freeze("node1")
	rib, kernel := tb.nexthopGone(hostPrefix("198.51.100.10"), n1.IPv4().String(), start, bfdHoldTime*2/3)
	if rib == 0 || kernel == 0 {
		t.Fatalf("node1 still a next hop %v after it went silent (RIB gone after %v, kernel after %v): BFD did not act", bfdHoldTime*2/3, rib, kernel)
	}
	t.Logf("silent node1: next hop gone from FRR's RIB after %v, from the router's kernel after %v (BFD 100 ms x 3; hold time %v)",
		rib.Round(time.Millisecond), kernel.Round(time.Millisecond), bfdHoldTime)
	tb.waitRoute("2001:db8:2::10", "node2", "node3")
	t.Logf("FRR's BFD session with node1 after: %+v", tb.bfdPeers()[n1.IPv4().String()])

	tb.thaw("node1")
	took := tb.waitRoute("198.51.100.10", all...)
	t.Logf("node1 thawed: back in the ECMP set %v later", took.Round(time.Millisecond))
	tb.waitRoute("2001:db8:2::10", all...)
	tb.waitBFDUp()
	// node1 saw its own BFD session time out when it woke, reset BGP and
	// said so.
	flaps := `baremetal_announcer_bfd_session_flaps_total{peer="203.0.113.1"`
	tb.Eventuallyf(func() string {
		return "node1 counts its BFD flap; metrics:\n" + grepLines(tb.Metrics(n1), "baremetal_announcer_bfd")
	}, func() bool { return tb.hasMetric(n1, flaps) })
	if l := grepLines(tb.Announcers["node1"].Log(), "BFD session down"); l == "" {
		t.Error("node1's log has no \"BFD session down\"")
	} else {
		t.Logf("node1's log: %s", l)
	}

	// SIGTERM drains first, BFD or not: the routes go while the BGP
	// session is still established.
	tb.drainsFirst("node2", hostPrefix("198.51.100.10"))
	if err := tb.Announcers["node2"].Wait(tb.Ctx); err != nil {
		t.Errorf("announcer after SIGTERM: %v", err)
	}
}

// TestBFDRouterWithoutBFD: the nodes have a bfd-profile but the router
// runs no bfdd. The BGP session works, and each node says in its log and
// metrics that the router answers no BFD, so the session is unprotected.
func TestBFDRouterWithoutBFD(t *testing.T) {
	tb := newTestbed(t, options{cloudConfig: bfdPeersConfig + poolConfig})
	n1 := tb.Lab.Host("node1")
	tb.StartAnnouncer(n1)
	tb.waitSession(n1.IPv4(), true)
	sample := `baremetal_announcer_bgp_session_failures_total{peer="203.0.113.1",reason="bfd_no_answer"}`
	tb.Eventuallyf(func() string {
		return "node1 reports bfd_no_answer; metrics:\n" + grepLines(tb.Metrics(n1), "baremetal_announcer_b")
	}, func() bool { return tb.hasMetric(n1, sample) })
	if !tb.hasMetric(n1, `baremetal_announcer_bfd_session_state{peer="203.0.113.1",state="down"}`) {
		t.Errorf("node1's BFD state is not down:\n%s", grepLines(tb.Metrics(n1), "baremetal_announcer_bfd"))
	}
	l := grepLines(tb.Announcers["node1"].Log(), "BFD: the router does not answer")
	if !strings.Contains(l, "bfd_no_answer") {
		t.Fatalf("node1's log does not say the router answers no BFD:\n%s", tb.Announcers["node1"].LogTail(3000))
	}
	t.Logf("node1's log: %s", l)
	if tb.neighbors()[n1.IPv4().String()] != "Established" {
		t.Error("the BGP session did not stay up without BFD")
	}
}
