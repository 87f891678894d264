package chaos

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// event is one step of an observer test: a Service as an informer delivers
// it, or its deletion.
type event struct {
	svc    *corev1.Service
	delete string
	// config, when set, is written (a valid edit) before the event.
	config func(*cloudConfig)
}

func TestObserverInvariants(t *testing.T) {
	pinAlpha := withAnn(annPool, "alpha")
	tests := []struct {
		name   string
		events []event
		want   []string // violation kinds, in order
	}{
		{
			name: "an address kept across a touch is fine",
			events: []event{
				{svc: svc("a")},
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a", withStatus("192.0.2.1"), withAnn(annTouch, "1"))},
			},
		},
		{
			name: "an address replaced with no spec change is a move",
			events: []event{
				{svc: svc("a")},
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a", withStatus("192.0.2.1"), withAnn(annTouch, "1"))},
				{svc: svc("a", withStatus("192.0.2.2"), withAnn(annTouch, "1"))},
			},
			want: []string{vMoved},
		},
		{
			name: "an address replaced after the pool annotation changed is asked for",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a", withStatus("192.0.2.1"), withAnn(annPool, "beta"))},
				{svc: svc("a", withStatus("198.51.100.1"), withAnn(annPool, "beta"))},
			},
		},
		{
			name: "an address taken away with no spec change is a drop",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a")},
			},
			want: []string{vDropped},
		},
		{
			name: "an address taken away after a retype is asked for",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a", withStatus("192.0.2.1"), withType(corev1.ServiceTypeClusterIP))},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP))},
			},
		},
		{
			name: "a status computed from an older spec, then moved for the newer one",
			events: []event{
				{svc: svc("a")},
				{svc: svc("a", withPorts(443))},
				// The CCM's patch from the first spec lands after the edit.
				{svc: svc("a", withPorts(443), withStatus("192.0.2.1"))},
				{svc: svc("a", withPorts(443), withStatus("192.0.2.2"))},
			},
		},
		{
			name: "a retained address after a config edit is no violation",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{config: func(c *cloudConfig) { c.Pools = c.Pools[1:] }, svc: svc("a", withStatus("192.0.2.1"), withAnn(annTouch, "1"))},
			},
		},
		{
			name: "a move after its pool was dropped is hole 1",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{config: func(c *cloudConfig) { c.Pools = c.Pools[1:] }, svc: svc("a", withStatus("198.51.100.1"))},
			},
			want: []string{vMoved + " hole 1"},
		},
		{
			name: "a pinned move after a swap of ranges is hole 2",
			events: []event{
				{svc: svc("a", pinAlpha, withStatus("192.0.2.1"))},
				{config: func(c *cloudConfig) { c.Pools[0].Blocks, c.Pools[1].Blocks = c.Pools[1].Blocks, c.Pools[0].Blocks },
					svc: svc("a", pinAlpha, withStatus("198.51.100.0"))},
			},
			want: []string{vMoved + " hole 2"},
		},
		{
			name: "two settled Services showing one address",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("b", withStatus("192.0.2.1"))},
			},
			want: []string{vDuplicate + " hole 3"},
		},
		{
			name: "two Services sharing under one key",
			events: []event{
				{svc: svc("a", withAnn(annShare, "k"), withStatus("192.0.2.1"))},
				{svc: svc("b", withAnn(annShare, "k"), withPorts(443), withStatus("192.0.2.1"))},
			},
		},
		{
			name: "the old holder is being deleted",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a", withStatus("192.0.2.1"), withDeleting, withFinalizer)},
				{svc: svc("b", withStatus("192.0.2.1"))},
				{delete: "a"},
			},
		},
		{
			name: "the old holder changed its sharing key and is about to move",
			events: []event{
				{svc: svc("a", withAnn(annShare, "k"), withStatus("192.0.2.1"))},
				{svc: svc("b", withAnn(annShare, "k"), withPorts(443), withStatus("192.0.2.1"))},
				{svc: svc("a", withAnn(annShare, "other"), withStatus("192.0.2.1"))},
				{svc: svc("c", withStatus("192.0.2.1"))},
			},
			want: []string{vDuplicate + " hole 3"}, // b and c are both settled
		},
		{
			name: "a shared address a co-holder can no longer share: either may move",
			events: []event{
				{svc: svc("a", withAnn(annShare, "k"), withStatus("192.0.2.1"))},
				{svc: svc("b", withAnn(annShare, "k"), withPorts(443), withStatus("192.0.2.1"))},
				{svc: svc("a", withAnn(annShare, "other"), withStatus("192.0.2.1"))},
				// A restart keeps the older a and moves b.
				{svc: svc("b", withAnn(annShare, "k"), withPorts(443), withStatus("192.0.2.2"))},
			},
		},
		{
			name: "a stale writer's status from a spec older than the last status change",
			events: []event{
				{svc: svc("a", withAnn(annPool, "pinned"))},
				{svc: svc("a", withAnn(annPool, "pinned"), withStatus("203.0.113.1"))},
				{svc: svc("a", withAnn(annPool, "beta"), withStatus("203.0.113.1"))},
				{svc: svc("a", withAnn(annPool, "beta"), withStatus("198.51.100.1"))},
				// A paused ex-leader's patch, computed for pool pinned, lands.
				// (198.51.100.1 may have come from either spec version, so
				// its loss is not called a move either.)
				{svc: svc("a", withAnn(annPool, "beta"), withStatus("203.0.113.2"))},
			},
		},
		{
			name: "an address that comes back is not judged again",
			events: []event{
				{svc: svc("a", withStatus("192.0.2.1"))},
				{svc: svc("a", withStatus("192.0.2.1"), withAnn(annPool, "pinned"))},
				{svc: svc("a", withAnn(annPool, "pinned"))},
				{svc: svc("a", withStatus("192.0.2.1"), withAnn(annPool, "pinned"))},
			},
		},
		{
			name: "a pinned Service given an address of another pool",
			events: []event{
				{svc: svc("a", pinAlpha)},
				{svc: svc("a", pinAlpha, withStatus("203.0.113.1"))},
			},
			want: []string{vNotAllowed},
		},
		{
			name: "an auto-assigned address from a pool that is not auto-assign",
			events: []event{
				{svc: svc("a", withStatus("203.0.113.1"))},
			},
			want: []string{vNotAllowed},
		},
		{
			name: "an address of a pool version that is gone now",
			events: []event{
				{config: func(c *cloudConfig) {}, svc: svc("a")},
				{config: func(c *cloudConfig) { c.Pools = c.Pools[1:] }, svc: svc("a", withStatus("192.0.2.3"))},
			},
		},
		{
			name: "not the requested address",
			events: []event{
				{svc: svc("a", withAnn(annIPs, "192.0.2.5"), withStatus("192.0.2.6"))},
			},
			want: []string{vNotAllowed},
		},
		{
			name: "the requested address",
			events: []event{
				{svc: svc("a", withAnn(annIPs, "192.0.2.5"), withStatus("192.0.2.5"))},
			},
		},
		{
			name: "an IPv6 address for an IPv4-only Service",
			events: []event{
				{svc: svc("a", withStatus("2001:db8:c4a0::1"))},
			},
			want: []string{vNotAllowed},
		},
		{
			name: "a retyped Service nudged once races the retype",
			events: []event{
				{svc: svc("a")},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP))},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP), withAnn("cloud-provider-baremetal.io/allocation-retry", "1"))},
			},
		},
		{
			name: "a retyped Service nudged again and again is the retrier leak",
			events: []event{
				{svc: svc("a")},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP))},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP), withAnn("cloud-provider-baremetal.io/allocation-retry", "1"))},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP), withAnn("cloud-provider-baremetal.io/allocation-retry", "2"))},
				{svc: svc("a", withType(corev1.ServiceTypeClusterIP), withAnn("cloud-provider-baremetal.io/allocation-retry", "3"))},
			},
			want: []string{vRetryLeak + " hole 4"},
		},
		{
			name: "a waiting LoadBalancer Service may be nudged",
			events: []event{
				{svc: svc("a")},
				{svc: svc("a", withAnn("cloud-provider-baremetal.io/allocation-retry", "1"))},
				{svc: svc("a", withAnn("cloud-provider-baremetal.io/allocation-retry", "2"))},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &configHistory{}
			cfg := testConfig()
			h.add(cfg)
			o := newObserver(h, func() int { return 0 })
			for _, e := range tt.events {
				if e.config != nil {
					cfg = cfg.clone()
					e.config(cfg)
					h.add(cfg)
				}
				switch {
				case e.delete != "":
					o.Forget(e.delete)
				case e.svc != nil:
					o.Observe(e.svc)
				}
			}
			vs, _ := o.Violations()
			var got []string
			for _, v := range vs {
				k := v.Kind
				if v.Hole != "" {
					k += " hole " + v.Hole
				}
				got = append(got, k)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations %q, want %q", got, tt.want)
				for _, v := range vs {
					t.Logf("  %s", v)
				}
			}
		})
	}
}

