package loadbalancer

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
)

func TestStateFingerprint(t *testing.T) {
	sum := func(lines string) string {
		h := sha256.Sum256([]byte(lines))
		return hex.EncodeToString(h[:])[:16]
	}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name string
		held map[string][]netip.Addr
		want string
	}{
		{name: "empty is the hash of nothing", held: nil, want: "e3b0c44298fc1c14"},
		{name: "empty map too", held: map[string][]netip.Addr{}, want: "e3b0c44298fc1c14"},
		{
			name: "keys and addresses sorted",
			held: map[string][]netip.Addr{
				"b/y": {a("2001:db8::1"), a("192.0.2.10")},
				"a/x": {a("192.0.2.9")},
			},
			want: sum("a/x 192.0.2.9\nb/y 192.0.2.10\nb/y 2001:db8::1\n"),
		},
		{
			name: "addresses compare as addresses, not strings",
			held: map[string][]netip.Addr{"a/x": {a("192.0.2.10"), a("192.0.2.9")}},
			want: sum("a/x 192.0.2.9\na/x 192.0.2.10\n"),
		},
		{name: "a key with no address adds nothing", held: map[string][]netip.Addr{"a/x": nil}, want: "e3b0c44298fc1c14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StateFingerprint(tt.held); got != tt.want {
				t.Fatalf("StateFingerprint = %s, want %s", got, tt.want)
			}
		})
	}
}

// The allocator-state metrics follow what the allocator holds.
func TestStateMetrics(t *testing.T) {
	lb, _ := startLB(t, twoFamilies)
	ctx := ctxT(t)
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", lbService("default", "a"), nil); err != nil {
		t.Fatal(err)
	}
	want := StateFingerprint(map[string][]netip.Addr{"default/a": {netip.MustParseAddr("203.0.113.200")}})
	expected := `
# HELP baremetal_allocator_addresses_held [ALPHA] Number of (Service, address) pairs the allocator holds.
# TYPE baremetal_allocator_addresses_held gauge
baremetal_allocator_addresses_held 1
# HELP baremetal_allocator_state_info [ALPHA] Always 1; the label fingerprint is loadbalancer.StateFingerprint of what the allocator holds, for comparing with the Services' status.
# TYPE baremetal_allocator_state_info gauge
baremetal_allocator_state_info{fingerprint="` + want + `"} 1
`
	if err := testutil.GatherAndCompare(legacyregistry.DefaultGatherer, strings.NewReader(expected),
		"baremetal_allocator_addresses_held", "baremetal_allocator_state_info"); err != nil {
		t.Fatal(err)
	}
}
