package controller

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// fakeMembers is a member set the test controls.
type fakeMembers struct {
	mu      sync.Mutex
	members []string
	peers   []netip.Addr
	changes chan struct{}
}

func newFakeMembers(names ...string) *fakeMembers {
	return &fakeMembers{members: names, changes: make(chan struct{}, 1)}
}

func (f *fakeMembers) Members() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fakeMembers) Changes() <-chan struct{} { return f.changes }

func (f *fakeMembers) SetPeers(p []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = p
}

func (f *fakeMembers) set(names ...string) {
	f.mu.Lock()
	f.members = names
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// layer2Only is Config.Announcers with a only, for layer2.
func layer2Only(a announcer.Announcer) map[config.Protocol]announcer.Announcer {
	return map[config.Protocol]announcer.Announcer{config.Layer2: a}
}

// fakeAnnouncer remembers the last announcements, every IP any pass
// ever announced, and every IP a pass withdrew.
type fakeAnnouncer struct {
	mu        sync.Mutex
	last      map[netip.Addr]announcer.Announcement
	calls     int
	ever      map[netip.Addr]bool
	withdrawn map[netip.Addr]bool
}

func (f *fakeAnnouncer) SetAnnouncements(m map[netip.Addr]announcer.Announcement) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ever == nil {
		f.ever, f.withdrawn = map[netip.Addr]bool{}, map[netip.Addr]bool{}
	}
	for ip := range f.last {
		if _, ok := m[ip]; !ok {
			f.withdrawn[ip] = true
		}
	}
	for ip := range m {
		f.ever[ip] = true
	}
	f.last = m
	f.calls++
	return nil
}

// everWithdrawn returns every IP a pass withdrew, sorted.
func (f *fakeAnnouncer) everWithdrawn() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for ip := range f.withdrawn {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

// passes returns how many passes have set announcements.
func (f *fakeAnnouncer) passes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// everAnnounced returns every IP a pass announced, sorted.
func (f *fakeAnnouncer) everAnnounced() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for ip := range f.ever {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func (f *fakeAnnouncer) ips() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == 0 {
		return nil
	}
	out := []string{}
	for ip := range f.last {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

type harness struct {
	t        *testing.T
	client   *fake.Clientset
	members  *fakeMembers
	layer2   *fakeAnnouncer
	recorder *record.FakeRecorder
	ctrl     *Controller
}

// run starts a controller for node self over the given objects.
func run(t *testing.T, self string, members *fakeMembers, objs ...any) *harness {
	t.Helper()
	var rt []runtimeObject
	for _, o := range objs {
		rt = append(rt, o.(runtimeObject))
	}
	h := &harness{t: t, members: members, layer2: &fakeAnnouncer{}, recorder: record.NewFakeRecorder(100)}
	h.client = fake.NewClientset(toRuntime(rt)...)
	h.ctrl = New(Config{
		NodeName:         self,
		Cloud:            testCloud(t),
		Client:           h.client,
		Announcers:       layer2Only(h.layer2),
		Recorder:         h.recorder,
		DefaultInterface: func() (string, error) { return "eth0", nil },
	})
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; h.ctrl.Shutdown() })
	if err := h.ctrl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(done); h.ctrl.Run(ctx, members) }()
	return h
}

// eventually waits for cond, bounded.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", what)
}

func (h *harness) announces(ips ...string) {
	h.t.Helper()
	if ips == nil {
		ips = []string{}
	}
	h.eventually("announcements "+strings.Join(ips, ","), func() bool {
		got := h.layer2.ips()
		return got != nil && slices.Equal(got, ips)
	})
}

func (h *harness) event(substr string) string {
	h.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-h.recorder.Events:
			if strings.Contains(e, substr) {
				return e
			}
		case <-timeout:
			h.t.Fatalf("no event containing %q", substr)
		}
	}
}

func endpointSlice(ns, svc, name string, ready bool, nodes ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{"10.244.0." + string(rune('1'+i))},
			NodeName:   &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return s
}

func threeNodes() []any {
	return []any{
		readyNode("node1", nil, "203.0.113.11"),
		readyNode("node2", nil, "203.0.113.12"),
		readyNode("node3", nil, "203.0.113.13"),
	}
}

const ip = "203.0.113.200"

