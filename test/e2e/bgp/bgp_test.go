package bgp

import (
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServiceRoutedByECMP is the user's story: a Service gets IPs from a
// bgp pool; the router learns a route to each from every node, installs
// it with all three as equal-cost next hops, and a request from the
// router to the VIP reaches a node's server. IPv4 and IPv6.
func TestServiceRoutedByECMP(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	for _, ip := range []string{"198.51.100.10", "2001:db8:2::10"} {
		took := tb.waitRoute(ip, "node1", "node2", "node3")
		t.Logf("%s routed via the 3 nodes %v after the status write", ip, took)
		seen := map[string]int{}
		for range 12 {
			node, err := tb.get(ip)
			if err != nil {
				t.Fatalf("GET %s from the router: %v", ip, err)
			}
			seen[node]++
		}
		t.Logf("GET %s from the router, 12 connections: answered by %v", ip, seen)
	}
}

// TestLocalTrafficFollowsEndpoint: with externalTrafficPolicy: Local only
// the node with the endpoint is a next hop, and moving the endpoint moves
// the next hop.
func TestLocalTrafficFollowsEndpoint(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	tb.SetEndpoints("local", "node2")
	tb.createService("local", corev1.ServiceExternalTrafficPolicyLocal, "198.51.100.11")
	tb.waitRoute("198.51.100.11", "node2")
	if got, err := tb.get("198.51.100.11"); err != nil || got != "node2" {
		t.Fatalf("GET from the router: %q, %v; want node2", got, err)
	}
	tb.SetEndpoints("local", "node3")
	took := tb.waitRoute("198.51.100.11", "node3")
	t.Logf("next hop moved to node3 %v after the endpoint moved", took)
	if got, err := tb.get("198.51.100.11"); err != nil || got != "node3" {
		t.Fatalf("GET from the router: %q, %v; want node3", got, err)
	}
	tb.SetEndpoints("local", "node1", "node3")
	tb.waitRoute("198.51.100.11", "node1", "node3")
	tb.SetEndpoints("local")
	tb.waitRoute("198.51.100.11")
}

// TestWithdrawal: a route is withdrawn everywhere (FRR's BGP table, its
// RIB, the router's kernel) when its Service is deleted or stops being a
// LoadBalancer, and a node leaves the ECMP set when it is excluded from
// load balancers or not Ready.
func TestWithdrawal(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	all := []string{"node1", "node2", "node3"}

	svc := tb.createService("deleted", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	tb.waitRoute("198.51.100.10", all...)
	tb.waitRoute("2001:db8:2::10", all...)
	if err := tb.CS.CoreV1().Services(tb.NS).Delete(tb.Ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Service deleted: IPv4 route gone %v later", tb.waitRoute("198.51.100.10"))
	tb.waitRoute("2001:db8:2::10")

	svc = tb.createService("retyped", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.11")
	tb.waitRoute("198.51.100.11", all...)
	svc, err := tb.CS.CoreV1().Services(tb.NS).Get(tb.Ctx, svc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	svc.Spec.ExternalTrafficPolicy = ""
	if _, err := tb.CS.CoreV1().Services(tb.NS).Update(tb.Ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Service became ClusterIP: route gone %v later", tb.waitRoute("198.51.100.11"))

	tb.createService("excluded", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.12")
	tb.waitRoute("198.51.100.12", all...)
	tb.LabelNode("node2", corev1.LabelNodeExcludeBalancers, "true")
	t.Logf("node2 excluded: left the ECMP set %v later", tb.waitRoute("198.51.100.12", "node1", "node3"))
	tb.LabelNode("node2", corev1.LabelNodeExcludeBalancers, "")
	tb.waitRoute("198.51.100.12", all...)
	tb.SetNodeReady("node3", false)
	t.Logf("node3 not Ready: left the ECMP set %v later", tb.waitRoute("198.51.100.12", "node1", "node2"))
	tb.SetNodeReady("node3", true)
	tb.waitRoute("198.51.100.12", all...)
}

// TestSIGTERMDrainsFirst: on SIGTERM an announcer withdraws its routes
// while its session is still up, so the router drains the node before
// the session closes; after SIGKILL the router drops the node's next hop
// as soon as the TCP session drops.
func TestSIGTERMDrainsFirst(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10")
	prefix := hostPrefix("198.51.100.10")
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")

	start := time.Now()
	withdrawn := tb.drainsFirst("node1", prefix)
	if t.Failed() {
		t.FailNow()
	}
	tb.waitSession(tb.Lab.Host("node1").IPv4(), false)
	t.Logf("SIGTERM: node1 withdrawn after %v with its session still established; session closed after %v", withdrawn.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	tb.waitRoute("198.51.100.10", "node2", "node3")
	if err := tb.Announcers["node1"].Wait(tb.Ctx); err != nil {
		t.Errorf("announcer after SIGTERM: %v", err)
	}

	start = time.Now()
	if err := tb.Announcers["node2"].Kill(); err != nil {
		t.Fatal(err)
	}
	took := tb.waitRoute("198.51.100.10", "node3")
	t.Logf("SIGKILL: node2 left the ECMP set everywhere %v after the kill", time.Since(start).Round(time.Millisecond))
	_ = took
	if got, err := tb.get("198.51.100.10"); err != nil || got != "node3" {
		t.Fatalf("GET from the router: %q, %v; want node3", got, err)
	}
}

// TestFRRRestart: when the router restarts, the sessions come back and so
// does every route.
func TestFRRRestart(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	tb.SetEndpoints("local", "node3")
	tb.createService("local", corev1.ServiceExternalTrafficPolicyLocal, "198.51.100.11")
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")
	tb.waitRoute("2001:db8:2::10", "node1", "node2", "node3")
	tb.waitRoute("198.51.100.11", "node3")

	start := time.Now()
	tb.restartFRR()
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")
	tb.waitRoute("2001:db8:2::10", "node1", "node2", "node3")
	tb.waitRoute("198.51.100.11", "node3")
	t.Logf("every route back %v after FRR restarted", time.Since(start).Round(time.Millisecond))
	for _, h := range tb.Lab.Nodes() {
		if !tb.hasMetric(h, `baremetal_announcer_bgp_session_failures_total{peer="203.0.113.1",reason="connection_closed"}`) &&
			!tb.hasMetric(h, `baremetal_announcer_bgp_session_failures_total{peer="203.0.113.1",reason="peer_shutdown"}`) {
			t.Errorf("%s: the lost session is not counted:\n%s", h.Name(), grepLines(tb.Metrics(h), "baremetal_announcer_bgp"))
		}
	}
}

// TestConfigChange: an edited cloud-config applies without a restart. A
// pool restricted to some nodes takes the others out of the ECMP set, a
// peer removed closes its session, and a pool removed withdraws its IPs.
func TestConfigChange(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")
	tb.LabelNode("node1", "bgp", "yes")

	restricted := peersConfig + poolConfig + "  node-selectors:\n  - match-labels: {bgp: \"yes\"}\n"
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(tb.ConfigFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(restricted)
	t.Logf("pool restricted to node1: applied and routed %v later", tb.waitRoute("198.51.100.10", "node1"))
	tb.waitRoute("2001:db8:2::10", "node1")

	// Only the IPv4 peer is left; the IPv6 sessions close.
	v4Only := strings.SplitAfter(peersConfig, "keepalive-time: 1s\n")[0]
	write(v4Only + poolConfig)
	for _, h := range tb.Lab.Nodes() {
		tb.waitSession(h.IPv6(), false)
	}
	tb.waitRoute("2001:db8:2::10")
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")

	// The pool is gone, but the Service still holds the address: it stays
	// routed under the pool that covered it last (docs/guarantees.md,
	// "Config edits") until the Service lets go of it.
	write(v4Only + "address-pools:\n- name: other\n  protocol: bgp\n  addresses: [192.0.2.0/24]\n")
	time.Sleep(configReload)
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")
	if err := tb.CS.CoreV1().Services(tb.NS).Delete(tb.Ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("pool removed, then the Service: route withdrawn %v later", tb.waitRoute("198.51.100.10"))
}

// configReload bounds how long an announcer takes to apply an edited
// file: it reads it every config.PollInterval (5 s).
const configReload = 7 * time.Second
