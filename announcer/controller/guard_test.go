package controller

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/agreement"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/coverage"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/membership"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/nodemeta"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/quorum"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// TestDecideWithTheGuard drives decide with the guard's inputs, from the
// owner's point of view.
func TestDecideWithTheGuard(t *testing.T) {
	cloud := testCloud(t)
	nodes := []*corev1.Node{readyNode("node1", nil, "203.0.113.11"), readyNode("node2", nil, "203.0.113.12"), readyNode("node3", nil, "203.0.113.13")}
	allLive := map[string]bool{"node1": true, "node2": true, "node3": true}
	const vip = "203.0.113.200"
	ipA := netip.MustParseAddr(vip)
	owner3 := ownerAmong(vip, "node1", "node2", "node3")
	fp := agreement.Fingerprint(&cloud.Pools[0])
	metaOf := func(fps map[uint32]bool) *nodemeta.Meta { m, _ := nodemeta.New(fps); return &m }
	agree := metaOf(map[uint32]bool{fp: false})
	broken := metaOf(map[uint32]bool{fp: true})
	other := metaOf(map[uint32]bool{fp + 1: false})
	viewWith := func(over map[string]*nodemeta.Meta) agreement.View {
		v := agreement.View{"node1": agree, "node2": agree, "node3": agree}
		for n, m := range over {
			v[n] = m
		}
		return v
	}
	claim, noClaim := &quorum.Verdict{Claim: true}, &quorum.Verdict{Reason: "test"}
	yes, no := func(uint32) bool { return true }, func(uint32) bool { return false }
	tests := []struct {
		name      string
		view      agreement.View
		verdict   *quorum.Verdict
		settled   func(uint32) bool
		before    bool
		wantOwner string
		announce  bool
		held      string
		disagree  bool
	}{
		{name: "all agree", view: viewWith(nil), verdict: claim, settled: yes, wantOwner: owner3, announce: true},
		{name: "no quorum: held", view: viewWith(nil), verdict: noClaim, settled: yes, before: true, wantOwner: owner3, held: heldNoQuorum},
		{name: "settling: a new IP waits", view: viewWith(nil), verdict: claim, settled: no, wantOwner: owner3, held: heldSettling},
		{name: "settling: an IP announced before stays", view: viewWith(nil), verdict: claim, settled: no, before: true, wantOwner: owner3, announce: true},
		{name: "the owner cannot serve the pool: the next one owns", view: viewWith(map[string]*nodemeta.Meta{owner3: broken}), verdict: claim, settled: yes,
			wantOwner: ownerAmong(vip, without(owner3)...), announce: true},
		{name: "the owner runs another definition: the two others own", view: viewWith(map[string]*nodemeta.Meta{owner3: other}), verdict: claim, settled: yes,
			wantOwner: ownerAmong(vip, without(owner3)...), announce: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self := tt.wantOwner
			announced := map[netip.Addr]announcer.Announcement{}
			if tt.before {
				announced[ipA] = announcer.Announcement{}
			}
			decisions, mine := decide(snapshot{
				cloud: cloud, self: self, defaultInterface: "eth0",
				services: []*corev1.Service{lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, vip)},
				nodes:    nodes, endpointNodes: func(*corev1.Service) map[string]bool { return nil }, live: allLive,
				view: tt.view, verdict: tt.verdict, settled: tt.settled, announced: announced,
			})
			d := decisions[ipA]
			if d.owner != tt.wantOwner || d.held != tt.held || d.disagree != tt.disagree {
				t.Errorf("decision owner %q held %q disagree %v, want %q %q %v", d.owner, d.held, d.disagree, tt.wantOwner, tt.held, tt.disagree)
			}
			if _, ok := mine[ipA]; ok != tt.announce {
				t.Errorf("announced %v, want %v", ok, tt.announce)
			}
		})
	}

	// A node whose definition lost the majority neither owns nor
	// announces, whoever it would pick.
	for _, self := range []string{"node1", "node2", "node3"} {
		v := agreement.View{"node1": other, "node2": other, "node3": other}
		v[self] = agree
		decisions, mine := decide(snapshot{
			cloud: cloud, self: self, defaultInterface: "eth0",
			services: []*corev1.Service{lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, vip)},
			nodes:    nodes, endpointNodes: func(*corev1.Service) map[string]bool { return nil }, live: allLive,
			view: v, verdict: claim, settled: yes,
		})
		if d := decisions[ipA]; !d.disagree || d.owner != "" || len(mine) != 0 {
			t.Errorf("%s in the minority: %+v, announces %v", self, d, mine)
		}
	}
}

