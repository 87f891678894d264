package layer2

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// guardIPs are the VIPs of the split-brain tests: enough that every node
// owns some.
var guardIPs = []string{"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "2001:db8:1::200"}

// isolation is how long the split-brain tests keep a node cut off: ten
// times the failure detection time, long enough for a late claim to show.
const isolation = 4 * time.Second

// checkIsolated judges a watch over a node's isolation: no IP was ever
// answered by two nodes; no IP that another node owned before the cut was
// ever answered by the isolated node; requests to those IPs never failed
// and were served by their owner throughout; and no announcer counted a
// conflict.
func (tb *testbed) checkIsolated(w *watch, isolated string, owners map[string]string) {
	tb.T.Helper()
	for ip, o := range owners {
		if d := w.doubles(ip); len(d) > 0 {
			tb.T.Errorf("%s answered by two nodes in %d probes:%s", ip, len(d), describe(d))
		}
		if o == isolated {
			continue
		}
		if ps := w.answeredBy(ip, isolated, 0, w.since()); len(ps) > 0 {
			tb.T.Errorf("%s (owned by %s) answered by the isolated %s:%s", ip, o, isolated, describe(ps))
		}
		if bad, total := w.failed(ip, o, 0, w.since()); len(bad) > 0 {
			tb.T.Errorf("%s (owned by %s): %d of %d requests failed or went elsewhere:%s", ip, o, len(bad), total, describeRequests(bad))
		}
	}
	tb.noConflicts(tb.Lab.Nodes()...)
	probes, requests := w.counts()
	tb.T.Logf("watched %d IPs: %d who-has probes, %d requests", len(owners), probes, requests)
}

// TestWrongKeyNodeAnswersNothing: node3's announcer has another memberlist
// key, so it can gossip with nobody. It must answer for nothing: the other
// two serve every IP, as a majority of the three announcers the API
// lists.
func TestWrongKeyNodeAnswersNothing(t *testing.T) {
	tb := newTestbed(t)
	tb.createSecret("wrong-key", map[string][]byte{"secretkey": []byte("not-the-cluster-key")})
	for _, h := range tb.Lab.Nodes()[:2] {
		tb.StartAnnouncer(h)
	}
	tb.startWithArgs(tb.Lab.Node(3), "--memberlist-secret=wrong-key")
	for _, h := range tb.Lab.Nodes()[:2] {
		tb.waitMembers(h, 2)
	}
	tb.waitMembers(tb.Lab.Node(3), 1)
	owners := map[string]string{}
	for i, ip := range guardIPs {
		tb.createService("svc"+string(rune('a'+i)), cluster, ip)
		owners[ip] = expectedOwner(ip, "node1", "node2")
	}
	for _, ip := range guardIPs {
		tb.waitServedBy(ip, owners[ip])
	}
	w := tb.watchIPs(guardIPs...)
	time.Sleep(isolation)
	w.done()
	tb.checkIsolated(w, "node3", owners)
	if m := tb.Metrics(tb.Lab.Node(3)); !strings.Contains(m, "baremetal_announcer_quorum 0") {
		t.Errorf("node3 does not report quorum 0")
	}
}

// TestGossipBlockedNodeAnswersNothing: nftables inside node3 drops port
// 7946. node3 must fall silent before the others take its IPs over, and
// never answer for theirs; when the rule goes, it takes its IPs back.
func TestGossipBlockedNodeAnswersNothing(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	owners := tb.spread(guardIPs...)
	node3 := tb.Lab.Node(3)
	w := tb.watchIPs(guardIPs...)
	time.Sleep(500 * time.Millisecond)
	// One ruleset, applied at once: a cut that grows rule by rule would
	// leave TCP open while UDP is shut, which memberlist survives.
	nftApply(t, tb.Ctx, node3.NS(), `table inet cut {
	chain in { type filter hook input priority 0; udp dport 7946 drop; tcp dport 7946 drop; }
	chain out { type filter hook output priority 0; udp dport 7946 drop; tcp dport 7946 drop; }
}`)
	tb.afterCut(w, "node3", owners)
	nftApply(t, tb.Ctx, node3.NS(), "delete table inet cut")
	tb.healed(owners)
}

// TestCutOffFromGossipNotFromTheSwitch: the switch drops every frame
// between node3 and the other nodes, while the client still reaches all
// three. node3 sees the others die and they see it die: it must not answer
// for their IPs. When the cut heals it takes its IPs back.
func TestCutOffFromGossipNotFromTheSwitch(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	owners := tb.spread(guardIPs...)
	w := tb.watchIPs(guardIPs...)
	time.Sleep(500 * time.Millisecond)
	sw := tb.Lab.SwitchNS()
	nftApply(t, tb.Ctx, sw, `table bridge cut {
	chain block {
		type filter hook forward priority 0;
		iifname "node3" oifname { "node1", "node2" } drop
		iifname { "node1", "node2" } oifname "node3" drop
	}
}`)
	tb.afterCut(w, "node3", owners)
	nftApply(t, tb.Ctx, sw, "delete table bridge cut")
	tb.healed(owners)
}

// afterCut keeps watching for the isolation time after victim was cut
// off, then judges: victim's IPs moved to the others, theirs never to
// victim.
func (tb *testbed) afterCut(w *watch, victim string, owners map[string]string) {
	tb.T.Helper()
	cut := w.since()
	time.Sleep(isolation)
	w.done()
	tb.checkIsolated(w, victim, owners)
	rest := without(allNodes, victim)
	for ip, o := range owners {
		if o != victim {
			continue
		}
		next := expectedOwner(ip, rest...)
		// By the end of the isolation the IP is the new owner's alone.
		if ps := w.answeredBy(ip, victim, cut+isolation/2, w.since()); len(ps) > 0 {
			tb.T.Errorf("%s still answered by the isolated %s long after the cut:%s", ip, victim, describe(ps))
		}
		if ps := w.answeredBy(ip, next, cut+isolation/2, w.since()); len(ps) == 0 {
			tb.T.Errorf("%s not taken over by %s after %s was cut off", ip, next, victim)
		}
	}
}

// healed waits until every IP is its first owner's again, answered by it
// alone.
func (tb *testbed) healed(owners map[string]string) {
	tb.T.Helper()
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, 3)
	}
	for ip, o := range owners {
		tb.waitServedBy(ip, o)
		tb.Eventually(ip+" answered by "+o+" alone", func() bool {
			return slices.Equal(tb.answerers(ip), []string{o})
		})
	}
}

