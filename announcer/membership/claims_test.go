package membership

import (
	"net/netip"
	"testing"
	"time"
)

// claimed says whether m holds a record of node claiming ip.
func claimed(m *Membership, node, ip string) (claims, known bool) {
	return m.Claims().Claims(node, netip.MustParseAddr(ip))
}

// TestClaimsTravel: a change reaches every member; a node that joins later
// holds every record before its first pass (Join returns after push/pull);
// a node that leaves is forgotten, and its next process's record counts.
func TestClaimsTravel(t *testing.T) {
	port, ms := threeNodes(t)
	ms[1].SetClaims([]netip.Addr{netip.MustParseAddr("203.0.113.200")}, nil)
	for _, m := range []*Membership{ms[0], ms[2]} {
		eventually(t, "node2's claim on "+m.name, func() bool {
			c, k := claimed(m, "node2", "203.0.113.200")
			return c && k
		})
	}
	// A held claim travels the same way (package owner, "Held claims").
	ms[2].SetClaims(nil, []netip.Addr{netip.MustParseAddr("203.0.113.201")})
	eventually(t, "node3's held claim on node1", func() bool {
		return ms[0].Claims().Holds("node3", netip.MustParseAddr("203.0.113.201"))
	})
	// Every node has sent at least its empty record to the others.
	eventually(t, "node1's and node3's empty records on node2", func() bool {
		_, k1 := claimed(ms[1], "node1", "203.0.113.200")
		_, k3 := claimed(ms[1], "node3", "203.0.113.200")
		return k1 && k3
	})

	// node2 leaves; its record is forgotten.
	if err := ms[1].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	ms[1].Shutdown()
	for _, m := range []*Membership{ms[0], ms[2]} {
		eventually(t, "node2 forgotten on "+m.name, func() bool {
			_, k := claimed(m, "node2", "203.0.113.200")
			return !k
		})
	}

	// node2 comes back: its Join returns with the others' records.
	again := start(t, "node2", "127.0.0.2", port, "s3cret")
	ms[2].SetClaims([]netip.Addr{netip.MustParseAddr("203.0.113.201")}, nil)
	eventually(t, "node3's claim on node1", func() bool {
		c, _ := claimed(ms[0], "node3", "203.0.113.201")
		return c
	})
	if n, err := again.Join([]netip.Addr{ip1, netip.MustParseAddr("127.0.0.3")}); n != 2 || err != nil {
		t.Fatalf("Join = %d, %v", n, err)
	}
	if c, k := claimed(again, "node3", "203.0.113.201"); !c || !k {
		t.Errorf("after Join, the returning node holds node3's claim: %v, known %v; want both", c, k)
	}
	if _, k := claimed(again, "node1", "203.0.113.201"); !k {
		t.Errorf("after Join, the returning node does not hold node1's record")
	}
	// Its empty record replaces nothing stale on the others.
	for _, m := range []*Membership{ms[0], ms[2]} {
		eventually(t, "the new node2's record on "+m.name, func() bool {
			c, k := claimed(m, "node2", "203.0.113.200")
			return k && !c
		})
	}
}

func TestSetClaimsUnchangedSendsNothing(t *testing.T) {
	_, ms := threeNodes(t)
	ip := []netip.Addr{netip.MustParseAddr("203.0.113.200")}
	ms[0].SetClaims(ip, nil)
	seq := ms[0].claims.own.Seq
	ms[0].SetClaims([]netip.Addr{netip.MustParseAddr("::ffff:203.0.113.200")}, nil)
	if got := ms[0].claims.own.Seq; got != seq {
		t.Errorf("the same claims in another form bumped seq from %d to %d", seq, got)
	}
}

// TestClaimRequestIsAnswered: a node that lost a member's record (it
// declared the member dead while the member saw nothing, so the member
// sends nothing) asks for it when the member is back, and gets it.
func TestClaimRequestIsAnswered(t *testing.T) {
	_, ms := threeNodes(t)
	ms[1].SetClaims([]netip.Addr{netip.MustParseAddr("203.0.113.200")}, nil)
	eventually(t, "node2's claim on node3", func() bool {
		c, _ := claimed(ms[2], "node2", "203.0.113.200")
		return c
	})
	ms[2].claims.table.Forget("node2")
	ms[2].claims.sendTo("node2") // what NotifyJoin does
	eventually(t, "node2's claim on node3 again", func() bool {
		c, _ := claimed(ms[2], "node2", "203.0.113.200")
		return c
	})
}
