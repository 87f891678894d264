package loadbalancer

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/component-base/metrics/testutil"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

const poolA = `
address-pools:
- name: a
  protocol: bgp
  addresses: [192.0.2.0/30]
  bgp-advertisements:
  - aggregation-length: 30
    communities: [no-advertise]
    localpref: 200
  node-selectors:
  - match-labels: {rack: r1}
bgp-communities:
  no-advertise: "65535:65282"
`

const poolB = `
address-pools:
- name: b
  protocol: layer2
  addresses: [198.51.100.0/30]
`

// eventually polls cond every 10 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent waits for an event on the Service with the reason, whose
// message contains every one of want.
func waitEvent(t *testing.T, client *fake.Clientset, svc *v1.Service, reason string, want ...string) {
	t.Helper()
	var seen []string
	eventually(t, fmt.Sprintf("a %s event on %s containing %q (seen %q)", reason, svc.Name, want, seen), func() bool {
		evs, err := client.CoreV1().Events(svc.Namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		seen = seen[:0]
		for _, ev := range evs.Items {
			seen = append(seen, ev.Reason+": "+ev.Message)
			if ev.InvolvedObject.Name == svc.Name && ev.Reason == reason && ev.Type == v1.EventTypeWarning && containsAll(ev.Message, want) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func retainedData(t *testing.T, client *fake.Clientset) (string, bool) {
	t.Helper()
	cm, err := client.CoreV1().ConfigMaps(DefaultNamespace).Get(context.Background(), RetainedConfigMap, metav1.GetOptions{})
	if err != nil {
		return "", false
	}
	return cm.Data[RetainedConfigMapKey], true
}

func withStatus(s *v1.Service, ips ...string) *v1.Service {
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func createdAt(sec int64) func(*v1.Service) {
	return func(s *v1.Service) { s.CreationTimestamp = metav1.NewTime(time.Unix(sec, 0)) }
}

// A config edit that drops the pool of an address in use applies, and the
// address stays with its Service, flagged by an event, the gauge and the
// ConfigMap the announcers read; releasing it empties the ConfigMap.
func TestReconfigureRetainsAndPublishes(t *testing.T) {
	svc := lbService("default", "web")
	lb, client := startLB(t, poolA, svc)
	ctx := ctxT(t)
	st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", svc, nil)
	if err != nil || ingressIPs(st) != "192.0.2.0" {
		t.Fatalf("Ensure = %s, %v", ingressIPs(st), err)
	}
	if _, ok := retainedData(t, client); ok {
		t.Fatal("ConfigMap written with nothing retained")
	}

	cfg, err := config.Parse([]byte(poolB))
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Reconfigure(ctx, cfg); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	if st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", svc, nil); err != nil || ingressIPs(st) != "192.0.2.0" {
		t.Fatalf("after dropping its pool the Service got %s, %v; want 192.0.2.0 kept", ingressIPs(st), err)
	}
	waitEvent(t, client, svc, EventAddressRetained, "192.0.2.0", "no address pool contains it")
	if v, _ := testutil.GetGaugeMetricValue(retainedAddresses); v != 1 {
		t.Errorf("baremetal_retained_addresses = %v, want 1", v)
	}
	want := `address-pools:
- addresses:
  - 192.0.2.0/32
  auto-assign: false
  bgp-advertisements:
  - communities:
    - 65535:65282
    localpref: 200
  name: a
  node-selectors:
  - match-labels:
      rack: r1
  protocol: bgp
`
	var got string
	eventually(t, "the retained-addresses ConfigMap", func() bool { got, _ = retainedData(t, client); return got == want })
	// The announcers parse it as a cloud-config.
	parsed, err := config.Parse([]byte(got))
	if err != nil || len(parsed.Pools) != 1 || parsed.Pools[0].AutoAssigns() || !parsed.Pools[0].Contains(netip.MustParseAddr("192.0.2.0")) {
		t.Fatalf("ConfigMap content does not parse as the retained pool: %v, %+v", err, parsed)
	}
	// A new Service gets an address of the new pool, never the retained one.
	if st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", lbService("default", "new"), nil); err != nil || !strings.HasPrefix(ingressIPs(st), "198.51.100.") {
		t.Fatalf("new Service got %s, %v", ingressIPs(st), err)
	}

	if err := lb.EnsureLoadBalancerDeleted(ctx, "kubernetes", svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an empty retained list", func() bool { got, _ = retainedData(t, client); return got == "address-pools: []\n" })
	if v, _ := testutil.GetGaugeMetricValue(retainedAddresses); v != 0 {
		t.Errorf("baremetal_retained_addresses = %v after release, want 0", v)
	}
}

// The leader reads the ConfigMap back now and then and corrects a stale
// list, which a deposed leader may have written after it.
func TestRetainedConfigMapIsCorrected(t *testing.T) {
	svc := lbService("default", "web")
	lb, client := startLB(t, poolA, svc)
	ctx := ctxT(t)
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", svc, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Parse([]byte(poolB))
	if err := lb.Reconfigure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var want string
	eventually(t, "the ConfigMap", func() bool { d, ok := retainedData(t, client); want = d; return ok && d != "" })
	cm, _ := client.CoreV1().ConfigMaps(DefaultNamespace).Get(ctx, RetainedConfigMap, metav1.GetOptions{})
	cm.Data[RetainedConfigMapKey] = "address-pools: []\n"
	if _, err := client.CoreV1().ConfigMaps(DefaultNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := lb.publishRetained(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := retainedData(t, client); got == want {
		t.Fatal("rewritten without a change or a check")
	}
	if err := lb.publishRetained(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := retainedData(t, client); got != want {
		t.Fatalf("after a check the ConfigMap holds %q, want %q", got, want)
	}
}

// Hole 1 of issue 9: after a restart, a status address outside every pool
// stays with its Service, and the previous leader's ConfigMap gives it its
// old pool's settings, which are published unchanged.
func TestRestartKeepsAddressOutsidePools(t *testing.T) {
	const previous = `address-pools:
- addresses:
  - 192.0.2.5/32
  auto-assign: false
  name: old
  protocol: layer2
`
	svc := withStatus(lbService("default", "kept"), "192.0.2.5")
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: DefaultNamespace, Name: RetainedConfigMap, ResourceVersion: "7"},
		Data:       map[string]string{RetainedConfigMapKey: previous},
	}
	lb, client := startLB(t, poolB, svc, cm)
	ctx := ctxT(t)
	st, exists, err := lb.GetLoadBalancer(ctx, "kubernetes", svc)
	if err != nil || !exists || ingressIPs(st) != "192.0.2.5" {
		t.Fatalf("restored %s (exists %v), %v; want 192.0.2.5", ingressIPs(st), exists, err)
	}
	if st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", svc, nil); err != nil || ingressIPs(st) != "192.0.2.5" {
		t.Fatalf("Ensure after restart = %s, %v; want 192.0.2.5 kept", ingressIPs(st), err)
	}
	waitEvent(t, client, svc, EventAddressRetained, "192.0.2.5")
	// Same content: not rewritten.
	time.Sleep(100 * time.Millisecond)
	got, _ := client.CoreV1().ConfigMaps(DefaultNamespace).Get(ctx, RetainedConfigMap, metav1.GetOptions{})
	if got.Data[RetainedConfigMapKey] != previous || got.ResourceVersion != "7" {
		t.Fatalf("ConfigMap rewritten: %q (resourceVersion %s)", got.Data[RetainedConfigMapKey], got.ResourceVersion)
	}
}

// Hole 3 of issue 9, prevention: an address released in memory is not
// handed out while another Service's status still shows it; the pending
// Service is woken when the status lets it go.
func TestAddressInAnotherStatusIsNotReused(t *testing.T) {
	const onePool = `
address-pools:
- name: one
  protocol: layer2
  addresses: [203.0.113.9/32]
`
	old := withStatus(lbService("default", "old"), "203.0.113.9")
	waiting := lbService("default", "waiting")
	lb, client := startLB(t, onePool, old, waiting)
	ctx := ctxT(t)
	if st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", old, nil); err != nil || ingressIPs(st) != "203.0.113.9" {
		t.Fatalf("old: %s, %v", ingressIPs(st), err)
	}
	// old turns ClusterIP: the controller releases first, then clears the
	// status.
	if err := lb.EnsureLoadBalancerDeleted(ctx, "kubernetes", old); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", waiting, nil); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("waiting got an address still in old's status: %v", err)
	}
	if ann := getSvc(t, client, "waiting").Annotations[RetryAnnotation]; ann != "" {
		t.Fatal("nudged while the address was still in a status")
	}
	cleared := getSvc(t, client, "old")
	cleared.Spec.Type = v1.ServiceTypeClusterIP
	cleared.Status.LoadBalancer.Ingress = nil
	if _, err := client.CoreV1().Services("default").Update(ctx, cleared, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a nudge of the pending Service", func() bool { return getSvc(t, client, "waiting").Annotations[RetryAnnotation] != "" })
	if st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", waiting, nil); err != nil || ingressIPs(st) != "203.0.113.9" {
		t.Fatalf("waiting after the status cleared: %s, %v", ingressIPs(st), err)
	}
}

func getSvc(t *testing.T, client *fake.Clientset, name string) *v1.Service {
	t.Helper()
	s, err := client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Hole 4 of issue 9: a pending Service that stops wanting an address from
// us leaves the retry list, and is not nudged.
func TestRetrierDropsServicesThatNoLongerWantAnAddress(t *testing.T) {
	const onePool = `
address-pools:
- name: one
  protocol: layer2
  addresses: [203.0.113.9/32]
`
	class := "other.example/lb"
	tests := []struct {
		name   string
		change func(ctx context.Context, client *fake.Clientset, s *v1.Service) error
	}{
		{"turned ClusterIP", func(ctx context.Context, c *fake.Clientset, s *v1.Service) error {
			s.Spec.Type = v1.ServiceTypeClusterIP
			_, err := c.CoreV1().Services(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
			return err
		}},
		{"given a loadBalancerClass", func(ctx context.Context, c *fake.Clientset, s *v1.Service) error {
			s.Spec.LoadBalancerClass = &class
			_, err := c.CoreV1().Services(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
			return err
		}},
		{"deleted", func(ctx context.Context, c *fake.Clientset, s *v1.Service) error {
			return c.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holder, pending := lbService("default", "holder"), lbService("default", "pending")
			lb, client := startLB(t, onePool, holder, pending)
			ctx := ctxT(t)
			if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", holder, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", pending, nil); err == nil {
				t.Fatal("want the pool exhausted")
			}
			if !lb.retrier.has("default/pending") {
				t.Fatal("pending Service not on the retry list")
			}
			if err := tt.change(ctx, client, getSvc(t, client, "pending")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the Service to leave the retry list", func() bool { return !lb.retrier.has("default/pending") })
		})
	}

	// The nudge itself checks the cache: a Service put on the list that no
	// longer wants us is dropped, not patched.
	turned := lbService("default", "turned", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeClusterIP })
	lb, client := startLB(t, onePool, turned)
	lb.retrier.add("default/turned", anyFamily)
	lb.retrier.kick(anyFamily)
	eventually(t, "the nudge to drop the Service", func() bool { return !lb.retrier.has("default/turned") })
	if ann := getSvc(t, client, "turned").Annotations[RetryAnnotation]; ann != "" {
		t.Fatal("a ClusterIP Service was nudged")
	}
}

// Hole 4 of issue 9: a PreferDualStack Service that got only its primary
// family, the second being exhausted, gets it when one frees up.
func TestPreferDualStackGetsSecondFamilyWhenFreed(t *testing.T) {
	const pools = `
address-pools:
- name: v4
  protocol: layer2
  addresses: [203.0.113.0/28]
- name: v6
  protocol: layer2
  addresses: ['2001:db8::9/128']
`
	prefer := v1.IPFamilyPolicyPreferDualStack
	v6 := lbService("default", "v6", func(s *v1.Service) { s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol} })
	dual := lbService("default", "dual", func(s *v1.Service) {
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
		s.Spec.IPFamilyPolicy = &prefer
	})
	lb, client := startLB(t, pools, v6, dual, lbService("default", "v4"))
	ctx := ctxT(t)
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", v6, nil); err != nil {
		t.Fatal(err)
	}
	st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", dual, nil)
	if err != nil || ingressIPs(st) != "203.0.113.0" {
		t.Fatalf("dual got %s, %v; want the IPv4 address only", ingressIPs(st), err)
	}
	if !lb.retrier.has("default/dual") {
		t.Fatal("a PreferDualStack Service short of a family is not pending")
	}
	// An IPv4 address freed is no use to it: no nudge.
	v4 := lbService("default", "v4")
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", v4, nil); err != nil {
		t.Fatal(err)
	}
	if err := lb.EnsureLoadBalancerDeleted(ctx, "kubernetes", v4); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if getSvc(t, client, "dual").Annotations[RetryAnnotation] != "" {
		t.Fatal("nudged for a freed IPv4 address while waiting for IPv6")
	}
	if err := lb.EnsureLoadBalancerDeleted(ctx, "kubernetes", v6); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a nudge of the dual-stack Service", func() bool { return getSvc(t, client, "dual").Annotations[RetryAnnotation] != "" })
	st, err = lb.EnsureLoadBalancer(ctx, "kubernetes", dual, nil)
	if err != nil || ingressIPs(st) != "203.0.113.0,2001:db8::9" {
		t.Fatalf("dual after the IPv6 address was freed: %s, %v", ingressIPs(st), err)
	}
	if lb.retrier.has("default/dual") {
		t.Fatal("served Service still pending")
	}
}

// Hole 3 of issue 9, repair: two of our Services whose status shows one
// address; the younger loses it, with an event naming the older, and is
// nudged, and the allocator records the older one as its holder.
func TestDuplicateAudit(t *testing.T) {
	defer auditDebounce.Store(auditDebounce.Swap(int64(10 * time.Millisecond)))
	tests := []struct {
		name     string
		existing []runtime.Object
		// young holds the address in the allocator before the statuses
		// collide (a late patch from a deposed leader).
		youngFirst bool
	}{
		{
			name: "both statuses at restart",
			existing: []runtime.Object{
				withStatus(lbService("default", "young", createdAt(2000)), "192.0.2.1"),
				withStatus(lbService("default", "old", createdAt(1000)), "192.0.2.1"),
			},
		},
		{
			name: "a late status patch onto an address the young one holds",
			existing: []runtime.Object{
				lbService("default", "young", createdAt(2000)),
				lbService("default", "old", createdAt(1000)),
			},
			youngFirst: true,
		},
		{
			name: "same creation time: the name decides",
			existing: []runtime.Object{
				withStatus(lbService("default", "b-young", createdAt(1000)), "192.0.2.1"),
				withStatus(lbService("default", "a-old", createdAt(1000)), "192.0.2.1"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			youngName, oldName := tt.existing[0].(*v1.Service).Name, tt.existing[1].(*v1.Service).Name
			lb, client := startLB(t, poolA, tt.existing...)
			ctx := ctxT(t)
			before := repaired()
			if tt.youngFirst {
				young := getSvc(t, client, youngName)
				if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", young, nil); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{youngName, oldName} {
					s := withStatus(getSvc(t, client, name), "192.0.2.0")
					if _, err := client.CoreV1().Services("default").UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			ip := "192.0.2.1"
			if tt.youngFirst {
				ip = "192.0.2.0"
			}
			young := getSvc(t, client, youngName)
			waitEvent(t, client, young, EventDuplicateAddress, ip, "default/"+oldName)
			eventually(t, "the address gone from the younger status", func() bool {
				s := getSvc(t, client, youngName)
				return len(s.Status.LoadBalancer.Ingress) == 0 && s.Annotations[RetryAnnotation] != ""
			})
			if got := getSvc(t, client, oldName).Status.LoadBalancer.Ingress; len(got) != 1 || got[0].IP != ip {
				t.Fatalf("older Service's status = %v, want %s kept", got, ip)
			}
			if held := lb.alloc.Lookup("default/" + oldName); len(held) != 1 || held[0].IP.String() != ip {
				t.Fatalf("allocator: older holds %v, want %s", held, ip)
			}
			if repaired() != before+1 {
				t.Fatalf("duplicates repaired went from %v to %v", before, repaired())
			}
			// The younger one's next sync gives it another address.
			st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", getSvc(t, client, youngName), nil)
			if err != nil || ingressIPs(st) == ip {
				t.Fatalf("younger after the repair: %s, %v", ingressIPs(st), err)
			}
		})
	}
}

func repaired() float64 {
	v, _ := testutil.GetCounterMetricValue(duplicatesRepaired)
	return v
}

// Two Services sharing an address on purpose are left alone.
func TestDuplicateAuditLeavesSharedAddresses(t *testing.T) {
	defer auditDebounce.Store(auditDebounce.Swap(int64(10 * time.Millisecond)))
	share := func(port int32) func(*v1.Service) {
		return func(s *v1.Service) {
			s.Annotations["metallb.universe.tf/allow-shared-ip"] = "k"
			s.Spec.Ports[0].Port = port
		}
	}
	one := withStatus(lbService("default", "one", createdAt(1000), share(80)), "192.0.2.1")
	two := withStatus(lbService("default", "two", createdAt(2000), share(81)), "192.0.2.1")
	lb, client := startLB(t, poolA, one, two)
	ctx := ctxT(t)
	lb.auditDuplicates(ctx)
	time.Sleep(50 * time.Millisecond)
	if got := getSvc(t, client, "two").Status.LoadBalancer.Ingress; len(got) != 1 {
		t.Fatalf("shared address removed: %v", got)
	}
}
