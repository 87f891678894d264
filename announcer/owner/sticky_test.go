package owner

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// claimsOf builds a Snapshot: node to the IPs it claims. A node listed
// with no IPs has a known, empty record.
func claimsOf(claims map[string][]string) Snapshot {
	s := Snapshot{}
	for n, ips := range claims {
		var addrs []netip.Addr
		for _, ip := range ips {
			addrs = append(addrs, netip.MustParseAddr(ip))
		}
		s[n] = NewRecord(n, 1, 1, addrs)
	}
	return s
}

// ipWon returns an IP among 203.0.113.0/24 whose rendezvous winner over
// all is want, and whose winner without want is next.
func ipWon(t *testing.T, all []string, want, next string) string {
	t.Helper()
	rest := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == want })
	for i := range 256 {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		if Pick(ip, all) == want && Pick(ip, rest) == next {
			return ip.String()
		}
	}
	t.Fatalf("no IP won by %s with %s next", want, next)
	return ""
}

func TestDecide(t *testing.T) {
	all := []string{"node1", "node2", "node3"}
	// x is node1's by rendezvous, node2's when node1 is gone.
	x := ipWon(t, all, "node1", "node2")
	tests := []struct {
		name       string
		self       string
		candidates []string
		announced  bool
		held       bool                // this node's own held claim
		others     map[string][]string // nil: no records at all
		holding    map[string][]string // others' held claims, added to their records
		want       Outcome
	}{
		{
			name: "no records: plain rendezvous", self: "node1", candidates: all,
			want: Outcome{Owner: "node1"},
		},
		{
			name: "no records: plain rendezvous, even against this node's own announcement", self: "node2", candidates: all, announced: true,
			want: Outcome{Owner: "node1"},
		},
		{
			name: "no candidates", self: "node1", candidates: nil, others: map[string][]string{},
			want: Outcome{},
		},
		{
			name: "new IP, nobody claims: the rendezvous winner takes it", self: "node1", candidates: all,
			others: map[string][]string{"node2": nil, "node3": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "failover: the holder is gone, the next winner takes it at once", self: "node2", candidates: []string{"node2", "node3"},
			others: map[string][]string{"node3": nil},
			want:   Outcome{Owner: "node2"},
		},
		{
			name: "returning node, records known: the holder keeps it", self: "node1", candidates: all,
			others: map[string][]string{"node2": {x}, "node3": nil},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "returning node seen by the holder: it keeps the IP", self: "node2", candidates: all, announced: true,
			others: map[string][]string{"node1": nil, "node3": nil},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "returning node seen by a bystander", self: "node3", candidates: all,
			others: map[string][]string{"node1": nil, "node2": {x}},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "returning node without the holder's record waits", self: "node1", candidates: all,
			others: map[string][]string{"node3": nil},
			want:   Outcome{Owner: "node1", Wait: true},
		},
		{
			name: "the holder keeps without knowing the newcomer's record", self: "node2", candidates: all, announced: true,
			others: map[string][]string{"node3": nil},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "an unknown record does not hold back a node that keeps by rendezvous", self: "node1", candidates: all, announced: true,
			others: map[string][]string{"node3": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "two claimants after a heal: the higher score keeps it (winner's view)", self: "node1", candidates: all, announced: true,
			others: map[string][]string{"node2": {x}, "node3": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "two claimants after a heal: the lower score withdraws", self: "node2", candidates: all, announced: true,
			others: map[string][]string{"node1": {x}, "node3": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "two claimants after a heal: a bystander agrees", self: "node3", candidates: all,
			others: map[string][]string{"node1": {x}, "node2": {x}},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "a claimant that became ineligible counts no more", self: "node1", candidates: []string{"node1", "node3"},
			others: map[string][]string{"node2": {x}, "node3": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "the ineligible claimant withdraws itself", self: "node2", candidates: []string{"node1", "node3"}, announced: true,
			others: map[string][]string{"node1": nil, "node3": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "pool change that keeps the holder a candidate: it stays", self: "node3", candidates: []string{"node1", "node2"},
			others: map[string][]string{"node1": nil, "node2": {x}},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "a node that left gracefully is no candidate and its record is forgotten", self: "node3", candidates: []string{"node1", "node3"},
			others: map[string][]string{"node1": nil},
			want:   Outcome{Owner: "node1"},
		},
		{
			name: "a record of a non-candidate is ignored, known or not", self: "node3", candidates: []string{"node3"},
			others: map[string][]string{"node1": {x}},
			want:   Outcome{Owner: "node3"},
		},
		{
			name: "a holder held back by the guard keeps its claim: the returning winner takes nothing", self: "node1", candidates: all,
			others:  map[string][]string{"node2": nil, "node3": nil},
			holding: map[string][]string{"node2": {x}},
			want:    Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "the held-back holder itself still owns it", self: "node2", candidates: all, held: true,
			others: map[string][]string{"node1": nil, "node3": nil},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "the held-back holder, released, waits for unknown records before announcing", self: "node2", candidates: all, held: true,
			others: map[string][]string{"node3": nil},
			want:   Outcome{Owner: "node2", Sticky: true, Wait: true},
		},
		{
			name: "partition heal: an announced claim outranks a held one (the holder's view)", self: "node1", candidates: all, held: true,
			others: map[string][]string{"node2": {x}, "node3": nil},
			want:   Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "partition heal: an announced claim outranks a held one (the announcer's view)", self: "node2", candidates: all, announced: true,
			others:  map[string][]string{"node1": nil, "node3": nil},
			holding: map[string][]string{"node1": {x}},
			want:    Outcome{Owner: "node2", Sticky: true},
		},
		{
			name: "two held claims: the higher score", self: "node3", candidates: all,
			others:  map[string][]string{"node1": nil, "node2": nil},
			holding: map[string][]string{"node1": {x}, "node2": {x}},
			want:    Outcome{Owner: "node1"},
		},
		{
			name: "a held claim of a non-candidate counts no more", self: "node2", candidates: []string{"node2", "node3"},
			others:  map[string][]string{"node3": nil},
			holding: map[string][]string{"node1": {x}},
			want:    Outcome{Owner: "node2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{IP: netip.MustParseAddr(x), Self: tt.self, Candidates: tt.candidates, Announced: tt.announced, Held: tt.held}
			if tt.others != nil {
				s := claimsOf(tt.others)
				for n, ips := range tt.holding {
					var held []netip.Addr
					for _, ip := range ips {
						held = append(held, netip.MustParseAddr(ip))
					}
					s[n] = s[n].WithHeld(held)
				}
				in.Others = s
			}
			if got := Decide(in); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// cluster simulates announcers that decide by Decide and exchange their
// records; it counts moves.
type cluster struct {
	// announced is each node's claims (its record).
	announced map[string]map[netip.Addr]bool
	// held is each node's held claims; silenced are the nodes the
	// split-brain guard holds back: they decide, but announce nothing, as
	// the controller does.
	held     map[string]map[netip.Addr]bool
	silenced map[string]bool
	ips      []netip.Addr
}

func newCluster(nodes []string, ips []netip.Addr) *cluster {
	c := &cluster{announced: map[string]map[netip.Addr]bool{}, held: map[string]map[netip.Addr]bool{}, silenced: map[string]bool{}, ips: ips}
	for _, n := range nodes {
		c.announced[n] = map[netip.Addr]bool{}
		c.held[n] = map[netip.Addr]bool{}
	}
	return c
}

// records is what node sees of the others among view: every record,
// current, unless known says otherwise.
func (c *cluster) records(self string, view []string) Snapshot {
	s := Snapshot{}
	for _, n := range view {
		if n == self {
			continue
		}
		s[n] = NewRecord(n, 1, 1, slices.Collect(maps.Keys(c.announced[n]))).WithHeld(slices.Collect(maps.Keys(c.held[n])))
	}
	return s
}

// pass runs one pass on every node of view, with view as candidates and
// each node's records taken at the start of the pass (all nodes decide
// from the same moment, as in a simultaneous round); it returns whether
// anything changed.
func (c *cluster) pass(view []string) bool {
	snaps := map[string]Snapshot{}
	for _, n := range view {
		snaps[n] = c.records(n, view)
	}
	changed := false
	set := func(m map[netip.Addr]bool, ip netip.Addr, v bool) {
		if v != m[ip] {
			changed = true
			if v {
				m[ip] = true
			} else {
				delete(m, ip)
			}
		}
	}
	for _, n := range view {
		for _, ip := range c.ips {
			before, heldBefore := c.announced[n][ip], c.held[n][ip]
			o := Decide(Input{IP: ip, Self: n, Candidates: view, Announced: before, Held: heldBefore, Others: snaps[n]})
			owns := o.Owner == n
			announce := owns && !o.Wait && !c.silenced[n]
			set(c.announced[n], ip, announce)
			// The controller's rule: an owner held back keeps the claim it
			// had at the last pass, announced or held.
			set(c.held[n], ip, owns && !announce && (before || heldBefore))
		}
	}
	return changed
}

// settle runs passes until nothing changes (bounded).
func (c *cluster) settle(t *testing.T, view []string) {
	t.Helper()
	for range 20 {
		if !c.pass(view) {
			return
		}
	}
	t.Fatalf("no fixed point after 20 passes among %v", view)
}

// holders returns who announces each IP.
func (c *cluster) holders() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for n, ips := range c.announced {
		for ip := range ips {
			out[ip] = append(out[ip], n)
		}
	}
	for _, h := range out {
		slices.Sort(h)
	}
	return out
}

func (c *cluster) assertOneEach(t *testing.T, what string) map[netip.Addr]string {
	t.Helper()
	out := map[netip.Addr]string{}
	h := c.holders()
	for _, ip := range c.ips {
		if len(h[ip]) != 1 {
			t.Fatalf("%s: %s announced by %v, want exactly one node", what, ip, h[ip])
		}
		out[ip] = h[ip][0]
	}
	return out
}

// TestNoFailbackAfterReturn plays crash, takeover, return on clusters of
// several sizes: at the return no IP moves, every IP has one announcer,
// and new IPs spread over every node, the returned one included.
func TestNoFailbackAfterReturn(t *testing.T) {
	for _, n := range []int{2, 3, 5, 10} {
		t.Run(fmt.Sprint(n, " nodes"), func(t *testing.T) {
			nodes := nodeNames(n)
			var ips []netip.Addr
			for i := range 600 {
				ips = append(ips, nthIP(i))
			}
			c := newCluster(nodes, ips)
			c.settle(t, nodes)
			before := c.assertOneEach(t, "start")
			for _, ip := range ips {
				if before[ip] != Pick(ip, nodes) {
					t.Fatalf("start: %s on %s, want the rendezvous winner %s", ip, before[ip], Pick(ip, nodes))
				}
			}

			// The crash: node1's process is gone, its claims with it.
			victim := nodes[0]
			rest := nodes[1:]
			c.announced[victim] = map[netip.Addr]bool{}
			c.settle(t, rest)
			failed := c.assertOneEach(t, "after the crash")
			for _, ip := range ips {
				if before[ip] != victim && failed[ip] != before[ip] {
					t.Fatalf("the crash moved %s from %s to %s", ip, before[ip], failed[ip])
				}
			}

			// The return: node1 is a candidate again, with an empty record.
			c.settle(t, nodes)
			back := c.assertOneEach(t, "after the return")
			if moved := diff(failed, back); len(moved) > 0 {
				t.Fatalf("the return moved %d IPs, e.g. %v", len(moved), moved[:min(3, len(moved))])
			}

			// New IPs spread over all nodes, the returned one included.
			var fresh []netip.Addr
			for i := range 600 {
				fresh = append(fresh, nthIP(10000+i))
			}
			c.ips = append(c.ips, fresh...)
			c.settle(t, nodes)
			after := c.assertOneEach(t, "new IPs")
			count := map[string]int{}
			for _, ip := range fresh {
				if after[ip] != Pick(ip, nodes) {
					t.Fatalf("new %s on %s, want the rendezvous winner %s", ip, after[ip], Pick(ip, nodes))
				}
				count[after[ip]]++
			}
			if count[victim] == 0 {
				t.Errorf("the returned node got none of %d new IPs: %v", len(fresh), count)
			}
		})
	}
}

// TestPartitionHealsToOneOwner splits a cluster, lets each side take the
// other's IPs (as it would without the split-brain guard), heals, and
// checks that every IP ends with one announcer, agreed by all, and that
// only doubly claimed IPs moved.
func TestPartitionHealsToOneOwner(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 30 {
		nodes := nodeNames(2 + r.IntN(7))
		var ips []netip.Addr
		for range 200 {
			ips = append(ips, nthIP(r.IntN(1<<20)))
		}
		c := newCluster(nodes, ips)
		c.settle(t, nodes)
		cut := 1 + r.IntN(len(nodes)-1)
		a, b := nodes[:cut], nodes[cut:]
		c.settle(t, a)
		c.settle(t, b)
		double := 0
		for _, h := range c.holders() {
			if len(h) > 1 {
				double++
			}
		}
		split := map[netip.Addr][]string{}
		maps.Copy(split, c.holders())
		c.settle(t, nodes)
		healed := c.assertOneEach(t, fmt.Sprintf("trial %d healed", trial))
		moved := 0
		for _, ip := range ips {
			if !slices.Contains(split[ip], healed[ip]) {
				t.Fatalf("trial %d: %s went to %s, held by %v during the split", trial, ip, healed[ip], split[ip])
			}
			if len(split[ip]) > 1 {
				moved++
			}
		}
		if moved != double {
			t.Fatalf("trial %d: %d IPs resolved, %d were doubly held", trial, moved, double)
		}
	}
}

// TestGuardSilenceKeepsClaims: node1 crashes, node2 and node3 take its
// IPs; node1 comes back while the split-brain guard silences node2 for a
// while (a contact lapse on a loaded node). node2's held claims keep node1
// from taking the IPs node2 holds: never two announcers, and when node2
// speaks again nothing has moved. Without held claims node1 would take
// them (the first lab run of TestNoFailbackWhenTheOwnerReturns).
func TestGuardSilenceKeepsClaims(t *testing.T) {
	nodes := nodeNames(3)
	var ips []netip.Addr
	for i := range 600 {
		ips = append(ips, nthIP(i))
	}
	c := newCluster(nodes, ips)
	c.settle(t, nodes)
	c.announced["node1"], c.held["node1"] = map[netip.Addr]bool{}, map[netip.Addr]bool{}
	c.settle(t, nodes[1:])
	failed := c.assertOneEach(t, "after the crash")

	c.silenced["node2"] = true
	for pass := range 10 {
		c.pass(nodes)
		for ip, h := range c.holders() {
			if len(h) > 1 {
				t.Fatalf("silent pass %d: %s announced by %v", pass, ip, h)
			}
			if len(h) == 1 && h[0] != failed[ip] {
				t.Fatalf("silent pass %d: %s moved from %s to %s", pass, ip, failed[ip], h[0])
			}
		}
	}
	if len(c.announced["node2"]) != 0 || len(c.held["node2"]) == 0 {
		t.Fatalf("silenced node2 announces %d and holds %d IPs; want 0 and its own", len(c.announced["node2"]), len(c.held["node2"]))
	}
	delete(c.silenced, "node2")
	c.settle(t, nodes)
	if moved := diff(failed, c.assertOneEach(t, "after the silence")); len(moved) > 0 {
		t.Fatalf("the silence moved %d IPs, e.g. %v", len(moved), moved[:min(3, len(moved))])
	}
}

// TestSilencedMinorityGivesUpAtHeal: a partition whose minority side the
// split-brain guard silences. The majority takes the minority's IPs; the
// minority holds its claims; at the heal the announced claims outrank the
// held ones on every node, so nothing moves and no IP is announced twice.
func TestSilencedMinorityGivesUpAtHeal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 20 {
		nodes := nodeNames(3 + r.IntN(6))
		var ips []netip.Addr
		for range 200 {
			ips = append(ips, nthIP(r.IntN(1<<20)))
		}
		c := newCluster(nodes, ips)
		c.settle(t, nodes)
		cut := (len(nodes) - 1) / 2 // the minority: fewer than half
		if cut == 0 {
			cut = 1
		}
		minority, majority := nodes[:cut], nodes[cut:]
		for _, n := range minority {
			c.silenced[n] = true
		}
		c.settle(t, majority)
		c.settle(t, minority)
		split := c.assertOneEach(t, fmt.Sprintf("trial %d split", trial))
		for ip, n := range split {
			if slices.Contains(minority, n) {
				t.Fatalf("trial %d: silenced %s announces %s", trial, n, ip)
			}
		}
		for _, n := range minority {
			delete(c.silenced, n)
		}
		c.pass(nodes)
		for ip, h := range c.holders() {
			if len(h) > 1 {
				t.Fatalf("trial %d: first pass after the heal, %s announced by %v", trial, ip, h)
			}
		}
		c.settle(t, nodes)
		if moved := diff(split, c.assertOneEach(t, fmt.Sprintf("trial %d healed", trial))); len(moved) > 0 {
			t.Fatalf("trial %d: the heal moved %d IPs, e.g. %v", trial, len(moved), moved[:min(3, len(moved))])
		}
		for _, n := range minority {
			if len(c.held[n]) != 0 {
				t.Fatalf("trial %d: %s still holds %d claims after the heal", trial, n, len(c.held[n]))
			}
		}
	}
}

// TestReturningNodeWaitsForRecords: a node that comes back before it has
// the holder's record takes nothing over; the pass after the record
// arrives it still takes nothing.
func TestReturningNodeWaitsForRecords(t *testing.T) {
	nodes := nodeNames(3)
	var ips []netip.Addr
	for i := range 300 {
		ips = append(ips, nthIP(i))
	}
	c := newCluster(nodes, ips)
	c.settle(t, nodes[1:])
	held := c.assertOneEach(t, "without node1")
	// node1 holds only node3's record so far.
	partial := Snapshot{"node3": NewRecord("node3", 1, 1, slices.Collect(maps.Keys(c.announced["node3"])))}
	for _, ip := range ips {
		o := Decide(Input{IP: ip, Self: "node1", Candidates: nodes, Others: partial})
		if o.Owner == "node1" && !o.Wait {
			t.Fatalf("%s (held by %s): node1 would take it without node2's record", ip, held[ip])
		}
	}
	c.settle(t, nodes)
	if moved := diff(held, c.assertOneEach(t, "with node1")); len(moved) > 0 {
		t.Fatalf("node1's return moved %v", moved)
	}
}

func diff(a, b map[netip.Addr]string) []string {
	var out []string
	for ip, n := range a {
		if b[ip] != n {
			out = append(out, fmt.Sprintf("%s %s→%s", ip, n, b[ip]))
		}
	}
	slices.Sort(out)
	return out
}

func BenchmarkDecide10000(b *testing.B) {
	nodes := nodeNames(100)
	s := Snapshot{}
	for i, n := range nodes {
		var ips []netip.Addr
		for j := range 100 {
			ips = append(ips, nthIP(i*100+j))
		}
		s[n] = NewRecord(n, 1, 1, ips)
	}
	for b.Loop() {
		for i := range 10000 {
			Decide(Input{IP: nthIP(i), Self: "node1", Candidates: nodes, Others: s})
		}
	}
}
