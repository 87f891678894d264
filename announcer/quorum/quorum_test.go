package quorum

import (
	"fmt"
	"slices"
	"testing"
)

func members(alive []string, suspect ...string) map[string]Member {
	m := map[string]Member{}
	for _, n := range alive {
		m[n] = Member{}
	}
	for _, n := range suspect {
		m[n] = Member{Suspect: true}
	}
	return m
}

func goneIf(names ...string) func(string) string {
	return func(n string) string {
		for _, g := range names {
			if g == n {
				return "Node is not Ready"
			}
		}
		return ""
	}
}

func TestDecide(t *testing.T) {
	three := []string{"node1", "node2", "node3"}
	two := []string{"node1", "node2"}
	tests := []struct {
		name           string
		in             Input
		keep, takeOver bool
	}{
		{
			name: "one node is its own majority, without contact",
			in:   Input{Self: "node1", Expected: []string{"node1"}, Members: members([]string{"node1"})},
			keep: true, takeOver: true,
		},
		{
			name: "three healthy nodes",
			in:   Input{Self: "node2", Expected: three, Members: members(three), Contact: true},
			keep: true, takeOver: true,
		},
		{
			name: "three nodes, one crashed: the two left take over at once",
			in:   Input{Self: "node2", Expected: three, Members: members([]string{"node1", "node2"}), Contact: true},
			keep: true, takeOver: true,
		},
		{
			name: "isolated node of three: silent",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"})},
		},
		{
			name: "isolated node of three that still hears a probe: silent",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"}), Contact: true},
		},
		{
			name: "isolated node whose peers are still suspects: keeps, takes nothing over",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"}, "node1", "node2"), Contact: true},
			keep: true,
		},
		{
			name: "cut off from gossip: one peer dead, the other suspect, no contact: silent",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"}, "node2")},
		},
		{
			name: "healthy node with a suspect peer keeps and takes over",
			in:   Input{Self: "node1", Expected: three, Members: members([]string{"node1", "node3"}, "node2"), Contact: true},
			keep: true, takeOver: true,
		},
		{
			name: "no contact for the contact window: silent even with a full view",
			in:   Input{Self: "node1", Expected: three, Members: members(three)},
		},
		{
			name: "survivor of two crashes: silent until the API confirms",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"}), Contact: false},
		},
		{
			name: "survivor of two crashes, both Nodes NotReady: serves alone",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"}), Gone: goneIf("node1", "node2")},
			keep: true, takeOver: true,
		},
		{
			name: "survivor of two crashes, one Node NotReady: a tie it does not hold",
			in:   Input{Self: "node3", Expected: three, Members: members([]string{"node3"}), Gone: goneIf("node1"), Contact: true},
		},
		{
			name: "survivor holding the smallest name of the two voters left",
			in:   Input{Self: "node1", Expected: three, Members: members([]string{"node1"}), Gone: goneIf("node3")},
			keep: true, takeOver: true,
		},
		{
			name: "a live member counts even when the API says it is gone",
			in:   Input{Self: "node2", Expected: three, Members: members([]string{"node1", "node2"}), Gone: goneIf("node1", "node3"), Contact: true},
			keep: true, takeOver: true,
		},
		{
			name: "two nodes, peer dead: the smaller name serves alone",
			in:   Input{Self: "node1", Expected: two, Members: members([]string{"node1"})},
			keep: true, takeOver: true,
		},
		{
			name: "two nodes, peer dead: the larger name waits for the API",
			in:   Input{Self: "node2", Expected: two, Members: members([]string{"node2"})},
		},
		{
			name: "two nodes, peer dead and gone in the API: the larger name serves",
			in:   Input{Self: "node2", Expected: two, Members: members([]string{"node2"}), Gone: goneIf("node1")},
			keep: true, takeOver: true,
		},
		{
			name: "two nodes, both alive: each claims what it owns",
			in:   Input{Self: "node2", Expected: two, Members: members(two), Contact: true},
			keep: true, takeOver: true,
		},
		{
			name: "two nodes, the smaller one suspect: the larger keeps, takes nothing over",
			in:   Input{Self: "node2", Expected: two, Members: members([]string{"node2"}, "node1"), Contact: true},
			keep: true,
		},
		{
			name: "four nodes split two and two: the half with node1 serves",
			in:   Input{Self: "node2", Expected: []string{"node1", "node2", "node3", "node4"}, Members: members([]string{"node1", "node2"}), Contact: true},
			keep: true, takeOver: true,
		},
		{
			name: "four nodes split two and two: the other half is silent",
			in:   Input{Self: "node3", Expected: []string{"node1", "node2", "node3", "node4"}, Members: members([]string{"node3", "node4"}), Contact: true},
		},
		{
			name: "a node the API does not list never claims",
			in:   Input{Self: "node9", Expected: three, Members: members(append(three, "node9")), Contact: true},
		},
		{
			name: "nothing expected: nobody claims",
			in:   Input{Self: "node1", Members: members([]string{"node1"})},
		},
		{
			name: "live members the API does not expect do not vote",
			in:   Input{Self: "node1", Expected: three, Members: members([]string{"node1", "stray1", "stray2"}), Contact: true},
		},
		{
			name: "duplicates in Expected count once",
			in:   Input{Self: "node1", Expected: []string{"node1", "node1", "node2", "node2", "node3"}, Members: members([]string{"node1", "node2"}), Contact: true},
			keep: true, takeOver: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(tt.in)
			if v.Keep != tt.keep || v.TakeOver != tt.takeOver {
				t.Errorf("Decide = keep %v, take over %v (%+v), want keep %v, take over %v", v.Keep, v.TakeOver, v, tt.keep, tt.takeOver)
			}
			if (!v.Keep || !v.TakeOver) && v.Reason == "" {
				t.Errorf("no reason given for %+v", v)
			}
		})
	}
}

