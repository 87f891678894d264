package integration

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// allocationConfig has one pool per rule under test. %[1]s is the only
// namespace allowed to use pool "team".
const allocationConfig = `address-pools:
- name: default
  protocol: layer2
  priority: 10
  addresses:
  - 203.0.113.0/28
  - 2001:db8:1::/124
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses:
  - 198.51.100.0/29
- name: team
  protocol: layer2
  namespaces: [%[1]s]
  addresses:
  - 198.51.100.16/29
- name: tiny
  protocol: layer2
  auto-assign: false
  addresses:
  - 192.0.2.10/32
`

const (
	defaultV4 = "203.0.113.0/28"
	defaultV6 = "2001:db8:1::/124"
	reserved  = "198.51.100.0/29"
	teamPool  = "198.51.100.16/29"
	tinyIP    = "192.0.2.10"
)

// TestAllocationRules creates real Services for every allocation rule and
// checks what lands in their status, or the event that says why not.
func TestAllocationRules(t *testing.T) {
	e := newEnv(t)
	teamNS := e.ns
	otherNS := e.namespace("other")
	ccm.Start(t, cp, ccm.Options{CloudConfig: fmt.Sprintf(allocationConfig, teamNS)})

	t.Run("single Services", func(t *testing.T) {
		e := e.sub(t)
		tests := []struct {
			name string
			ns   string
			opts []svcOpt
			// want lists, per status entry in order, the range or CIDR
			// the address must lie in (an exact address is a /32).
			want []string
			// wantEvent, if set, is what the SyncLoadBalancerFailed
			// warning must say instead.
			wantEvent []string
		}{
			{
				name: "metallb.universe.tf/address-pool takes a pool that does not auto-assign",
				ns:   otherNS, opts: []svcOpt{annotations("metallb.universe.tf/address-pool", "reserved")},
				want: []string{reserved},
			},
			{
				name: "metallb.io/address-pool too",
				ns:   otherNS, opts: []svcOpt{annotations("metallb.io/address-pool", "reserved")},
				want: []string{reserved},
			},
			{
				name: "spec.loadBalancerIP gets exactly that address",
				ns:   otherNS, opts: []svcOpt{loadBalancerIP("203.0.113.7")},
				want: []string{"203.0.113.7/32"},
			},
			{
				name: "metallb.universe.tf/loadBalancerIPs gets exactly that address",
				ns:   otherNS, opts: []svcOpt{annotations("metallb.universe.tf/loadBalancerIPs", "203.0.113.8")},
				want: []string{"203.0.113.8/32"},
			},
			{
				name: "loadBalancerIPs with one address per family on a dual-stack Service",
				ns:   otherNS,
				opts: []svcOpt{
					families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
					annotations("metallb.universe.tf/loadBalancerIPs", "203.0.113.9,2001:db8:1::9"),
				},
				want: []string{"203.0.113.9/32", "2001:db8:1::9/128"},
			},
			{
				name: "RequireDualStack gets one IPv4 and one IPv6 address",
				ns:   otherNS, opts: []svcOpt{families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol)},
				want: []string{defaultV4, defaultV6},
			},
			{
				name: "IPv6-first RequireDualStack lists the IPv6 address first",
				ns:   otherNS, opts: []svcOpt{families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol)},
				want: []string{defaultV6, defaultV4},
			},
			{
				name: "IPv6 single-stack gets an IPv6 address",
				ns:   otherNS, opts: []svcOpt{families(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol)},
				want: []string{defaultV6},
			},
			{
				name: "a namespace-restricted pool serves its namespace first",
				ns:   teamNS,
				want: []string{teamPool},
			},
			{
				name: "other namespaces get the auto-assign pool",
				ns:   otherNS,
				want: []string{defaultV4},
			},
			{
				name:      "another namespace may not name the restricted pool",
				ns:        otherNS,
				opts:      []svcOpt{annotations("metallb.universe.tf/address-pool", "team")},
				wantEvent: []string{`pool "team"`, "does not allow"},
			},
			{
				name:      "an unknown pool is named",
				ns:        otherNS,
				opts:      []svcOpt{annotations("metallb.io/address-pool", "nope")},
				wantEvent: []string{`"nope"`, "does not exist"},
			},
			{
				name:      "a requested address outside every pool is named",
				ns:        otherNS,
				opts:      []svcOpt{annotations("metallb.universe.tf/loadBalancerIPs", "192.0.2.99")},
				wantEvent: []string{"192.0.2.99", "not in any address pool"},
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := e.sub(t)
				name := fmt.Sprintf("rule-%d", i)
				e.create(tt.ns, lbService(name, tt.opts...))
				if len(tt.wantEvent) > 0 {
					e.waitEvent(tt.ns, name, "Warning", "SyncLoadBalancerFailed", tt.wantEvent...)
					if ips := apitest.IngressIPs(e.get(tt.ns, name)); len(ips) > 0 {
						t.Errorf("status has %v despite the failure", ips)
					}
					return
				}
				ips := apitest.IngressIPs(e.waitIPs(tt.ns, name, len(tt.want)))
				if len(ips) != len(tt.want) {
					t.Fatalf("got %v, want addresses in %v", ips, tt.want)
				}
				for k := range ips {
					if !inRange(ips[k], tt.want[k]) {
						t.Errorf("address %d is %s, want it in %s (all: %v)", k, ips[k], tt.want[k], ips)
					}
				}
			})
		}
	})

	t.Run("sharing", func(t *testing.T) {
		e := e.sub(t)
		ns := otherNS
		http := e.waitIPs(ns, e.create(ns, lbService("web-http", ports(80),
			annotations("metallb.universe.tf/allow-shared-ip", "web"))).Name, 1)
		shared := apitest.IngressIPs(http)[0]

		// Same key, no common port: same address, under either prefix.
		https := e.waitIPs(ns, e.create(ns, lbService("web-https", ports(443),
			annotations("metallb.io/allow-shared-ip", "web"))).Name, 1)
		if got := apitest.IngressIPs(https)[0]; got != shared {
			t.Errorf("web-https got %s, want the shared %s", got, shared)
		}

		// Same key but port 80 again: a collision, so a different address.
		again := e.waitIPs(ns, e.create(ns, lbService("web-http-2", ports(80),
			annotations("metallb.universe.tf/allow-shared-ip", "web"))).Name, 1)
		if got := apitest.IngressIPs(again)[0]; got == shared {
			t.Errorf("web-http-2 got the shared %s although port 80 collides", got)
		}

		// Asking for the shared address under another key is refused,
		// and the event says which address and why.
		e.create(ns, lbService("other-key", ports(8080), annotations(
			"metallb.universe.tf/allow-shared-ip", "other",
			"metallb.universe.tf/loadBalancerIPs", shared)))
		e.waitEvent(ns, "other-key", "Warning", "SyncLoadBalancerFailed", shared, "allow-shared-ip")
	})

	t.Run("exhausted pool", func(t *testing.T) {
		e := e.sub(t)
		ns := otherNS
		w := newIPWatch(t, e.ctx, e.cs, ns)
		pool := annotations("metallb.universe.tf/address-pool", "tiny")
		first := e.waitIPs(ns, e.create(ns, lbService("tiny-1", pool)).Name, 1)
		if got := apitest.IngressIPs(first); len(got) != 1 || got[0] != tinyIP {
			t.Fatalf("tiny-1 got %v, want [%s]", got, tinyIP)
		}
		e.create(ns, lbService("tiny-2", pool))
		e.waitEvent(ns, "tiny-2", "Warning", "SyncLoadBalancerFailed", `pool "tiny"`, "exhausted")

		// Freeing the address must not leave tiny-2 to the service
		// controller's back-off (5 s, doubling): the provider nudges it.
		if err := e.cs.CoreV1().Services(ns).Delete(e.ctx, "tiny-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		if err := w.waitFor([]string{"tiny-2"}, ipTimeout); err != nil {
			t.Fatalf("%v\nevents:\n%s", err, e.describeEvents(ns, "tiny-2"))
		}
		at, _ := w.seen("tiny-2")
		got := e.get(ns, "tiny-2")
		if ips := apitest.IngressIPs(got); len(ips) != 1 || ips[0] != tinyIP {
			t.Errorf("tiny-2 got %v, want the freed %s", ips, tinyIP)
		}
		_, nudged := got.Annotations["cloud-provider-baremetal.io/allocation-retry"]
		t.Logf("exhausted pool: tiny-2 got %s %v after tiny-1's delete (nudged by annotation: %v)",
			tinyIP, at.Sub(deleted).Round(time.Millisecond), nudged)
		if !nudged {
			t.Errorf("tiny-2 has no allocation-retry annotation: it got the address from the back-off, not from the nudge")
		}
		if _, err := e.cs.CoreV1().Services(ns).Get(e.ctx, "tiny-1", metav1.GetOptions{}); err == nil {
			t.Errorf("tiny-1 still exists: its finalizer was not removed")
		}
	})
}
