package quorum

import (
	"fmt"
	"slices"
	"testing"
)

func live(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func goneIf(names ...string) func(string) string {
	return func(n string) string {
		if slices.Contains(names, n) {
			return "Node is not Ready"
		}
		return ""
	}
}

func TestDecide(t *testing.T) {
	three := []string{"node1", "node2", "node3"}
	two := []string{"node1", "node2"}
	four := []string{"node1", "node2", "node3", "node4"}
	tests := []struct {
		name  string
		in    Input
		claim bool
	}{
		{"one node is its own majority, without contact",
			Input{Self: "node1", Expected: []string{"node1"}, Members: live("node1")}, true},
		{"three healthy nodes",
			Input{Self: "node2", Expected: three, Members: live(three...), Contact: true}, true},
		{"three nodes, one crashed: the two left claim at once",
			Input{Self: "node2", Expected: three, Members: live("node1", "node2"), Contact: true}, true},
		{"isolated node of three: silent",
			Input{Self: "node3", Expected: three, Members: live("node3")}, false},
		{"isolated node of three that still hears a probe: silent",
			Input{Self: "node3", Expected: three, Members: live("node3"), Contact: true}, false},
		{"cut off, peers not yet declared dead, no contact: silent",
			Input{Self: "node3", Expected: three, Members: live(three...)}, false},
		{"cut off, one peer declared dead, no contact: silent",
			Input{Self: "node3", Expected: three, Members: live("node2", "node3")}, false},
		{"survivor of two crashes: silent until the API confirms",
			Input{Self: "node3", Expected: three, Members: live("node3")}, false},
		{"survivor of two crashes, both Nodes NotReady: serves alone",
			Input{Self: "node3", Expected: three, Members: live("node3"), Gone: goneIf("node1", "node2")}, true},
		{"survivor of two crashes, one Node NotReady: a tie it does not hold",
			Input{Self: "node3", Expected: three, Members: live("node3"), Gone: goneIf("node1"), Contact: true}, false},
		{"survivor holding the smallest name of the two voters left",
			Input{Self: "node1", Expected: three, Members: live("node1"), Gone: goneIf("node3")}, true},
		{"a live member counts even when the API says it is gone",
			Input{Self: "node2", Expected: three, Members: live("node1", "node2"), Gone: goneIf("node1", "node3"), Contact: true}, true},
		{"two nodes, peer dead: the smaller name serves alone",
			Input{Self: "node1", Expected: two, Members: live("node1")}, true},
		{"two nodes, peer dead: the larger name waits for the API",
			Input{Self: "node2", Expected: two, Members: live("node2")}, false},
		{"two nodes, peer dead and gone in the API: the larger name serves",
			Input{Self: "node2", Expected: two, Members: live("node2"), Gone: goneIf("node1")}, true},
		{"two nodes, both alive: each claims what it owns",
			Input{Self: "node2", Expected: two, Members: live(two...), Contact: true}, true},
		{"two nodes, both alive, no contact: the larger one is silent",
			Input{Self: "node2", Expected: two, Members: live(two...)}, false},
		{"two nodes, both alive, no contact: the smaller one needs none",
			Input{Self: "node1", Expected: two, Members: live(two...)}, true},
		{"four nodes split two and two: the half with node1 serves",
			Input{Self: "node2", Expected: four, Members: live("node1", "node2"), Contact: true}, true},
		{"four nodes split two and two: the other half is silent",
			Input{Self: "node3", Expected: four, Members: live("node3", "node4"), Contact: true}, false},
		{"a node the API does not list never claims",
			Input{Self: "node9", Expected: three, Members: live("node1", "node2", "node3", "node9"), Contact: true}, false},
		{"nothing expected: nobody claims",
			Input{Self: "node1", Members: live("node1")}, false},
		{"live members the API does not expect do not vote",
			Input{Self: "node1", Expected: three, Members: live("node1", "stray1", "stray2"), Contact: true}, false},
		{"duplicates in Expected count once",
			Input{Self: "node1", Expected: []string{"node1", "node1", "node2", "node2", "node3"}, Members: live("node1", "node2"), Contact: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(tt.in)
			if v.Claim != tt.claim {
				t.Errorf("Decide = %+v, want claim %v", v, tt.claim)
			}
			if !v.Claim && v.Reason == "" {
				t.Errorf("no reason given for %+v", v)
			}
		})
	}
}

// TestNoTwoSidesClaim puts every node of clusters of one to six nodes on
// side A, on side B or among the dead, in every way, with every set of the
// dead known gone to the API, and lets each side see the other and the
// dead declared dead: never may a node of each side claim. A side of one
// hears nobody; a larger side hears itself.
//
// (Before the declarations each side still sees everyone and owns what it
// owned before the split, so nothing is claimed twice then.)
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
					if i := slices.Index(dead, name); i >= 0 && goneMask&(1<<i) != 0 {
						return "gone"
					}
					return ""
				}
				claims := func(side []string) bool {
					for _, self := range side {
						v := Decide(Input{Self: self, Expected: all, Members: live(side...), Gone: gone, Contact: len(side) > 1})
						if v.Claim {
							return true
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
