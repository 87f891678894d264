package controller

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
)

// reannouncing is a fakeAnnouncer that counts Reannounce calls.
type reannouncing struct {
	fakeAnnouncer
	n atomic.Int32
}

func (r *reannouncing) Reannounce() { r.n.Add(1) }

// TestOwnerAnnouncesAgainWhenANodeJoins: a node that joins may have taken
// the owner's IPs while it was cut off, so the owner announces them again;
// a node leaving, or nothing changing, is no reason to.
func TestOwnerAnnouncesAgainWhenANodeJoins(t *testing.T) {
	o := ownerAmong(ip, "node1", "node2", "node3")
	var other string
	for _, n := range []string{"node1", "node2", "node3"} {
		if n != o && ownerAmong(ip, without(n)...) == o {
			other = n
			break
		}
	}
	if other == "" {
		t.Fatal("no node whose absence leaves the owner in place")
	}
	members := newFakeMembers("node1", "node2", "node3")
	l2 := &reannouncing{}
	var objs []runtimeObject
	for _, obj := range append(threeNodes(), lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip)) {
		objs = append(objs, obj.(runtimeObject))
	}
	c := New(Config{
		NodeName: o, Cloud: testCloud(t), Client: fake.NewClientset(toRuntime(objs)...), Announcers: layer2Only(l2),
		Recorder: record.NewFakeRecorder(100), DefaultInterface: func() (string, error) { return "eth0", nil },
		ResyncPeriod: 20 * time.Millisecond, // passes without any change
	})
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; c.Shutdown() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(done); c.Run(ctx, members) }()
	h := &harness{t: t, layer2: &l2.fakeAnnouncer}
	h.announces(ip)

	steps := []struct {
		desc    string
		members []string
		want    int32
	}{
		{"nothing changes", []string{"node1", "node2", "node3"}, 0},
		{other + " leaves", without(other), 0},
		{other + " joins again", []string{"node1", "node2", "node3"}, 1},
	}
	for _, s := range steps {
		members.set(s.members...)
		time.Sleep(100 * time.Millisecond) // several passes
		h.announces(ip)
		if got := l2.n.Load(); got != s.want {
			t.Errorf("%s: Reannounce called %d times in all, want %d", s.desc, got, s.want)
		}
	}
}

// without returns the three test nodes minus gone.
func without(gone string) []string {
	var out []string
	for _, n := range []string{"node1", "node2", "node3"} {
		if n != gone {
			out = append(out, n)
		}
	}
	return out
}
