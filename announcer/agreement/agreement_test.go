package agreement

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/nodemeta"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

func pools(t *testing.T, yaml string) []config.Pool {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c.Pools
}

// poolYAML is a cloud-config with one pool of TestFingerprint's shape:
// extra lines go between the protocol and the addresses, and each rack
// gives a node-selector.
func poolYAML(name, protocol, addresses string, extra []string, racks ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "address-pools:\n- name: %s\n  protocol: %s\n", name, protocol)
	for _, l := range extra {
		b.WriteString("  " + l + "\n")
	}
	fmt.Fprintf(&b, "  addresses: [%s]\n  node-selectors:\n", addresses)
	for _, r := range racks {
		fmt.Fprintf(&b, "  - match-labels: {rack: %s}\n", r)
	}
	return b.String()
}

func TestFingerprint(t *testing.T) {
	const addrs = "203.0.113.200-203.0.113.210"
	base := pools(t, poolYAML("lan", "layer2", addrs, nil, "a", "b"))[0]
	tests := []struct {
		name string
		yaml string
		same bool
	}{
		{name: "interfaces and allocation settings do not decide candidates", same: true, yaml: poolYAML("lan", "layer2", addrs,
			[]string{"interfaces: [eth1]", "auto-assign: false", "avoid-buggy-ips: true", "namespaces: [x]"}, "b", "a")},
		{name: "the same addresses written differently", same: true, yaml: poolYAML("lan", "layer2",
			"203.0.113.200-203.0.113.203, 203.0.113.204/30, 203.0.113.208-203.0.113.210", nil, "a", "b")},
		{name: "another name", yaml: poolYAML("lan2", "layer2", addrs, nil, "a", "b")},
		{name: "one more address", yaml: poolYAML("lan", "layer2", "203.0.113.200-203.0.113.211", nil, "a", "b")},
		{name: "one node-selector fewer", yaml: poolYAML("lan", "layer2", addrs, nil, "a")},
		{name: "another protocol", yaml: poolYAML("lan", "bgp", addrs, nil, "a", "b")},
	}
	want := Fingerprint(&base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fingerprint(&pools(t, tt.yaml)[0])
			if tt.same && got != want {
				t.Errorf("fingerprint %08x, want the base's %08x", got, want)
			}
			if !tt.same && got == want {
				t.Errorf("same fingerprint %08x as the base", got)
			}
		})
	}
}

func meta(fps map[uint32]bool) *nodemeta.Meta {
	m, _ := nodemeta.New(fps)
	return &m
}

func TestGroup(t *testing.T) {
	const p, q = 1, 2
	both := meta(map[uint32]bool{p: false})
	other := meta(map[uint32]bool{q: false})
	broken := meta(map[uint32]bool{p: true})
	tests := []struct {
		name     string
		view     View
		decides  bool
		servable []string
	}{
		{"all agree", View{"node1": both, "node2": both, "node3": both}, true, []string{"node1", "node2", "node3"}},
		{"one lags: the two decide", View{"node1": both, "node2": other, "node3": both}, true, []string{"node1", "node3"}},
		{"one ahead: it alone does not", View{"node1": other, "node2": both, "node3": other}, false, []string{"node2"}},
		{"tie with the smallest name", View{"node1": both, "node2": other}, true, []string{"node1"}},
		{"tie without the smallest name", View{"node1": other, "node2": both}, false, []string{"node2"}},
		{"a member that cannot serve stays in the group", View{"node1": broken, "node2": both, "node3": other}, true, []string{"node2"}},
		{"legacy members share every definition", View{"node1": nil, "node2": other, "node3": both}, true, []string{"node1", "node3"}},
		{"alone", View{"node1": both}, true, []string{"node1"}},
		{"nobody has it", View{"node1": other}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.view.Group(p)
			if g.Decides != tt.decides {
				t.Errorf("Decides = %v, want %v (%+v)", g.Decides, tt.decides, g)
			}
			if got := slices.Sorted(maps.Keys(g.Servable)); !slices.Equal(got, tt.servable) {
				t.Errorf("Servable = %v, want %v", got, tt.servable)
			}
		})
	}
}

// TestTwoDefinitionsNeverBothDecide: whatever the split of up to seven
// members between two definitions of a pool (and members with neither),
// at most one of them decides.
func TestTwoDefinitionsNeverBothDecide(t *testing.T) {
	const p, q = 1, 2
	for n := 1; n <= 7; n++ {
		combos := 1
		for range n {
			combos *= 3
		}
		for c := range combos {
			v := View{}
			for i, x := 0, c; i < n; i, x = i+1, x/3 {
				switch x % 3 {
				case 0:
					v[fmt.Sprintf("node%d", i)] = meta(map[uint32]bool{p: false})
				case 1:
					v[fmt.Sprintf("node%d", i)] = meta(map[uint32]bool{q: false})
				default:
					v[fmt.Sprintf("node%d", i)] = meta(nil)
				}
			}
			if v.Group(p).Decides && v.Group(q).Decides {
				t.Fatalf("both definitions decide in %v", v)
			}
		}
	}
}
