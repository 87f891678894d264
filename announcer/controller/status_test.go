package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go4.org/netipx"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/quorum"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// TestDesiredStatus checks who writes each Service's condition, and what.
func TestDesiredStatus(t *testing.T) {
	l2ip := "203.0.113.200"
	nodes := []*corev1.Node{
		readyNode("node1", map[string]string{"rack": "a"}, "203.0.113.11"),
		readyNode("node2", map[string]string{"rack": "b"}, "203.0.113.12"),
	}
	l2owner := ownerAmong(l2ip, "node1", "node2")
	other := map[string]string{"node1": "node2", "node2": "node1"}[l2owner]
	withOurs := func(s *corev1.Service) *corev1.Service {
		s.Status.Conditions = []metav1.Condition{{Type: servicestatus.ConditionType, Status: metav1.ConditionTrue, Reason: "Announced", Message: "old"}}
		return s
	}
	clusterIP := withOurs(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "was-lb"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}})
	notReady := readyNode("node2", nil, "203.0.113.12")
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse

	tests := []struct {
		desc     string
		self     string
		nodes    []*corev1.Node
		live     []string
		bgp      bool
		verdict  *quorum.Verdict
		svc      *corev1.Service
		held     bool
		want     string // message; "-" means remove ours; "" means this node writes nothing
		wantStat metav1.ConditionStatus
	}{{
		desc: "the layer2 owner writes its node and interface",
		self: l2owner, svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, l2ip),
		want: l2ip + " from pool default via layer2: announced by " + l2owner + " on eth0", wantStat: metav1.ConditionTrue,
	}, {
		desc: "another node leaves it to the owner",
		self: other, svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, l2ip),
	}, {
		desc: "a node that may not claim writes nothing",
		self: l2owner, verdict: &quorum.Verdict{Claim: false},
		svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, l2ip),
	}, {
		desc: "no eligible node: the first live node says why",
		self: "node1", nodes: []*corev1.Node{notReady}, live: []string{"node1", "node2"},
		svc:  lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, l2ip),
		want: l2ip + " from pool default via layer2: not announced (NoEligibleNode): no live node is Ready, not excluded, matches pool default and, for externalTrafficPolicy: Local, has a ready endpoint", wantStat: metav1.ConditionFalse,
	}, {
		desc: "bgp: the first live advertiser writes the nodes and peers",
		self: "node1", bgp: true, svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.7"),
		want: "198.51.100.7 from pool routed via bgp: advertised by node1, node2 to 2001:db8:1::1, 203.0.113.1, 203.0.113.2", wantStat: metav1.ConditionTrue,
	}, {
		desc: "bgp: not the first advertiser",
		self: "node2", bgp: true, svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.7"),
	}, {
		desc: "bgp: a node-selected pool whose nodes have no common peer",
		self: "node1", bgp: true, nodes: []*corev1.Node{readyNode("node1", map[string]string{"rack": "a"}, "203.0.113.11")},
		svc:  lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, "192.0.2.7"),
		want: "192.0.2.7 from pool rack-a via bgp: advertised by node1 to 203.0.113.1, 203.0.113.2", wantStat: metav1.ConditionTrue,
	}, {
		desc: "an address in no pool",
		self: "node1", svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, "192.0.2.200"),
		want: "192.0.2.200: not announced (NotInPool): the address lies in no pool of the cloud-config or of the CCM's retained addresses", wantStat: metav1.ConditionFalse,
	}, {
		desc: "a Service that is no LoadBalancer any more loses ours",
		self: "node1", svc: clusterIP, want: "-",
	}, {
		desc: "a Service without an IP loses ours",
		self: "node1", svc: withOurs(lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster)), want: "-",
	}, {
		desc: "a Service without an IP and without ours is left alone",
		self: "node1", svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster),
	}, {
		desc: "the owner holding back for the settle time writes nothing yet",
		self: l2owner, held: true, svc: lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, l2ip),
	}}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := snapshot{cloud: testCloud(t), self: tt.self, defaultInterface: "eth0", nodes: nodes,
				services: []*corev1.Service{tt.svc}, endpointNodes: func(*corev1.Service) map[string]bool { return nil },
				live: map[string]bool{"node1": true, "node2": true}, verdict: tt.verdict}
			if tt.bgp {
				s.cloud = bgpCloud(t)
			}
			if tt.nodes != nil {
				s.nodes = tt.nodes
			}
			if tt.held {
				s.settled = func(uint32) bool { return false }
			}
			decisions, mine := decide(s)
			got := desiredStatus(s, decisions, mine)
			key := types.NamespacedName{Namespace: tt.svc.Namespace, Name: tt.svc.Name}
			c, ok := got[key]
			switch {
			case tt.want == "":
				if ok {
					t.Errorf("%s writes %v; want nothing", tt.self, c)
				}
			case tt.want == "-":
				if !ok || c != nil {
					t.Errorf("%s writes %v, %v; want the removal of ours", tt.self, c, ok)
				}
			case c == nil:
				t.Errorf("%s writes nothing; want %q", tt.self, tt.want)
			case c.Message != tt.want || c.Status != tt.wantStat:
				t.Errorf("%s writes %s %q\nwant %s %q", tt.self, c.Status, c.Message, tt.wantStat, tt.want)
			}
		})
	}
}

