package chaos

import (
	"maps"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The fingerprint is contract C3's: the golden values are SHA-256 of the
// lines C3 names, computed outside Go.
func TestStateFingerprintFollowsC3(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name string
		held map[string][]netip.Addr
		want string
	}{
		{"nothing held is the hash of nothing", nil, "e3b0c44298fc1c14"},
		{"one address", map[string][]netip.Addr{"default/a": {a("203.0.113.200")}}, "363a534a30d4a63e"},
		{"keys and addresses sorted, addresses as addresses", map[string][]netip.Addr{
			"ns/b": {a("192.0.2.0")},
			"ns/a": {a("2001:db8::1"), a("192.0.2.1")},
		}, "1909e3852897dad2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stateFingerprint(tt.held); got != tt.want {
				t.Errorf("stateFingerprint = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestHeldByStatusCountsWhatTheAllocatorHolds(t *testing.T) {
	lb := svc("lb", withStatus("192.0.2.1"))
	gone := svc("retyped-with-finalizer", withType(corev1.ServiceTypeClusterIP), withStatus("192.0.2.2"), withFinalizer)
	cip := svc("retyped", withType(corev1.ServiceTypeClusterIP), withStatus("192.0.2.3"))
	class := svc("foreign", withClass("other.example/lb"), withStatus("192.0.2.4"))
	held, n := heldByStatus([]corev1.Service{*lb, *gone, *cip, *class})
	if n != 2 || len(held) != 2 || len(held["chaos/lb"]) != 1 || len(held["chaos/retyped-with-finalizer"]) != 1 {
		t.Errorf("heldByStatus = %v (%d), want lb and retyped-with-finalizer", held, n)
	}
}

func TestParseAllocatorState(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    allocatorState
		ok, err bool
	}{
		{"before C3", "# HELP x\nleader_election_master_status{name=\"cloud-controller-manager\"} 1\n", allocatorState{}, false, false},
		{"both series", "baremetal_allocator_addresses_held 3\nbaremetal_allocator_state_info{fingerprint=\"0123456789abcdef\"} 1\n",
			allocatorState{Fingerprint: "0123456789abcdef", Held: 3}, true, false},
		{"one series only", "baremetal_allocator_addresses_held 3\n", allocatorState{}, false, true},
		{"two fingerprints", "baremetal_allocator_addresses_held 0\nbaremetal_allocator_state_info{fingerprint=\"a\"} 1\nbaremetal_allocator_state_info{fingerprint=\"b\"} 1\n", allocatorState{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := parseAllocatorState(tt.text)
			if (err != nil) != tt.err || ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("parseAllocatorState = %+v, %v, %v; want %+v, %v, error %v", got, ok, err, tt.want, tt.ok, tt.err)
			}
		})
	}
}

func TestPoolTotalsMatchTheConfig(t *testing.T) {
	text := `# HELP baremetal_loadbalancer_pool_addresses_total [ALPHA] ...
baremetal_loadbalancer_pool_addresses_total{family="IPv4",pool="alpha"} 8
baremetal_loadbalancer_pool_addresses_total{family="IPv6",pool="alpha"} 8
baremetal_loadbalancer_pool_addresses_total{family="IPv4",pool="beta"} 8
baremetal_loadbalancer_pool_addresses_total{family="IPv4",pool="pinned"} 8
baremetal_loadbalancer_pool_addresses_total{family="IPv6",pool="pinned"} 8
baremetal_loadbalancer_pool_addresses_in_use{family="IPv4",pool="alpha"} 3
`
	got, want := poolTotals(text), expectedTotals(testConfig())
	if !maps.Equal(got, want) {
		t.Errorf("poolTotals = %v, expectedTotals = %v", got, want)
	}
}
