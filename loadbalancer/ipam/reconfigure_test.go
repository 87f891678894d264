package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

func inNamespaces(p config.Pool, ns ...string) config.Pool {
	p.Namespaces = ns
	return p
}

func selecting(p config.Pool, k, v string) config.Pool {
	p.ServiceSelector = []labels.Selector{labels.SelectorFromSet(labels.Set{k: v})}
	return p
}

func web(key string) Service {
	s := svc(key)
	s.Labels = map[string]string{"tier": "web"}
	return s
}

func buggy(p config.Pool) config.Pool {
	p.AvoidBuggyIPs = true
	return p
}

// Reconfigure always applies the new pools and never moves or drops an
// address in use (contract C1); what the new pools would not hand out is
// retained.
func TestReconfigure(t *testing.T) {
	// Every case starts from pool "a" = 192.0.2.0/30 with a/x holding
	// 192.0.2.0 and a/y holding 192.0.2.1.
	tests := []struct {
		name  string
		pools []config.Pool
		// wantPools is the pool each Service's address is in now ("" for
		// none).
		wantPools map[string]string
		// wantRetained maps each retained address to a substring of its
		// reason.
		wantRetained map[string]string
		wantStats    []PoolStats
	}{
		{
			name:      "widened pool keeps both",
			pools:     []config.Pool{mkPool("a", "192.0.2.0/29")},
			wantPools: map[string]string{"a/x": "a", "a/y": "a"},
			wantStats: []PoolStats{{Pool: "a", InUse: 2, Usable: 8}},
		},
		{
			name:      "renamed and split pools re-home each address",
			pools:     []config.Pool{mkPool("one", "192.0.2.0/32"), mkPool("two", "192.0.2.1-192.0.2.3")},
			wantPools: map[string]string{"a/x": "one", "a/y": "two"},
			wantStats: []PoolStats{{Pool: "one", InUse: 1, Usable: 1}, {Pool: "two", InUse: 1, Usable: 3}},
		},
		{
			name:         "dropping an address in use retains it",
			pools:        []config.Pool{mkPool("a", "192.0.2.1-192.0.2.3")},
			wantPools:    map[string]string{"a/x": "", "a/y": "a"},
			wantRetained: map[string]string{"192.0.2.0": "no address pool contains it"},
			wantStats:    []PoolStats{{Pool: "a", InUse: 1, Usable: 3}},
		},
		{
			name:         "removing the pool retains every address",
			pools:        []config.Pool{mkPool("b", "198.51.100.0/30")},
			wantPools:    map[string]string{"a/x": "", "a/y": ""},
			wantRetained: map[string]string{"192.0.2.0": "no address pool", "192.0.2.1": "no address pool"},
			wantStats:    []PoolStats{{Pool: "b", InUse: 0, Usable: 4}},
		},
		{
			name:         "avoid-buggy-ips on the .0 in use retains it",
			pools:        []config.Pool{buggy(mkPool("a", "192.0.2.0/30"))},
			wantPools:    map[string]string{"a/x": "a", "a/y": "a"},
			wantRetained: map[string]string{"192.0.2.0": `pool "a" skips it (avoid-buggy-ips)`},
			wantStats:    []PoolStats{{Pool: "a", InUse: 1, Usable: 3}},
		},
		{
			name:      "a namespace restriction excluding the holders retains both",
			pools:     []config.Pool{inNamespaces(mkPool("a", "192.0.2.0/30"), "b")},
			wantPools: map[string]string{"a/x": "a", "a/y": "a"},
			wantRetained: map[string]string{
				"192.0.2.0": `pool "a" does not allow service a/x`,
				"192.0.2.1": `pool "a" does not allow service a/y`,
			},
			// Still in the pool's range: counted there, so the pool never
			// looks freer than it is.
			wantStats: []PoolStats{{Pool: "a", InUse: 2, Usable: 4}},
		},
		{
			name:      "a namespace restriction including the holders is fine",
			pools:     []config.Pool{inNamespaces(mkPool("a", "192.0.2.0/30"), "a")},
			wantPools: map[string]string{"a/x": "a", "a/y": "a"},
			wantStats: []PoolStats{{Pool: "a", InUse: 2, Usable: 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New([]config.Pool{mkPool("a", "192.0.2.0/30")})
			for _, k := range []string{"a/x", "a/y"} {
				if _, err := a.Ensure(req4(svc(k))); err != nil {
					t.Fatal(err)
				}
			}
			before := a.Held()
			gen := a.RetainedGeneration()
			a.Reconfigure(tt.pools)
			if got := a.Held(); !sameHeld(got, before) {
				t.Fatalf("held after Reconfigure = %v, want %v unchanged", got, before)
			}
			for key, pool := range tt.wantPools {
				held := a.Lookup(key)
				if len(held) != 1 || held[0].Pool != pool {
					t.Errorf("%s holds %+v, want one address in pool %q", key, held, pool)
				}
			}
			retained := a.Retained()
			if len(retained) != len(tt.wantRetained) {
				t.Errorf("retained = %+v, want %v", retained, tt.wantRetained)
			}
			for _, r := range retained {
				if w, ok := tt.wantRetained[r.IP.String()]; !ok || !strings.Contains(r.Reason, w) {
					t.Errorf("retained %s because %q, want %q", r.IP, r.Reason, w)
				}
			}
			if moved := a.RetainedGeneration() != gen; moved != (len(tt.wantRetained) > 0) {
				t.Errorf("retained generation moved = %v with %d retained", moved, len(tt.wantRetained))
			}
			if got := a.Stats(); !slices.Equal(got, tt.wantStats) {
				t.Errorf("stats = %+v, want %+v", got, tt.wantStats)
			}

			// Each Service keeps its address on its next sync, retained or
			// not, and a new Service never gets an address in use.
			for key, addrs := range before {
				got, err := a.Ensure(req4(svc(key)))
				if err != nil || got[0].IP != addrs[0] {
					t.Errorf("Ensure(%s) after Reconfigure = %v, %v; want %v kept", key, got, err, addrs[0])
				}
			}
			if got, err := a.Ensure(req4(svc("b/z"))); err == nil {
				if ip := got[0].IP.String(); ip == "192.0.2.0" || ip == "192.0.2.1" {
					t.Errorf("b/z got %s, already in use", ip)
				}
			}

			// Releasing frees retained addresses too.
			a.Release("a/x")
			a.Release("a/y")
			if got := a.Retained(); len(got) != 0 {
				t.Errorf("retained after release = %+v", got)
			}
		})
	}
}

func sameHeld(a, b map[string][]netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// Going back to a config that covers a retained address ends its
// retention, and it is counted in its pool again.
func TestReconfigureBackEndsRetention(t *testing.T) {
	a := New([]config.Pool{mkPool("a", "192.0.2.0/30")})
	if _, err := a.Ensure(req4(svc("a/x"))); err != nil {
		t.Fatal(err)
	}
	a.Reconfigure([]config.Pool{mkPool("b", "198.51.100.0/30")})
	if got := a.Retained(); len(got) != 1 || got[0].Last == nil || got[0].Last.Name != "a" {
		t.Fatalf("retained = %+v, want 192.0.2.0 last in pool a", got)
	}
	a.Reconfigure([]config.Pool{mkPool("a", "192.0.2.0/30"), mkPool("b", "198.51.100.0/30")})
	if got := a.Retained(); len(got) != 0 {
		t.Fatalf("retained after the pool came back = %+v", got)
	}
	if st := a.Stats(); st[0].InUse != 1 || st[1].InUse != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// Hole 2 of issue 9: swapping two pools' ranges does not move a Service
// pinned to one of them, because its address came from the pool it names.
func TestSwappedRangesKeepPinnedServices(t *testing.T) {
	a := New([]config.Pool{mkPool("a", "192.0.2.0/30"), mkPool("b", "198.51.100.0/30")})
	pinned := func(key, pool string) Request { r := req4(svc(key)); r.Pool = pool; return r }
	x, err := a.Ensure(pinned("n/x", "a"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Ensure(pinned("n/y", "b"))
	if err != nil {
		t.Fatal(err)
	}
	a.Reconfigure([]config.Pool{mkPool("a", "198.51.100.0/30"), mkPool("b", "192.0.2.0/30")})
	for _, c := range []struct {
		req  Request
		want netip.Addr
	}{{pinned("n/x", "a"), x[0].IP}, {pinned("n/y", "b"), y[0].IP}} {
		got, err := a.Ensure(c.req)
		if err != nil || got[0].IP != c.want {
			t.Errorf("%s pinned to %q got %v, %v; want %s kept", c.req.Service.Key, c.req.Pool, got, err, c.want)
		}
	}
	if got := a.Retained(); len(got) != 0 {
		t.Errorf("retained = %+v; a moved range is still handed out by its new pool", got)
	}
	// A new Service pinned to "a" now gets an address of a's new range.
	got, err := a.Ensure(pinned("n/z", "a"))
	if err != nil || !netip.MustParsePrefix("198.51.100.0/30").Contains(got[0].IP) || got[0].IP == y[0].IP {
		t.Errorf("n/z pinned to a got %v, %v; want a free address of 198.51.100.0/30", got, err)
	}
	// After a restart the pin is the origin: still kept.
	b := New([]config.Pool{mkPool("a", "198.51.100.0/30"), mkPool("b", "192.0.2.0/30")})
	if err := b.Restore(svc("n/x"), "a", []netip.Addr{x[0].IP}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Ensure(pinned("n/x", "a")); err != nil || got[0].IP != x[0].IP {
		t.Errorf("after a restart n/x got %v, %v; want %s kept", got, err, x[0].IP)
	}
}

// Which rules apply to an address a Service already holds, and which only
// to one newly given (contract C1): only the Service's own request moves a
// held address.
func TestEnsureKeepsOrMovesHeldAddress(t *testing.T) {
	base := []config.Pool{mkPool("a", "192.0.2.0/30"), mkPool("b", "198.51.100.0/30")}
	held := netip.MustParseAddr("192.0.2.0")
	shared := func(key, sharing string, port int32) Service {
		s := svc(key)
		s.SharingKey = sharing
		s.Ports = []Port{{"TCP", port}}
		return s
	}
	tests := []struct {
		name string
		// first is n/x's request that gets 192.0.2.0; others run after it.
		first  Request
		others []Request
		// pools, when set, replace the config before the second Ensure.
		pools []config.Pool
		// second is n/x's next request.
		second   Request
		wantKept bool
	}{
		{name: "same request, pool dropped", first: req4(svc("n/x")), pools: []config.Pool{mkPool("b", "198.51.100.0/30")}, second: req4(svc("n/x")), wantKept: true},
		{name: "same request, namespace now excluded", first: req4(svc("n/x")), pools: []config.Pool{inNamespaces(mkPool("a", "192.0.2.0/30"), "other")}, second: req4(svc("n/x")), wantKept: true},
		{name: "same request, now avoid-buggy-ips", first: req4(svc("n/x")), pools: []config.Pool{buggy(mkPool("a", "192.0.2.0/30"))}, second: req4(svc("n/x")), wantKept: true},
		{
			name: "labels no longer match the pool's service-selector", first: req4(web("n/x")),
			pools:  []config.Pool{selecting(mkPool("a", "192.0.2.0/30"), "tier", "web"), mkPool("b", "198.51.100.0/30")},
			second: req4(svc("n/x")), wantKept: true,
		},
		{name: "pool annotation names the origin pool", first: req4(svc("n/x")), second: func() Request { r := req4(svc("n/x")); r.Pool = "a"; return r }(), wantKept: true},
		{name: "pool annotation names a pool that is gone", first: func() Request { r := req4(svc("n/x")); r.Pool = "a"; return r }(), pools: []config.Pool{mkPool("b", "198.51.100.0/30")}, second: func() Request { r := req4(svc("n/x")); r.Pool = "a"; return r }(), wantKept: true},
		{name: "pool annotation changed to another pool", first: req4(svc("n/x")), second: func() Request { r := req4(svc("n/x")); r.Pool = "b"; return r }(), wantKept: false},
		{
			name: "requested IP is the held, retained address", first: req4(svc("n/x")), pools: []config.Pool{mkPool("b", "198.51.100.0/30")},
			second: Request{Service: svc("n/x"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{held}}, wantKept: true,
		},
		{
			name: "requested IP changed", first: req4(svc("n/x")),
			second: Request{Service: svc("n/x"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.3")}}, wantKept: false,
		},
		{
			name: "ports now collide with the other sharer", first: req4(shared("n/x", "k", 80)), others: []Request{req4(shared("n/y", "k", 81))},
			second: req4(shared("n/x", "k", 81)), wantKept: false,
		},
		{
			name: "sharing key changed away from the other sharer", first: req4(shared("n/x", "k", 80)), others: []Request{req4(shared("n/y", "k", 81))},
			second: req4(shared("n/x", "other", 80)), wantKept: false,
		},
		{
			name: "family changed", first: req4(svc("n/x")), pools: append(slices.Clone(base), mkPool("v6", "2001:db8::/126")),
			second: Request{Service: svc("n/x"), Families: []Family{IPv6}, RequireAll: true}, wantKept: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(base)
			got, err := a.Ensure(tt.first)
			if err != nil || got[0].IP != held {
				t.Fatalf("first Ensure = %v, %v", got, err)
			}
			for _, r := range tt.others {
				if _, err := a.Ensure(r); err != nil {
					t.Fatal(err)
				}
			}
			if tt.pools != nil {
				a.Reconfigure(tt.pools)
			}
			got, err = a.Ensure(tt.second)
			kept := err == nil && slices.ContainsFunc(got, func(x Assignment) bool { return x.IP == held })
			if kept != tt.wantKept {
				t.Fatalf("second Ensure = %v, %v; kept %s = %v, want %v", got, err, held, kept, tt.wantKept)
			}
			if !tt.wantKept && err == nil {
				// The old address is free again, or still the other
				// sharer's, but no longer n/x's.
				if _, ok := a.Held()["n/x"]; !ok || slices.Contains(a.Held()["n/x"], held) {
					t.Fatalf("n/x holds %v", a.Held()["n/x"])
				}
			}
		})
	}
}

// A retained address is never handed to another Service: not when asked
// for, not by sharing, not as a free address.
func TestRetainedIsNotHandedOut(t *testing.T) {
	a := New([]config.Pool{mkPool("a", "192.0.2.0/31")})
	s := svc("n/x")
	s.SharingKey = "k"
	first, err := a.Ensure(req4(s))
	if err != nil {
		t.Fatal(err)
	}
	ip := first[0].IP
	// The pool now excludes namespace n; a Service of namespace m may use
	// it, but not ip, which n/x keeps.
	a.Reconfigure([]config.Pool{inNamespaces(mkPool("a", "192.0.2.0/31"), "m")})
	asked := Request{Service: svc("m/asks"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{ip}}
	if _, err := a.Ensure(asked); err == nil || !strings.Contains(err.Error(), "retained by service n/x") {
		t.Fatalf("asking for a retained address: %v", err)
	}
	joiner := svc("m/joins")
	joiner.SharingKey = "k"
	joiner.Ports = []Port{{"UDP", 53}}
	got, err := a.Ensure(req4(joiner))
	if err != nil || got[0].IP == ip {
		t.Fatalf("a Service with the same sharing key got %v, %v; want another address", got, err)
	}
	if _, err := a.Ensure(req4(svc("m/third"))); err == nil {
		t.Fatal("the last free address was handed out twice, or the retained one was")
	}
}

// An address another Service's status still shows is not free, even after
// the allocator released it: the status patch may not have landed yet.
func TestShownByKeepsStatusAddressesFromOthers(t *testing.T) {
	a := New([]config.Pool{mkPool("a", "192.0.2.0/31")})
	first, _ := a.Ensure(req4(svc("n/old")))
	ip := first[0].IP
	shown := map[netip.Addr]string{ip: "n/old"}
	a.SetShownBy(func(addr netip.Addr, except string) (string, bool) {
		k, ok := shown[addr]
		return k, ok && k != except
	})
	a.Release("n/old")
	got, err := a.Ensure(req4(svc("n/new")))
	if err != nil || got[0].IP == ip {
		t.Fatalf("n/new got %v, %v; want the other address", got, err)
	}
	asked := Request{Service: svc("n/asks"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{ip}}
	_, err = a.Ensure(asked)
	var e *Error
	if err == nil || !strings.Contains(err.Error(), "still in the status of service n/old") || !errors.As(err, &e) || !e.Retryable() {
		t.Fatalf("asking for an address in another status: %v, want a retryable error naming n/old", err)
	}
	// The Service whose own status shows it may take it back.
	if got, err := a.Ensure(Request{Service: svc("n/old"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{ip}}); err != nil || got[0].IP != ip {
		t.Fatalf("n/old taking its own address back: %v, %v", got, err)
	}
}

// Settle gives a doubly shown address to the keeper and takes it from the
// losers, in the allocator's books.
func TestSettle(t *testing.T) {
	a := New([]config.Pool{mkPool("a", "192.0.2.0/30")})
	young, _ := a.Ensure(req4(svc("n/young")))
	ip := young[0].IP
	old, _ := a.Ensure(req4(svc("n/old")))
	if err := a.Settle(ip, svc("n/old"), "", []string{"n/young"}); err != nil {
		t.Fatal(err)
	}
	if got := a.Lookup("n/old"); len(got) != 1 || got[0].IP != ip {
		t.Fatalf("keeper holds %v, want %s", got, ip)
	}
	if got := a.Lookup("n/young"); len(got) != 0 {
		t.Fatalf("loser holds %v", got)
	}
	if a.InUse(old[0].IP) {
		t.Fatalf("the keeper's other address %s is still in use", old[0].IP)
	}
	if st := a.Stats(); st[0].InUse != 1 {
		t.Fatalf("stats = %+v", st)
	}

	// A keeper that cannot share with a holder outside the losers is
	// refused, and nothing changes.
	c := New([]config.Pool{mkPool("a", "192.0.2.0/30")})
	third, _ := c.Ensure(req4(svc("n/third")))
	c.Ensure(req4(svc("n/loser")))
	heldBefore := c.Held()
	if err := c.Settle(third[0].IP, svc("n/keeper"), "", []string{"n/loser"}); err == nil {
		t.Fatal("Settle onto an address another Service holds succeeded")
	}
	if !sameHeld(c.Held(), heldBefore) {
		t.Fatalf("a refused Settle changed holdings: %v -> %v", heldBefore, c.Held())
	}

	// A dual-stack keeper keeps its primary family first.
	b := New([]config.Pool{mkPool("a", "192.0.2.0/30"), mkPool("v6", "2001:db8::/126")})
	dual := Request{Service: svc("n/dual"), Families: []Family{IPv4, IPv6}, RequireAll: true}
	before, _ := b.Ensure(dual)
	other, _ := b.Ensure(req4(svc("n/other")))
	if err := b.Settle(other[0].IP, svc("n/dual"), "", []string{"n/other"}); err != nil {
		t.Fatal(err)
	}
	if got := b.Lookup("n/dual"); len(got) != 2 || got[0].IP != other[0].IP || got[1].IP != before[1].IP {
		t.Fatalf("dual keeper holds %v, want [%s %s]", got, other[0].IP, before[1].IP)
	}
}
