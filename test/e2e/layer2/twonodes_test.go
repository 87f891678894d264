package layer2

import (
	"slices"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// TestTwoNodes is the split-brain guard's two-node rule (package quorum):
// when node2 dies, node1, the smaller name, takes its IPs at once; when
// node1 dies, node2 cannot tell that from a partition and falls silent,
// and serves everything once the API says node1's announcer is gone (its
// Pod not Ready, as the kubelet reports a dead container).
func TestTwoNodes(t *testing.T) {
	tb := &testbed{Cluster: e2e.New(t, e2e.Options{
		Lab:             lab.Options{Client: true, IPv6: true, Nodes: 2},
		CloudConfig:     cloudConfig,
		VIPs:            vips,
		NamespacePrefix: "e2e-layer2-",
		SettleTimeout:   settleTimeout,
		PollEvery:       pollEvery,
		LogTail:         6000,
	})}
	two := []string{"node1", "node2"}
	for _, h := range tb.Lab.Nodes() {
		tb.StartAnnouncer(h)
	}
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, 2)
	}
	// One IP for each node.
	var ips []string
	owners := map[string]string{}
	for _, ip := range vips {
		o := expectedOwner(ip, two...)
		if !slices.Contains(ips, ip) && !slices.ContainsFunc(ips, func(x string) bool { return owners[x] == o }) {
			ips = append(ips, ip)
			owners[ip] = o
		}
	}
	if len(ips) != 2 {
		t.Fatalf("no IP for each node among %v", vips)
	}
	for i, ip := range ips {
		tb.createService("svc"+string(rune('a'+i)), cluster, ip)
	}
	for _, ip := range ips {
		tb.waitServedBy(ip, owners[ip])
	}

	// node2 dies: node1 serves both.
	if err := tb.Announcers["node2"].Kill(); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		tb.waitServedBy(ip, "node1")
	}
	tb.StartAnnouncer(tb.Lab.Node(2))
	for _, ip := range ips {
		tb.waitServedBy(ip, owners[ip])
	}

	// node1 dies: node2 answers nothing until node1's Pod is not Ready.
	if err := tb.Announcers["node1"].Kill(); err != nil {
		t.Fatal(err)
	}
	tb.Eventually("node2 silent", func() bool {
		for _, ip := range ips {
			if len(tb.answerers(ip)) != 0 {
				return false
			}
		}
		return true
	})
	w := tb.watchIPs(ips...)
	time.Sleep(2 * time.Second)
	w.done()
	for _, ip := range ips {
		if ps := w.answeredBy(ip, "node2", 0, w.since()); len(ps) > 0 {
			t.Errorf("%s answered by node2 before the API said node1 is gone:%s", ip, describe(ps))
		}
	}
	tb.SetAnnouncerPodReady("node1", false)
	for _, ip := range ips {
		tb.waitServedBy(ip, "node2")
	}
}
