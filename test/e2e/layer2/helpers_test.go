package layer2

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// The cloud-config of every test: the lab's layer-2 pool, IPv4 and IPv6.
const cloudConfig = `address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.210
  - 2001:db8:1::200-2001:db8:1::20f
`

// vips are the pool addresses that every node serves on lo, as kube-proxy
// would for every Service IP.
var vips = []string{
	"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "203.0.113.205",
	"2001:db8:1::200", "2001:db8:1::201",
}

// Bounds for the waits. Generous for a loaded 2-core machine; the tests log
// the actual times.
const (
	settleTimeout = 20 * time.Second
	requestWait   = 300 * time.Millisecond
	pollEvery     = 20 * time.Millisecond
)

// testbed is one test's cluster: a lab of three nodes and a client, Node
// objects for the nodes, a namespace for Services, and an announcer per
// node.
type testbed struct {
	*e2e.Cluster
	// stale lists the IPs for which the benchmarks' settle found the
	// client stuck on a node that no longer announces them.
	stale []string
}

func newTestbed(t testing.TB) *testbed {
	return newTestbedWithin(t, 5*time.Minute)
}

// newTestbedWithin is newTestbed for a scenario that needs longer than a
// test's five minutes, such as a benchmark's many trials.
func newTestbedWithin(t testing.TB, d time.Duration) *testbed {
	return &testbed{Cluster: e2e.New(t, e2e.Options{
		Lab:             lab.Options{Client: true, IPv6: true},
		CloudConfig:     cloudConfig,
		VIPs:            vips,
		NamespacePrefix: "e2e-layer2-",
		AnnouncerArgs:   []string{"--profiling"},
		Within:          d,
		SettleTimeout:   settleTimeout,
		PollEvery:       pollEvery,
		LogTail:         6000,
	})}
}

// startAll starts an announcer on every node and waits until each is
// running and sees all three.
func (tb *testbed) startAll() {
	tb.T.Helper()
	for _, h := range tb.Lab.Nodes() {
		tb.StartAnnouncer(h)
	}
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, len(tb.Lab.Nodes()))
	}
}

// waitMembers waits until the announcer of h reports n members on its
// metrics endpoint, which also means it runs.
func (tb *testbed) waitMembers(h *lab.Host, n int) {
	tb.T.Helper()
	want := fmt.Sprintf("baremetal_announcer_membership_members %d", n)
	tb.Eventually(h.Name()+" sees "+fmt.Sprint(n)+" members", func() bool {
		body, err := tb.Scrape(h, "/metrics", time.Second)
		return err == nil && strings.Contains(body, want)
	})
}

// createService creates a LoadBalancer Service and writes its status IPs,
// as the cloud-controller-manager would.
func (tb *testbed) createService(name string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	tb.T.Helper()
	return tb.CreateService(e2e.LoadBalancer(name, etp), ips...)
}

// expectedOwner is the owner every announcer must agree on.
func expectedOwner(ip string, nodes ...string) string {
	return owner.Pick(netip.MustParseAddr(ip), nodes)
}

// get asks the VIP from the client and returns the node that answered.
func (tb *testbed) get(ip string) (string, error) {
	body, err := tb.Lab.Client().HTTPGet(tb.Ctx, e2e.URL(ip), requestWait)
	return strings.TrimSpace(body), err
}

// waitServedBy waits until the client reaches node through ip and its
// neighbour entry for ip holds node's MAC; it returns how long it took.
func (tb *testbed) waitServedBy(ip, node string) time.Duration {
	tb.T.Helper()
	start := time.Now()
	mac := tb.Lab.Host(node).MAC().String()
	tb.Eventually(ip+" served by "+node, func() bool {
		got, err := tb.get(ip)
		if err != nil || got != node {
			return false
		}
		m, _, err := tb.Lab.Client().Neighbor(ip)
		return err == nil && m == mac
	})
	return time.Since(start)
}

// answerers returns who answers ARP/NDP for ip, asking from the client.
func (tb *testbed) answerers(ip string) []string {
	tb.T.Helper()
	macs, err := tb.Lab.Client().Arping(tb.Ctx, ip, 300*time.Millisecond)
	if err != nil {
		tb.T.Fatal(err)
	}
	return tb.names(macs)
}

// names maps MACs to lab host names.
func (tb *testbed) names(macs []net.HardwareAddr) []string {
	var out []string
	for _, m := range macs {
		name := m.String()
		for _, h := range tb.Lab.Hosts() {
			if h.MAC().String() == m.String() {
				name = h.Name()
			}
		}
		out = append(out, name)
	}
	return out
}

// events returns the messages of events with reason on the Service.
func (tb *testbed) events(svc, reason string) []string {
	list, err := tb.CS.CoreV1().Events(tb.NS).List(tb.Ctx, metav1.ListOptions{})
	if err != nil {
		tb.T.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == svc && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}
