package layer2

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

var allNodes = []string{"node1", "node2", "node3"}

const cluster = corev1.ServiceExternalTrafficPolicyCluster

// TestClientReachesTheOwner: a Service gets an IPv4 and an IPv6 address;
// the client resolves each to the MAC of the node all announcers agree
// on, only that node answers, and curl reaches it.
func TestClientReachesTheOwner(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	tb.createService("web", cluster, "203.0.113.200", "2001:db8:1::200")

	for _, ip := range []string{"203.0.113.200", "2001:db8:1::200"} {
		want := expectedOwner(ip, allNodes...)
		took := tb.waitServedBy(ip, want)
		t.Logf("%s served by %s after %v", ip, want, took)
		if got := tb.answerers(ip); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: answered by %v, want only %s", ip, got, want)
		}
	}
	tb.Eventually("a nodeAssigned event", func() bool {
		for _, m := range tb.events("web", "nodeAssigned") {
			if strings.Contains(m, "announcing 203.0.113.200 from node "+expectedOwner("203.0.113.200", allNodes...)+" via layer2") {
				return true
			}
		}
		return false
	})
	owner := tb.Lab.Host(expectedOwner("203.0.113.200", allNodes...))
	m := tb.Metrics(owner)
	for _, want := range []string{`baremetal_announcer_announced_ips{protocol="layer2"}`, `baremetal_announcer_layer2_requests_answered_total{protocol="arp"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics of %s lack %s", owner.Name(), want)
		}
	}
}

// without returns nodes minus gone.
func without(nodes []string, gone ...string) []string {
	return slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return slices.Contains(gone, n) })
}

// spread creates one Service per IP and waits until each IP is served by
// its owner. It returns the owners.
func (tb *testbed) spread(ips ...string) map[string]string {
	tb.T.Helper()
	owners := map[string]string{}
	for i, ip := range ips {
		tb.createService("svc"+string(rune('a'+i)), cluster, ip)
	}
	for _, ip := range ips {
		owners[ip] = expectedOwner(ip, allNodes...)
		tb.waitServedBy(ip, owners[ip])
	}
	return owners
}

// firstServedBy polls the client until a request to ip is answered by
// want, and returns how long that took from start. Every request has its
// own short timeout, so a dead MAC costs at most that per try.
func (tb *testbed) firstServedBy(ip, want string, start time.Time) time.Duration {
	tb.T.Helper()
	deadline := start.Add(settleTimeout)
	for time.Now().Before(deadline) {
		if got, err := tb.get(ip); err == nil && got == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.T.Fatalf("%s not served by %s within %v", ip, want, settleTimeout)
	return 0
}

// TestSIGKILLFailover kills the announcer that owns an IP: the IP moves to
// the node the others agree on, the client follows at once (gratuitous
// ARP), and no IP of another node moves.
func TestSIGKILLFailover(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	ips := []string{"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "203.0.113.205"}
	owners := tb.spread(ips...)
	victim := owners["203.0.113.200"]
	rest := without(allNodes, victim)

	start := time.Now()
	if err := tb.Announcers[victim].Kill(); err != nil {
		t.Fatal(err)
	}
	next := expectedOwner("203.0.113.200", rest...)
	took := tb.firstServedBy("203.0.113.200", next, start)
	// How fast is BenchmarkFailover's question (target under 1 s); here
	// the client only has to get there within the settle bound.
	t.Logf("SIGKILL of %s: 203.0.113.200 served by %s after %v", victim, next, took)

	for _, ip := range ips {
		want := owners[ip]
		if want == victim {
			want = expectedOwner(ip, rest...)
		}
		tb.waitServedBy(ip, want)
		if got := tb.answerers(ip); !slices.Equal(got, []string{want}) {
			t.Errorf("%s (owner was %s): answered by %v, want only %s", ip, owners[ip], got, want)
		}
	}
	tb.Eventually("an event naming the takeover", func() bool {
		for _, m := range tb.events("svca", "nodeAssigned") {
			if strings.Contains(m, "from node "+next) && strings.Contains(m, "taking over from node "+victim) {
				return true
			}
		}
		return false
	})
}

// TestNodeCrashFailover unplugs the owner's switch port, which is what a
// crashed or powered-off node looks like: its announcer cannot say goodbye
// and its HTTP server is unreachable too. The client must be served by the
// new owner within a second.
func TestNodeCrashFailover(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	owners := tb.spread("203.0.113.200", "2001:db8:1::200")
	for _, ip := range []string{"203.0.113.200", "2001:db8:1::200"} {
		t.Run(ip, func(t *testing.T) {
			victim := owners[ip]
			start := time.Now()
			if err := tb.Lab.Unplug(tb.Lab.Host(victim)); err != nil {
				t.Fatal(err)
			}
			next := expectedOwner(ip, without(allNodes, victim)...)
			took := tb.firstServedBy(ip, next, start)
			t.Logf("%s unplugged: %s served by %s after %v (BenchmarkFailover measures this)", victim, ip, next, took)
			if err := tb.Lab.Plug(tb.Lab.Host(victim)); err != nil {
				t.Fatal(err)
			}
			// Healed: back to one owner, the original one.
			tb.waitServedBy(ip, victim)
			tb.Eventually(ip+" answered by one node", func() bool {
				return slices.Equal(tb.answerers(ip), []string{victim})
			})
		})
	}
}

// TestSIGTERMHandsOverWithoutAGap stops the owner gracefully while the
// client keeps asking: no request fails, and the client moves to the new
// owner.
func TestSIGTERMHandsOverWithoutAGap(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	owners := tb.spread("203.0.113.200", "2001:db8:1::200")
	for _, ip := range []string{"203.0.113.200", "2001:db8:1::200"} {
		victim := owners[ip]
		next := expectedOwner(ip, without(allNodes, victim)...)
		p := tb.Announcers[victim]
		start := time.Now()
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// A connection that is open at the instant the client's neighbour
		// entry flips to the new owner continues at a node that never saw
		// its SYN and gets a reset. That is true of every layer-2 VIP move
		// (only connection-state sync avoids it) and is not a gap: the
		// next request is already served. A gap is a request that cannot
		// connect or gets no answer, or two resets in a row.
		var failures, resets, requests int
		var switched time.Duration
		lastReset := false
		for time.Since(start) < 3*time.Second {
			got, err := tb.get(ip)
			requests++
			switch {
			case err != nil && strings.Contains(err.Error(), "connection reset by peer") && !lastReset:
				resets++
				lastReset = true
				t.Logf("request %d at %v was open across the switch: %v", requests, time.Since(start), err)
			case err != nil:
				failures++
				t.Logf("request %d at %v failed: %v", requests, time.Since(start), err)
			default:
				lastReset = false
				if got == next && switched == 0 {
					switched = time.Since(start)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("SIGTERM of %s: %s served by %s after %v; %d of %d requests failed, %d reset in flight", victim, ip, next, switched, failures, requests, resets)
		if failures > 0 {
			t.Errorf("%d requests failed during the handover", failures)
		}
		if resets > 1 {
			t.Errorf("%d in-flight requests were reset, want at most the one open at the switch", resets)
		}
		if switched == 0 {
			t.Errorf("client never reached %s in 3 s of requests", next)
		}
		if err := p.Wait(tb.Ctx); err != nil {
			t.Errorf("announcer exited with %v after SIGTERM, want 0", err)
		}
		// Restart it for the next IP; it takes its IPs back.
		tb.StartAnnouncer(tb.Lab.Host(victim))
		for _, h := range tb.Lab.Nodes() {
			tb.waitMembers(h, 3)
		}
		tb.waitServedBy(ip, victim)
	}
}

// TestLocalTrafficPolicy: with externalTrafficPolicy: Local only a node
// with a ready endpoint announces, and the IP follows the endpoint.
func TestLocalTrafficPolicy(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	const ip = "203.0.113.201"
	tb.createService("local", corev1.ServiceExternalTrafficPolicyLocal, ip)
	// No endpoint anywhere: nobody answers.
	time.Sleep(500 * time.Millisecond)
	if got := tb.answerers(ip); len(got) != 0 {
		t.Errorf("answered by %v without any endpoint", got)
	}
	for _, node := range []string{"node3", "node1", "node2"} {
		tb.SetEndpoints("local", node)
		took := tb.waitServedBy(ip, node)
		t.Logf("endpoint on %s: served by it after %v", node, took)
		if got := tb.answerers(ip); !slices.Equal(got, []string{node}) {
			t.Errorf("endpoint on %s: answered by %v", node, got)
		}
	}
	// Endpoints on two nodes: one of them.
	tb.SetEndpoints("local", "node1", "node3")
	tb.waitServedBy(ip, expectedOwner(ip, "node1", "node3"))
}

// TestIneligibleNodesNeverAnnounce: an excluded node and a NotReady node
// never answer, whatever the hash would give them.
func TestIneligibleNodesNeverAnnounce(t *testing.T) {
	tb := newTestbed(t)
	tb.LabelNode("node1", corev1.LabelNodeExcludeBalancers, "true")
	tb.SetNodeReady("node2", false)
	tb.startAll()
	ips := []string{"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "203.0.113.205", "2001:db8:1::200", "2001:db8:1::201"}
	for i, ip := range ips {
		tb.createService("svc"+string(rune('a'+i)), cluster, ip)
	}
	for _, ip := range ips {
		tb.waitServedBy(ip, "node3")
		if got := tb.answerers(ip); !slices.Equal(got, []string{"node3"}) {
			t.Errorf("%s answered by %v, want only node3", ip, got)
		}
	}
	// node2 becomes Ready: it takes its share; node1 stays out.
	tb.SetNodeReady("node2", true)
	for _, ip := range ips {
		tb.waitServedBy(ip, expectedOwner(ip, "node2", "node3"))
	}
}

// TestNoAnswerForOtherAddresses: the client asks for an unallocated pool
// address, a node's own address and an address outside every pool. No
// announcer answers (a node's own address is answered by its own kernel
// only).
func TestNoAnswerForOtherAddresses(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	tb.createService("web", cluster, "203.0.113.200", "2001:db8:1::200")
	tb.waitServedBy("203.0.113.200", expectedOwner("203.0.113.200", allNodes...))
	tb.waitServedBy("2001:db8:1::200", expectedOwner("2001:db8:1::200", allNodes...))
	tests := []struct {
		ip   string
		want []string
	}{
		{"203.0.113.209", nil},              // in the pool, not allocated
		{"2001:db8:1::209", nil},            // same, IPv6
		{"203.0.113.12", []string{"node2"}}, // node2's address: its kernel
		{"2001:db8:1::12", []string{"node2"}},
		{"192.0.2.10", nil}, // outside every pool
		{"203.0.113.150", nil},
		{"2001:db8:1::1:5", nil},
	}
	for _, tt := range tests {
		if got := tb.answerers(tt.ip); !slices.Equal(got, tt.want) {
			t.Errorf("%s answered by %v, want %v", tt.ip, got, tt.want)
		}
	}
}

// TestSurvivesWithoutTheAPI cuts every announcer off the apiserver: the
// working announcement stays, and a crash still moves the IP, from the
// last known state.
func TestSurvivesWithoutTheAPI(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	const ip = "203.0.113.202"
	owners := tb.spread(ip)
	for _, f := range tb.Forwards {
		f.Close()
	}
	time.Sleep(time.Second)
	tb.waitServedBy(ip, owners[ip])
	victim := owners[ip]
	start := time.Now()
	if err := tb.Announcers[victim].Kill(); err != nil {
		t.Fatal(err)
	}
	next := expectedOwner(ip, without(allNodes, victim)...)
	took := tb.firstServedBy(ip, next, start)
	t.Logf("without the API: SIGKILL of %s, %s served by %s after %v", victim, ip, next, took)
}