func TestOwnerAnnouncesAndRecordsEvent(t *testing.T) {
	o := ownerAmong(ip, "node1", "node2", "node3")
	objs := append(threeNodes(), lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip))
	h := run(t, o, newFakeMembers("node1", "node2", "node3"), objs...)
	h.announces(ip)
	e := h.event(ReasonNodeAssigned)
	if want := "Normal nodeAssigned announcing " + ip + " from node " + o + " via layer2"; e != want {
		t.Errorf("event %q, want %q", e, want)
	}
	// Peers are the other nodes' InternalIPs.
	h.eventually("peers", func() bool {
		h.members.mu.Lock()
		defer h.members.mu.Unlock()
		return len(h.members.peers) == 2 && !slices.Contains(h.members.peers, netip.MustParseAddr(map[string]string{"node1": "203.0.113.11", "node2": "203.0.113.12", "node3": "203.0.113.13"}[o]))
	})
}

func TestOthersDoNotAnnounce(t *testing.T) {
	o := ownerAmong(ip, "node1", "node2", "node3")
	for _, self := range []string{"node1", "node2", "node3"} {
		if self == o {
			continue
		}
		objs := append(threeNodes(), lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip))
		h := run(t, self, newFakeMembers("node1", "node2", "node3"), objs...)
		h.neverAnnounces()
	}
}

func TestTakeOverWhenOwnerLeavesMembership(t *testing.T) {
	o := ownerAmong(ip, "node1", "node2", "node3")
	var rest []string
	for _, n := range []string{"node1", "node2", "node3"} {
		if n != o {
			rest = append(rest, n)
		}
	}
	next := ownerAmong(ip, rest...)
	objs := append(threeNodes(), lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip))
	members := newFakeMembers("node1", "node2", "node3")
	h := run(t, next, members, objs...)
	h.announces()
	// The owner dies: no Kubernetes change at all, only membership.
	members.set(rest...)
	h.announces(ip)
	e := h.event(ReasonNodeAssigned)
	if !strings.Contains(e, "taking over from node "+o) {
		t.Errorf("event %q does not say whom it took over from (%s)", e, o)
	}
	// The owner comes back: the IP returns to it.
	members.set("node1", "node2", "node3")
	h.announces()
}

func TestLocalFollowsEndpoints(t *testing.T) {
	objs := append(threeNodes(),
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyLocal, ip),
		endpointSlice("ns", "web", "web-1", true, "node2"))
	h := run(t, "node2", newFakeMembers("node1", "node2", "node3"), objs...)
	h.announces(ip)

	// The endpoint moves to node3: node2 stops.
	ctx := context.Background()
	_, err := h.client.DiscoveryV1().EndpointSlices("ns").Update(ctx, endpointSlice("ns", "web", "web-1", true, "node3"), metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.announces()

	// Back on node2 but not ready: still nothing.
	_, err = h.client.DiscoveryV1().EndpointSlices("ns").Update(ctx, endpointSlice("ns", "web", "web-1", false, "node2"), metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	h.announces()
}

func TestNodeBecomesIneligible(t *testing.T) {
	// Only node1 exists, so it owns the IP.
	node := readyNode("node1", nil, "203.0.113.11")
	h := run(t, "node1", newFakeMembers("node1"), node, lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip))
	h.announces(ip)
	h.event(ReasonNodeAssigned)

	ctx := context.Background()
	node = node.DeepCopy()
	node.Labels = map[string]string{corev1.LabelNodeExcludeBalancers: "true"}
	if _, err := h.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.announces()
	h.event(ReasonNoEligibleNode)
}

func TestServiceChanges(t *testing.T) {
	svc := lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster)
	h := run(t, "node1", newFakeMembers("node1"), readyNode("node1", nil, "203.0.113.11"), svc)
	h.announces()

	// The CCM writes the status: announced.
	ctx := context.Background()
	svc = lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip, "2001:db8:1::200", "198.51.100.1")
	if _, err := h.client.CoreV1().Services("ns").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.announces("2001:db8:1::200", ip)

	// Deleted: withdrawn.
	if err := h.client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.announces()
}

func TestNotAMemberAnnouncesNothing(t *testing.T) {
	// Before joining (or after leaving) this node is not in its own member
	// view: it must not claim anything.
	h := run(t, "node1", newFakeMembers(), readyNode("node1", nil, "203.0.113.11"),
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip))
	h.neverAnnounces()
}

func TestLookupNodeIP(t *testing.T) {
	h := run(t, "node1", newFakeMembers("node1"), readyNode("node1", nil, "203.0.113.11"))
	got, err := h.ctrl.LookupNodeIP()
	if err != nil || got != netip.MustParseAddr("203.0.113.11") {
		t.Errorf("LookupNodeIP = %v, %v", got, err)
	}
	h2 := run(t, "node9", newFakeMembers("node9"))
	if _, err := h2.ctrl.LookupNodeIP(); err == nil {
		t.Error("LookupNodeIP for a missing Node: no error")
	}
}
