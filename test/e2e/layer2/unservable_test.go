package layer2

import (
	"net"
	"os"
	"testing"
	"time"
)

// dataPool answers on a second interface, data0, plugged into the same
// switch: gossip and the API stay on eth0, so breaking data0 leaves the
// owner a live member that cannot announce.
const dataPool = `- name: data
  protocol: layer2
  interfaces: [data0]
  addresses:
  - 203.0.113.220-203.0.113.221
`

// dataVIP is in dataPool, next to the lab's usual layer-2 pool.
const dataVIP = "203.0.113.220"

// useDataPorts gives every node a data0 port on the switch, puts dataVIP
// on its lo and adds dataPool to the cloud-config; call it before the
// announcers start. It returns each node's data0 MAC.
func (tb *testbed) useDataPorts() map[string]net.HardwareAddr {
	tb.T.Helper()
	macs := map[string]net.HardwareAddr{}
	for _, h := range tb.Lab.Nodes() {
		mac, err := tb.Lab.AddPort(tb.Ctx, h, "data0")
		if err != nil {
			tb.T.Fatal(err)
		}
		macs[h.Name()] = mac
		if err := h.AddVIP(dataVIP); err != nil {
			tb.T.Fatal(err)
		}
	}
	if err := os.WriteFile(tb.ConfigFile, []byte(cloudConfig+dataPool), 0o644); err != nil {
		tb.T.Fatal(err)
	}
	return macs
}

// waitServedVia waits until the client reaches node through ip and its
// neighbour entry for ip holds mac; it returns how long it took.
func (tb *testbed) waitServedVia(ip, node string, mac net.HardwareAddr) time.Duration {
	tb.T.Helper()
	start := time.Now()
	tb.Eventually(ip+" served by "+node+" via "+mac.String(), func() bool {
		got, err := tb.get(ip)
		if err != nil || got != node {
			return false
		}
		m, _, err := tb.Lab.Client().Neighbor(ip)
		return err == nil && m == mac.String()
	})
	return time.Since(start)
}

// setLink sets a node's interface up or down.
func (tb *testbed) setLink(node, iface string, up bool) {
	tb.T.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if _, err := tb.Lab.Host(node).IP(tb.Ctx, "link set "+iface+" "+state); err != nil {
		tb.T.Fatal(err)
	}
}

// TestOwnerThatCannotAnnounceHandsOver takes the owner's data interface
// down while its announcer stays a live member: the owner tells the
// others it cannot serve the pool, and the next node takes the IP over
// within a failover time, instead of leaving it unanswered. When the
// interface comes back, so does the IP.
func TestOwnerThatCannotAnnounceHandsOver(t *testing.T) {
	tb := newTestbed(t)
	macs := tb.useDataPorts()
	tb.startAll()
	tb.createService("data", cluster, dataVIP)
	o := expectedOwner(dataVIP, allNodes...)
	next := expectedOwner(dataVIP, without(allNodes, o)...)
	tb.waitServedVia(dataVIP, o, macs[o])

	start := time.Now()
	tb.setLink(o, "data0", false)
	took := tb.firstAnswerFrom(dataVIP, next, start)
	// BenchmarkUnservableTakeover measures this.
	t.Logf("data0 of %s down: %s served by %s after %v", o, dataVIP, next, took)
	tb.waitServedVia(dataVIP, next, macs[next])
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, 3)
	}

	tb.setLink(o, "data0", true)
	back := tb.waitServedVia(dataVIP, o, macs[o])
	t.Logf("data0 of %s up: served by it again after %v", o, back)
	tb.noConflicts(tb.Lab.Nodes()...)
}