// runControllers runs a status-writing controller for each of nodes on
// client until the test ends, each with its own membership, which starts
// with every node; it returns the memberships by node. ctx must not be
// canceled before the test ends.
func runControllers(t *testing.T, ctx context.Context, cloud *config.Config, client *fake.Clientset, resync time.Duration, nodes ...string) map[string]*fakeMembers {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	members := map[string]*fakeMembers{}
	var ctrls []*Controller
	done := make(chan struct{}, len(nodes))
	t.Cleanup(func() {
		cancel()
		for range ctrls {
			<-done
		}
		for _, c := range ctrls {
			c.Shutdown()
		}
	})
	for _, name := range nodes {
		m := newFakeMembers(nodes...)
		members[name] = m
		c := New(Config{NodeName: name, Cloud: cloud, Client: client, Announcers: layer2Only(&fakeAnnouncer{}),
			Recorder: record.NewFakeRecorder(10000), DefaultInterface: func() (string, error) { return "eth0", nil },
			WriteStatus: true, ResyncPeriod: resync})
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		ctrls = append(ctrls, c)
		go func() { defer func() { done <- struct{}{} }(); c.Run(ctx, m) }()
	}
	return members
}

// statusApplies counts the status writes (server-side applies) client has
// seen.
func statusApplies(client *fake.Clientset) int {
	n := 0
	for _, a := range client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetSubresource() == "status" && p.GetPatchType() == types.ApplyPatchType {
			n++
		}
	}
	return n
}