func TestCheckFinal(t *testing.T) {
	tests := []struct {
		name string
		svcs []*corev1.Service
		want []string
	}{
		{"clean", []*corev1.Service{svc("a", withStatus("192.0.2.1")), svc("b", withStatus("192.0.2.2"))}, nil},
		{"a deleted Service left", []*corev1.Service{svc("a", withDeleting, withFinalizer)}, []string{vFinalizer}},
		{"one address twice", []*corev1.Service{svc("a", withStatus("192.0.2.1")), svc("b", withStatus("192.0.2.1"))}, []string{vDuplicate}},
		{"one address shared", []*corev1.Service{
			svc("a", withAnn(annShare, "k"), withStatus("192.0.2.1")),
			svc("b", withAnn(annShare, "k"), withStatus("192.0.2.1")),
		}, nil},
		{"a ClusterIP Service's stale status is not held", []*corev1.Service{
			svc("a", withStatus("192.0.2.1")),
			svc("b", withType(corev1.ServiceTypeClusterIP), withStatus("192.0.2.1")),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &configHistory{}
			h.add(testConfig())
			o := newObserver(h, func() int { return 0 })
			var list []corev1.Service
			for _, s := range tt.svcs {
				list = append(list, *s)
			}
			o.checkFinal(list)
			vs, _ := o.Violations()
			var got []string
			for _, v := range vs {
				got = append(got, v.Kind)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFindServable(t *testing.T) {
	// alpha has 192.0.2.0-15 and 2001:db8:c4a0::-7; beta 198.51.100.0-7;
	// pinned (not auto-assign) 203.0.113.0-7 and 2001:db8:c4a0::8-f.
	var alphaV4 []string
	for _, a := range testConfig().addresses(&testConfig().Pools[0], true) {
		alphaV4 = append(alphaV4, a.String())
	}
	var betaV4 []string
	for _, a := range testConfig().addresses(&testConfig().Pools[1], true) {
		betaV4 = append(betaV4, a.String())
	}
	full := func(names string, ips []string) []*corev1.Service {
		var out []*corev1.Service
		for i, ip := range ips {
			out = append(out, svc(names+string(rune('a'+i%26))+string(rune('a'+i/26)), withStatus(ip)))
		}
		return out
	}
	exhausted := append(full("x", alphaV4), full("y", betaV4)...)
	dual := withPolicy(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol)
	tests := []struct {
		name string
		svcs []*corev1.Service
		want []string
	}{
		{"a waiting Service with free addresses", []*corev1.Service{svc("w")}, []string{"w"}},
		{"every auto-assign address taken", append(slices.Clone(exhausted), svc("w")), nil},
		{"a pinned Service may use its pool", append(slices.Clone(exhausted), svc("w", withAnn(annPool, "pinned"))), []string{"w"}},
		{"a pool that does not exist", []*corev1.Service{svc("w", withAnn(annPool, "omega"))}, nil},
		{"a requested address in use", []*corev1.Service{svc("a", withStatus("192.0.2.5")), svc("w", withAnn(annIPs, "192.0.2.5"))}, nil},
		{"a requested address outside the pools", []*corev1.Service{svc("w", withAnn(annIPs, "192.0.2.200"))}, nil},
		{"a requested address of the wrong family", []*corev1.Service{svc("w", withAnn(annIPs, "2001:db8:c4a0::1"))}, nil},
		{"a PreferDualStack Service lacking the free second family", []*corev1.Service{svc("w", dual, withStatus("192.0.2.1"))}, []string{"w second"}},
		{"a PreferDualStack Service asking for an address no pool has", []*corev1.Service{svc("w", dual, withAnn(annIPs, "192.0.2.200"), withStatus("192.0.2.1"))}, nil},
		{"a PreferDualStack Service asking for a free address of its family", []*corev1.Service{svc("w", dual, withAnn(annIPs, "192.0.2.3"), withStatus("192.0.2.1"))}, []string{"w second"}},
		{"a PreferDualStack Service with both", []*corev1.Service{svc("w", dual, withStatus("192.0.2.1", "2001:db8:c4a0::1"))}, nil},
		{"a ClusterIP Service waits for nothing", []*corev1.Service{svc("w", withType(corev1.ServiceTypeClusterIP))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list []corev1.Service
			for _, s := range tt.svcs {
				list = append(list, *s)
			}
			var got []string
			for _, s := range findServable(list, testConfig()) {
				n := s.Name
				if s.SecondFamily {
					n += " second"
				}
				got = append(got, n)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("servable %q, want %q", got, tt.want)
			}
		})
	}
}