// nftApply loads an nftables ruleset into the network namespace ns, in
// one transaction, installing nftables first if it is missing (Debian
// package nftables).
func nftApply(t testing.TB, ctx context.Context, ns, ruleset string) {
	t.Helper()
	if err := lab.EnsurePackages(ctx, "nftables"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: nft -f: %v\n%s\n%s", ns, err, out, ruleset)
	}
}

// createSecret creates a Secret in the announcers' namespace for this
// test.
func (tb *testbed) createSecret(name string, data map[string][]byte) {
	tb.T.Helper()
	secrets := tb.CS.CoreV1().Secrets(e2e.SystemNamespace)
	_ = secrets.Delete(context.Background(), name, metav1.DeleteOptions{})
	if _, err := secrets.Create(tb.Ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
		tb.T.Fatal(err)
	}
	tb.T.Cleanup(func() { _ = secrets.Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// updateSecret replaces a Secret's data.
func (tb *testbed) updateSecret(name string, data map[string][]byte) {
	tb.T.Helper()
	secrets := tb.CS.CoreV1().Secrets(e2e.SystemNamespace)
	s, err := secrets.Get(tb.Ctx, name, metav1.GetOptions{})
	if err != nil {
		tb.T.Fatal(err)
	}
	s.Data = data
	if _, err := secrets.Update(tb.Ctx, s, metav1.UpdateOptions{}); err != nil {
		tb.T.Fatal(err)
	}
}

// startWithArgs starts the announcer of h with more flags, which override
// the cluster's.
func (tb *testbed) startWithArgs(h *lab.Host, args ...string) {
	tb.T.Helper()
	saved := tb.ExtraArgs
	tb.ExtraArgs = append(slices.Clone(saved), args...)
	defer func() { tb.ExtraArgs = saved }()
	tb.StartAnnouncer(h)
}

// TestForeignClassGetsNoAnswer: a Service of another load-balancer class
// whose status IP lies in our pool is not ours to announce; our own
// Service next to it is.
func TestForeignClassGetsNoAnswer(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	class := "example.com/other-lb"
	foreign := e2e.LoadBalancer("foreign", cluster)
	foreign.Spec.LoadBalancerClass = &class
	tb.CreateService(foreign, "203.0.113.201", "2001:db8:1::201")
	tb.createService("ours", cluster, "203.0.113.200")
	tb.waitServedBy("203.0.113.200", expectedOwner("203.0.113.200", allNodes...))
	w := tb.watchIPs("203.0.113.201", "2001:db8:1::201")
	time.Sleep(2 * time.Second)
	w.done()
	for _, ip := range []string{"203.0.113.201", "2001:db8:1::201"} {
		for _, n := range allNodes {
			if ps := w.answeredBy(ip, n, 0, w.since()); len(ps) > 0 {
				t.Errorf("%s of a %s Service answered by %s:%s", ip, class, n, describe(ps))
			}
		}
	}
}