// TestNoTwoSidesClaim puts every node of clusters of one to six nodes on
// side A, on side B or among the dead, in every way, with every set of the
// dead known gone to the API, and the other side dead or still suspected:
// never may a node of each side claim. (Keep with the other side still
// suspected is no claim: it only keeps what the node announced before the
// split.)
func TestNoTwoSidesClaim(t *testing.T) {
	for n := 1; n <= 6; n++ {
		var all []string
		for i := range n {
			all = append(all, fmt.Sprintf("node%d", i+1))
		}
		places := 1
		for range n {
			places *= 3
		}
		for p := range places {
			var a, b, dead []string
			for i, x := 0, p; i < n; i, x = i+1, x/3 {
				switch x % 3 {
				case 0:
					a = append(a, all[i])
				case 1:
					b = append(b, all[i])
				default:
					dead = append(dead, all[i])
				}
			}
			if len(a) == 0 || len(b) == 0 {
				continue
			}
			for goneMask := 0; goneMask < 1<<len(dead); goneMask++ {
				gone := func(name string) string {
					for i, d := range dead {
						if d == name && goneMask&(1<<i) != 0 {
							return "gone"
						}
					}
					return ""
				}
				claims := func(side []string) bool {
					for _, self := range side {
						for _, othersSuspect := range []bool{false, true} {
							m := members(side)
							if othersSuspect {
								for _, o := range all {
									if _, ok := m[o]; !ok && !slices.Contains(dead, o) {
										m[o] = Member{Suspect: true}
									}
								}
							}
							v := Decide(Input{Self: self, Expected: all, Members: m, Gone: gone, Contact: true})
							if v.TakeOver || v.Keep && !othersSuspect {
								return true
							}
						}
					}
					return false
				}
				if claims(a) && claims(b) {
					t.Fatalf("%d nodes, sides %v | %v, dead %v (gone mask %b): both sides claim", n, a, b, dead, goneMask)
				}
			}
		}
	}
}
