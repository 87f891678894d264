package onewrite

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
)

// testConfig is a pool of the documentation range for the tests.
const testConfig = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.0/28
`

// oneAddressConfig has room for one Service, so that a second one gets an
// address only once the first has released it.
const oneAddressConfig = `address-pools:
- name: one
  protocol: layer2
  addresses:
  - 192.0.2.10/32
`

// writesUntilIP returns the events of a Service up to the first one that
// shows an address: each is one write to the Service (the create, then
// every patch), as the watch delivers every resourceVersion in order.
func writesUntilIP(h []sighting) []sighting {
	for i, s := range h {
		if len(s.ips) > 0 {
			return h[:i+1]
		}
	}
	return h
}

// TestOneWriteWithPolicy is the point of the component: with the policy
// installed, a new LoadBalancer Service is stored with the cleanup
// finalizer, and the next (and only) change before its IP shows is the
// CCM's status write. A finalizer the user gave is kept.
func TestOneWriteWithPolicy(t *testing.T) {
	e := newEnv(t, cp, testTimeout)
	e.readyNode("onewrite-node-0")
	e.installComponent()
	r := newRecorder(e, e.ns)
	startCCM(t, cp, testConfig)

	cases := []struct {
		name string
		svc  *corev1.Service
		want []string // finalizers after the create
	}{
		{"plain", lbService("web"), []string{cleanupFinalizer}},
		{"user finalizer kept", lbService("keep", withFinalizers("example.com/keep")), []string{"example.com/keep", cleanupFinalizer}},
		{"already there", lbService("twice", withFinalizers(cleanupFinalizer)), []string{cleanupFinalizer}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := e.create(e.ns, tc.svc)
			if got := slices.Sorted(slices.Values(out.Finalizers)); !slices.Equal(got, slices.Sorted(slices.Values(tc.want))) {
				t.Fatalf("finalizers after the create: %v, want %v (the policy adds %s at admission, once)", out.Finalizers, tc.want, cleanupFinalizer)
			}
			if err := r.waitIPs([]string{tc.svc.Name}, ipTimeout); err != nil {
				t.Fatalf("%v\nevents:\n%s", err, describe(r.history(tc.svc.Name)))
			}
			w := writesUntilIP(r.history(tc.svc.Name))
			if len(w) != 2 || w[0].typ != watch.Added || w[1].typ != watch.Modified {
				t.Fatalf("want the create and one status write before the IP, got %d writes:\n%s", len(w), describe(w))
			}
			if !slices.Contains(w[0].finalizers, cleanupFinalizer) || !slices.Contains(w[1].finalizers, cleanupFinalizer) {
				t.Fatalf("the finalizer must be there from the create on:\n%s", describe(w))
			}
			t.Logf("%s: create (rv %s) and one status write (rv %s, %v)", tc.svc.Name, w[0].rv, w[1].rv, w[1].ips)
		})
	}
}

// TestTwoWritesWithoutPolicy is today's path, and what a cluster without
// the component keeps: the Service is stored without the finalizer, the
// CCM patches it in, then writes the status.
func TestTwoWritesWithoutPolicy(t *testing.T) {
	e := newEnv(t, cp, testTimeout)
	e.readyNode("onewrite-node-0")
	e.waitPolicy(e.ns, false) // another test's policy is gone
	r := newRecorder(e, e.ns)
	startCCM(t, cp, testConfig)

	out := e.create(e.ns, lbService("web"))
	if len(out.Finalizers) != 0 {
		t.Fatalf("finalizers after the create without the policy: %v, want none", out.Finalizers)
	}
	if err := r.waitIPs([]string{"web"}, ipTimeout); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, describe(r.history("web")))
	}
	w := writesUntilIP(r.history("web"))
	if len(w) != 3 || slices.Contains(w[0].finalizers, cleanupFinalizer) ||
		!slices.Contains(w[1].finalizers, cleanupFinalizer) || len(w[1].ips) != 0 {
		t.Fatalf("want the create, the CCM's finalizer patch and its status write, got:\n%s", describe(w))
	}
	// And deletion releases as before.
	if err := e.cs.CoreV1().Services(e.ns).Delete(e.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.waitGone("web", ipTimeout); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, describe(r.history("web")))
	}
}

// TestDeletionWaitsForRelease: the finalizer added at admission holds a
// deleted Service until the CCM has released its address, as the one the
// CCM adds itself does. Also when the CCM never saw the Service before it
// was deleted: it is then removed once the CCM runs.
func TestDeletionWaitsForRelease(t *testing.T) {
	e := newEnv(t, cp, testTimeout)
	e.readyNode("onewrite-node-0")
	e.installComponent()
	r := newRecorder(e, e.ns)
	c := startCCM(t, cp, oneAddressConfig)

	// One address: "first" holds it, "second" waits for it.
	e.create(e.ns, lbService("first"))
	if err := r.waitIPs([]string{"first"}, ipTimeout); err != nil {
		t.Fatal(err)
	}
	e.create(e.ns, lbService("second"))
	if err := e.cs.CoreV1().Services(e.ns).Delete(e.ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.waitGone("first", ipTimeout); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, describe(r.history("first")))
	}
	h := r.history("first")
	held := slices.ContainsFunc(h, func(s sighting) bool { return s.deleting && slices.Contains(s.finalizers, cleanupFinalizer) })
	if !held {
		t.Fatalf("the deleted Service must wait, with the finalizer, for the CCM:\n%s", describe(h))
	}
	if err := r.waitIPs([]string{"second"}, ipTimeout); err != nil {
		t.Fatalf("the released address was not given to the waiting Service: %v\nevents:\n%s", err, describe(r.history("second")))
	}
	if got := apitest.IngressIPs(e.get(e.ns, "second")); !slices.Equal(got, []string{"192.0.2.10"}) {
		t.Fatalf("second has %v, want the released 192.0.2.10", got)
	}

	// Created and deleted while no CCM runs: it stays until one does.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	e.create(e.ns, lbService("unseen"))
	if err := e.cs.CoreV1().Services(e.ns).Delete(e.ctx, "unseen", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := e.get(e.ns, "unseen"); s.DeletionTimestamp == nil || !hasCleanupFinalizer(s) {
		t.Fatalf("unseen: deletionTimestamp %v, finalizers %v: want it held by the finalizer", s.DeletionTimestamp, s.Finalizers)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.waitGone("unseen", ipTimeout); err != nil {
		t.Fatalf("the CCM did not let the deleted Service go: %v\nevents:\n%s", err, describe(r.history("unseen")))
	}
}

// TestOtherServicesUntouched: the policy changes nothing on Services that
// are not LoadBalancers, on LoadBalancers of another class, and on
// updates: a ClusterIP Service turned into a LoadBalancer gets its
// finalizer from the CCM, as today.
func TestOtherServicesUntouched(t *testing.T) {
	e := newEnv(t, cp, testTimeout)
	e.readyNode("onewrite-node-0")
	e.installComponent()
	r := newRecorder(e, e.ns)
	startCCM(t, cp, testConfig)

	others := []*corev1.Service{
		service("cluster-ip", corev1.ServiceTypeClusterIP),
		service("node-port", corev1.ServiceTypeNodePort),
		service("external-name", corev1.ServiceTypeExternalName),
		lbService("other-class", withClass("example.com/other-lb")),
		service("headless", corev1.ServiceTypeClusterIP, func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }),
	}
	for _, s := range others {
		if out := e.create(e.ns, s); len(out.Finalizers) != 0 {
			t.Errorf("%s (type %s): finalizers %v after the create, want none", s.Name, s.Spec.Type, out.Finalizers)
		}
	}
	// A Service created last gets its IP after the CCM has seen the
	// others (one informer, in order).
	e.create(e.ns, lbService("marker"))
	e.create(e.ns, service("later-lb", corev1.ServiceTypeClusterIP))
	patch := []byte(`{"spec":{"type":"LoadBalancer"}}`)
	if _, err := e.cs.CoreV1().Services(e.ns).Patch(e.ctx, "later-lb", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.waitIPs([]string{"marker", "later-lb"}, ipTimeout); err != nil {
		t.Fatalf("%v\nmarker:\n%slater-lb:\n%s", err, describe(r.history("marker")), describe(r.history("later-lb")))
	}
	for _, s := range others {
		h := r.history(s.Name)
		if len(h) != 1 || h[0].typ != watch.Added {
			t.Errorf("%s was written after its create:\n%s", s.Name, describe(h))
		}
		if got := e.get(e.ns, s.Name); len(got.Finalizers) != 0 || len(got.Status.LoadBalancer.Ingress) != 0 {
			t.Errorf("%s: finalizers %v, status %v: want neither", s.Name, got.Finalizers, got.Status.LoadBalancer)
		}
	}
	// The update path: type changed, then the CCM's finalizer patch and
	// its status write, as without the policy.
	w := writesUntilIP(r.history("later-lb"))
	if len(w) != 4 || slices.Contains(w[1].finalizers, cleanupFinalizer) || !slices.Contains(w[2].finalizers, cleanupFinalizer) {
		t.Errorf("later-lb: want create, type change, the CCM's finalizer patch, status; got:\n%s", describe(w))
	}
}

// TestClusterIPLosesFinalizer: a Service created as a LoadBalancer (so
// with the finalizer from admission) and later changed to ClusterIP loses
// the finalizer and its address through the service controller, whether
// the CCM had served it or had never seen it.
func TestClusterIPLosesFinalizer(t *testing.T) {
	e := newEnv(t, cp, testTimeout)
	e.readyNode("onewrite-node-0")
	e.installComponent()
	r := newRecorder(e, e.ns)
	c := startCCM(t, cp, testConfig)
	toClusterIP := []byte(`{"spec":{"type":"ClusterIP"}}`)

	e.create(e.ns, lbService("served"))
	if err := r.waitIPs([]string{"served"}, ipTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().Services(e.ns).Patch(e.ctx, "served", types.MergePatchType, toClusterIP, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitReleased("served")

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if out := e.create(e.ns, lbService("unseen")); !hasCleanupFinalizer(out) {
		t.Fatalf("unseen: finalizers %v after the create, want %s", out.Finalizers, cleanupFinalizer)
	}
	if _, err := e.cs.CoreV1().Services(e.ns).Patch(e.ctx, "unseen", types.MergePatchType, toClusterIP, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitReleased("unseen")
}

// waitReleased waits until ns/name has neither the finalizer nor an
// address.
func (e *env) waitReleased(name string) {
	e.t.Helper()
	var last *corev1.Service
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		s, err := e.cs.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = s
		return !hasCleanupFinalizer(s) && len(s.Status.LoadBalancer.Ingress) == 0, nil
	})
	if err != nil {
		if last == nil {
			e.t.Fatalf("%s: %v", name, err)
		}
		e.t.Fatalf("%s still has finalizers %v and status %v %v after its change to %s: %v",
			name, last.Finalizers, last.Status.LoadBalancer, ipTimeout, last.Spec.Type, err)
	}
	if last.Spec.Type != corev1.ServiceTypeClusterIP {
		e.t.Fatalf("%s is of type %s", name, last.Spec.Type)
	}
}