// TestDecideAnnouncesRetainedAddresses: an address the cloud-config no
// longer covers stays announced under the pool it came from.
func TestDecideAnnouncesRetainedAddresses(t *testing.T) {
	old := testCloud(t)
	edited, err := config.Parse([]byte("address-pools:\n- name: other\n  protocol: layer2\n  addresses: [198.51.100.0/24]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cov := coverage.New()
	inUse := map[netip.Addr]bool{netip.MustParseAddr("192.0.2.5"): true}
	cov.Resolve(old, nil, inUse)
	covered := cov.Resolve(edited, nil, inUse)
	nodes := []*corev1.Node{readyNode("node1", map[string]string{"rack": "a"}, "203.0.113.11")}
	_, mine := decide(snapshot{
		cloud: edited, self: "node1", defaultInterface: "eth0", covered: covered,
		services: []*corev1.Service{lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, "192.0.2.5")},
		nodes:    nodes, endpointNodes: func(*corev1.Service) map[string]bool { return nil }, live: map[string]bool{"node1": true},
	})
	an, ok := mine[netip.MustParseAddr("192.0.2.5")]
	if !ok || an.Pool != "pinned" || strings.Join(an.Interfaces, ",") != "eth1,eth2" {
		t.Errorf("retained address announced %v as %+v, want under pool pinned on eth1,eth2", ok, an)
	}
}

// viewMembers is a membership with the guard's view.
type viewMembers struct {
	*fakeMembers
	mu      sync.Mutex
	contact bool
	left    map[string]bool
	meta    []byte
}

func (v *viewMembers) View() membership.View {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := membership.View{Members: map[string][]byte{}, Left: v.left, Contact: v.contact}
	for _, m := range v.Members() {
		out.Members[m] = nil
	}
	return out
}

func (v *viewMembers) SetMeta(b []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.meta = b
}

func (v *viewMembers) setContact(c bool) {
	v.mu.Lock()
	v.contact = c
	v.mu.Unlock()
	v.set(v.Members()...)
}

func announcerPod(node string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "baremetal-system", Name: "announcer-" + node, Labels: map[string]string{"app": "announcer"}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

// runGuarded starts a controller with the guard's inputs: announcer Pods
// in baremetal-system and a membership with a view.
func runGuarded(t *testing.T, self string, members *viewMembers, objs ...runtimeObject) (*fake.Clientset, *fakeAnnouncer, *record.FakeRecorder, *Controller) {
	t.Helper()
	client := fake.NewClientset(toRuntime(objs)...)
	l2 := &fakeAnnouncer{}
	rec := record.NewFakeRecorder(100)
	c := New(Config{
		NodeName: self, Cloud: testCloud(t), Client: client, Announcers: layer2Only(l2), Recorder: rec,
		DefaultInterface:  func() (string, error) { return "eth0", nil },
		Namespace:         "baremetal-system",
		AnnouncerSelector: "app=announcer",
	})
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; c.Shutdown() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(done); c.Run(ctx, members) }()
	return client, l2, rec, c
}

func waitIPs(t *testing.T, l2 *fakeAnnouncer, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got := l2.ips(); got != nil && strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("announcing %v, want %v", l2.ips(), want)
}

// TestGuardSilencesAnIsolatedNode: the owner loses contact and its peers:
// it withdraws; once the API says the others are gone, it serves alone.
func TestGuardSilencesAnIsolatedNode(t *testing.T) {
	const vip = "203.0.113.200"
	o := ownerAmong(vip, "node1", "node2", "node3")
	members := &viewMembers{fakeMembers: newFakeMembers("node1", "node2", "node3"), contact: true}
	objs := []runtimeObject{
		readyNode("node1", nil, "203.0.113.11"), readyNode("node2", nil, "203.0.113.12"), readyNode("node3", nil, "203.0.113.13"),
		announcerPod("node1", true), announcerPod("node2", true), announcerPod("node3", true),
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, vip),
	}
	client, l2, _, _ := runGuarded(t, o, members, objs...)
	waitIPs(t, l2, vip)
	if len(members.meta) == 0 {
		t.Error("no metadata published")
	}

	members.setContact(false)
	waitIPs(t, l2)
	members.set(o)
	waitIPs(t, l2)

	// The API confirms the others are gone: their announcer Pods are not
	// Ready.
	for _, n := range without(o) {
		if _, err := client.CoreV1().Pods("baremetal-system").UpdateStatus(context.Background(), announcerPod(n, false), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitIPs(t, l2, vip)
}

// TestGuardTakesOverFromALeaver: in a cluster of two, the larger name
// takes over from the smaller one when it leaves on purpose, but not when
// it merely vanishes.
func TestGuardTakesOverFromALeaver(t *testing.T) {
	const vip = "203.0.113.200"
	members := &viewMembers{fakeMembers: newFakeMembers("node1", "node2"), contact: true}
	objs := []runtimeObject{
		readyNode("node1", nil, "203.0.113.11"), readyNode("node2", nil, "203.0.113.12"),
		announcerPod("node1", true), announcerPod("node2", true),
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, vip),
	}
	if ownerAmong(vip, "node1", "node2") != "node1" {
		t.Skip("the test wants node1 to own the IP")
	}
	_, l2, _, _ := runGuarded(t, "node2", members, objs...)
	waitIPs(t, l2)
	members.setContact(false)
	members.set("node2")
	time.Sleep(SettleTime + 200*time.Millisecond)
	waitIPs(t, l2)
	members.mu.Lock()
	members.left = map[string]bool{"node1": true}
	members.mu.Unlock()
	members.set("node2")
	waitIPs(t, l2, vip)
}

// TestRetainedConfigMapIsRead: a restarted announcer announces an address
// its cloud-config no longer covers because the CCM published it.
func TestRetainedConfigMapIsRead(t *testing.T) {
	const addr = "192.0.2.200"
	members := &viewMembers{fakeMembers: newFakeMembers("node1"), contact: true}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "baremetal-system", Name: coverage.RetainedConfigMap},
		Data:       map[string]string{coverage.RetainedKey: "address-pools:\n- name: gone\n  protocol: layer2\n  auto-assign: false\n  addresses: [192.0.2.200/32]\n"},
	}
	_, l2, _, c := runGuarded(t, "node1", members, readyNode("node1", nil, "203.0.113.11"), announcerPod("node1", true), cm,
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, addr))
	waitIPs(t, l2, addr)
	if c.retained.Load() == nil {
		t.Error("retained addresses not kept")
	}
}