// TestStatusFollowsTheOwner runs two controllers on one fake API: the
// owner writes the condition once, passes without a change write nothing,
// and when the owner leaves the other node writes itself in.
func TestStatusFollowsTheOwner(t *testing.T) {
	const ip = "203.0.113.200"
	all := []string{"node1", "node2", "node3"}
	first := ownerAmong(ip, all...)
	var rest []string
	for _, n := range all {
		if n != first {
			rest = append(rest, n)
		}
	}
	second := ownerAmong(ip, rest...)
	svc := lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip)
	client := fake.NewClientset(svc, readyNode("node1", nil, "203.0.113.11"),
		readyNode("node2", nil, "203.0.113.12"), readyNode("node3", nil, "203.0.113.13"))
	_, ctx := ktesting.NewTestContext(t)
	members := runControllers(t, ctx, testCloud(t), client, 50*time.Millisecond, all...)
	message := func() string {
		s, err := client.CoreV1().Services("ns").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if c := servicestatus.Find(s.Status.Conditions); c != nil {
			return c.Message
		}
		return ""
	}
	writes := func() int { return statusApplies(client) }
	eventually := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for message() != want {
			if time.Now().After(deadline) {
				t.Fatalf("condition message = %q, want %q", message(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventually(ip + " from pool default via layer2: announced by " + first + " on eth0")
	before := writes()
	// Resyncs every 50 ms on both nodes: a few dozen passes.
	time.Sleep(time.Second)
	if n := writes() - before; n != 0 {
		t.Errorf("%d writes without a change; want 0", n)
	}
	// The owner is cut off: it sees only itself, may not claim, and
	// writes nothing; the others see it gone.
	members[first].set(first)
	for _, n := range rest {
		members[n].set(rest...)
	}
	eventually(ip + " from pool default via layer2: announced by " + second + " on eth0")
	if before == 0 || writes()-before != 1 {
		t.Errorf("writes: %d for the first owner, %d for the failover; want 1 and 1", before, writes()-before)
	}
}

// The owner's interfaces come from its own announcement.
func TestLayer2EntryUsesTheOwnersInterfaces(t *testing.T) {
	s := snapshot{cloud: testCloud(t), self: "node1"}
	ip := netip.MustParseAddr("192.0.2.1")
	d := &ipDecision{pool: &s.cloud.Pools[1], owner: "node1"}
	mine := map[netip.Addr]announcer.Announcement{ip: {Interfaces: []string{"eth1", "eth2"}}}
	if e := layer2Entry(s, ip, d, mine); e.Format() != "192.0.2.1 from pool pinned via layer2: announced by node1 on eth1, eth2" {
		t.Errorf("entry = %q", e.Format())
	}
	if e := layer2Entry(s, ip, d, nil); e.Reason != servicestatus.ReasonNoInterface {
		t.Errorf("without an announcement: %q", e.Format())
	}
}

// TestStatusWriteVolume: with 3 nodes and 90 Services, each Service is
// written once, resyncs write nothing, and a node's death rewrites only
// the Services whose IP it owned.
func TestStatusWriteVolume(t *testing.T) {
	all := []string{"node1", "node2", "node3"}
	objs := []runtime.Object{readyNode("node1", nil, "203.0.113.11"), readyNode("node2", nil, "203.0.113.12"), readyNode("node3", nil, "203.0.113.13")}
	const n = 90
	owned := map[string]int{}
	ip := netip.MustParseAddr("2001:db8:1::200")
	for i := range n {
		ip = ip.Next()
		objs = append(objs, lbService("ns", fmt.Sprintf("svc%d", i), corev1.ServiceExternalTrafficPolicyCluster, ip.String()))
		owned[ownerAmong(ip.String(), all...)]++
	}
	cloud := testCloud(t)
	// Widen the IPv6 range of pool default so that every Service is in it.
	cloud.Pools[0].Ranges[1] = netipx.IPRangeFrom(netip.MustParseAddr("2001:db8:1::200"), netip.MustParseAddr("2001:db8:1::3ff"))
	client := fake.NewClientset(objs...)
	_, ctx := ktesting.NewTestContext(t)
	members := runControllers(t, ctx, cloud, client, 100*time.Millisecond, all...)
	writes := func() int { return statusApplies(client) }
	announcedBy := func(node string) int {
		list, err := client.CoreV1().Services("ns").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, s := range list.Items {
			if c := servicestatus.Find(s.Status.Conditions); c != nil && strings.Contains(c.Message, "announced by "+node+" ") {
				k++
			}
		}
		return k
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("every Service's condition", func() bool {
		return announcedBy("node1")+announcedBy("node2")+announcedBy("node3") == n
	})
	time.Sleep(time.Second) // ten resyncs on every node
	if w := writes(); w != n {
		t.Errorf("%d writes for %d Services; want one each", w, n)
	}
	before := writes()
	dead := "node1"
	members[dead].set(dead) // cut off: no quorum, writes nothing
	for _, name := range all[1:] {
		members[name].set(all[1:]...)
	}
	waitUntil("node1's Services rewritten", func() bool { return announcedBy(dead) == 0 })
	time.Sleep(time.Second)
	if w := writes() - before; w != owned[dead] {
		t.Errorf("%d writes after %s died; want %d, the Services it owned", w, dead, owned[dead])
	}
	t.Logf("%d Services: %d writes to start, %d when %s died (it owned %d)", n, before, writes()-before, dead, owned[dead])
}
