package layer2

import (
	"slices"
	"testing"
	"time"
)

// TestPartitionHealsWithoutStaleClients cuts an owner off the switch and
// plugs it back as soon as the client has followed the IP to the new
// owner. By then the node cut off is declaring the others dead and taking
// their IPs, and some of its gratuitous ARPs go out after the plug.
// Clients that heard them must come back to each IP's owner by
// themselves: the owners announce again when the node rejoins. Three
// rounds, each owner in turn.
func TestPartitionHealsWithoutStaleClients(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	ips := []string{"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "203.0.113.205", "2001:db8:1::200", "2001:db8:1::201"}
	owners := tb.spread(ips...)
	for _, victim := range allNodes {
		var ip string
		for _, cand := range ips {
			if owners[cand] == victim {
				ip = cand
				break
			}
		}
		if ip == "" {
			continue
		}
		start := time.Now()
		if err := tb.Lab.Unplug(tb.Lab.Host(victim)); err != nil {
			t.Fatal(err)
		}
		next := expectedOwner(ip, without(allNodes, victim)...)
		took := tb.firstAnswerFrom(ip, next, start)
		if err := tb.Lab.Plug(tb.Lab.Host(victim)); err != nil {
			t.Fatal(err)
		}
		healed := time.Now()
		t.Logf("%s unplugged: %s served by %s after %v; plugged back", victim, ip, next, took)
		for _, h := range tb.Lab.Nodes() {
			tb.waitMembers(h, len(allNodes))
		}
		for _, ip := range ips {
			tb.waitServedBy(ip, owners[ip])
			if got := tb.answerers(ip); !slices.Equal(got, []string{owners[ip]}) {
				t.Errorf("%s answered by %v, want only %s", ip, got, owners[ip])
			}
		}
		t.Logf("every IP served by its owner %v after the plug", time.Since(healed))
	}
}