func TestRecordConflict(t *testing.T) {
	const vip = "203.0.113.200"
	members := &viewMembers{fakeMembers: newFakeMembers("node1"), contact: true}
	_, l2, rec, c := runGuarded(t, "node1", members, readyNode("node1", nil, "203.0.113.11"), announcerPod("node1", true),
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, vip))
	waitIPs(t, l2, vip)
	c.RecordConflict(netip.MustParseAddr(vip), net.HardwareAddr{2, 0, 0, 0, 0, 0x12})
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if strings.HasPrefix(e, "Warning "+ReasonAddressConflict) && strings.Contains(e, "02:00:00:00:00:12") {
				return
			}
		case <-timeout:
			t.Fatal("no AddressConflict event")
		}
	}
}

// TestGuardWithoutAnnouncerPodsCountsNodes: announcers that do not run as
// the DaemonSet (no Pod matches the selector) count every Node as a voter.
func TestGuardWithoutAnnouncerPodsCountsNodes(t *testing.T) {
	const vip = "203.0.113.200"
	o := ownerAmong(vip, "node1", "node2")
	members := &viewMembers{fakeMembers: newFakeMembers("node1", "node2"), contact: true}
	_, l2, _, _ := runGuarded(t, o, members, readyNode("node1", nil, "203.0.113.11"), readyNode("node2", nil, "203.0.113.12"),
		lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, vip))
	waitIPs(t, l2, vip)
}
