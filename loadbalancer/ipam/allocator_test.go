package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// mkPool builds a validated-looking pool from "a-b" ranges and CIDRs.
func mkPool(name string, addrs ...string) config.Pool {
	p := config.Pool{Name: name, Protocol: config.Layer2, Addresses: addrs}
	for _, s := range addrs {
		var r netipx.IPRange
		if strings.Contains(s, "/") {
			r = netipx.RangeOfPrefix(netip.MustParsePrefix(s))
		} else {
			r = netipx.MustParseIPRange(s)
		}
		p.Ranges = append(p.Ranges, r)
	}
	return p
}

func noAuto(p config.Pool) config.Pool {
	f := false
	p.AutoAssign = &f
	return p
}

func svc(key string) Service {
	ns, _, _ := strings.Cut(key, "/")
	return Service{Key: key, Namespace: ns, Ports: []Port{{"TCP", 80}}}
}

func req4(s Service) Request { return Request{Service: s, Families: []Family{IPv4}, RequireAll: true} }

func ips(as []Assignment) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.IP.String())
	}
	return out
}

func TestEnsure(t *testing.T) {
	shared := func(key, sharing string, port int32) Service {
		s := svc(key)
		s.SharingKey = sharing
		s.Ports = []Port{{"TCP", port}}
		return s
	}
	tests := []struct {
		name  string
		pools []config.Pool
		// setup requests run first and must succeed.
		setup   []Request
		req     Request
		want    []string
		wantErr Reason
	}{
		{
			name:  "first address of the walkthrough pool",
			pools: []config.Pool{mkPool("default", "192.168.92.200-192.168.92.210")},
			req:   req4(svc("default/nginx")),
			want:  []string{"192.168.92.200"},
		},
		{
			name:  "next-fit after the last handed out",
			pools: []config.Pool{mkPool("default", "203.0.113.200-203.0.113.210")},
			setup: []Request{req4(svc("a/one")), req4(svc("a/two"))},
			req:   req4(svc("a/three")),
			want:  []string{"203.0.113.202"},
		},
		{
			name:    "exhausted pool names the pool",
			pools:   []config.Pool{mkPool("tiny", "203.0.113.200/31")},
			setup:   []Request{req4(svc("a/one")), req4(svc("a/two"))},
			req:     req4(svc("a/three")),
			wantErr: ReasonPoolExhausted,
		},
		{
			name:  "avoid-buggy-ips skips .0 and .255",
			pools: []config.Pool{func() config.Pool { p := mkPool("p", "198.51.100.255-198.51.101.1"); p.AvoidBuggyIPs = true; return p }()},
			req:   req4(svc("a/x")),
			want:  []string{"198.51.101.1"},
		},
		{
			name:    "unknown pool annotation",
			pools:   []config.Pool{mkPool("default", "203.0.113.0/28")},
			req:     Request{Service: svc("a/x"), Pool: "nope", Families: []Family{IPv4}, RequireAll: true},
			wantErr: ReasonUnknownPool,
		},
		{
			name:  "pool annotation picks a non-auto-assign pool",
			pools: []config.Pool{mkPool("default", "203.0.113.0/28"), noAuto(mkPool("special", "198.51.100.0/28"))},
			req:   Request{Service: svc("a/x"), Pool: "special", Families: []Family{IPv4}, RequireAll: true},
			want:  []string{"198.51.100.0"},
		},
		{
			name:    "non-auto-assign pools are skipped without annotation",
			pools:   []config.Pool{noAuto(mkPool("special", "198.51.100.0/28"))},
			req:     req4(svc("a/x")),
			wantErr: ReasonNoPool,
		},
		{
			name: "priority orders auto-assign pools",
			pools: []config.Pool{
				mkPool("second", "203.0.113.0/28"),
				func() config.Pool { p := mkPool("first", "198.51.100.0/28"); p.Priority = -1; return p }(),
			},
			req:  req4(svc("a/x")),
			want: []string{"198.51.100.0"},
		},
		{
			name:  "requested IP",
			pools: []config.Pool{mkPool("default", "203.0.113.0/28")},
			req:   Request{Service: svc("a/x"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.7")}},
			want:  []string{"203.0.113.7"},
		},
		{
			name:    "requested IP outside every pool",
			pools:   []config.Pool{mkPool("default", "203.0.113.0/28")},
			req:     Request{Service: svc("a/x"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
			wantErr: ReasonNotInPool,
		},
		{
			name:    "requested IP taken",
			pools:   []config.Pool{mkPool("default", "203.0.113.0/28")},
			setup:   []Request{req4(svc("a/one"))},
			req:     Request{Service: svc("a/x"), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.0")}},
			wantErr: ReasonIPInUse,
		},
		{
			name:    "requested IP in another pool than the annotation",
			pools:   []config.Pool{mkPool("a", "203.0.113.0/28"), mkPool("b", "198.51.100.0/28")},
			req:     Request{Service: svc("a/x"), Pool: "b", Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.3")}},
			wantErr: ReasonNotInPool,
		},
		{
			name:  "dual-stack gets one address per family",
			pools: []config.Pool{mkPool("v4", "203.0.113.0/28"), mkPool("v6", "2001:db8:1::/64")},
			req:   Request{Service: svc("a/x"), Families: []Family{IPv6, IPv4}, RequireAll: true},
			want:  []string{"2001:db8:1::", "203.0.113.0"},
		},
		{
			name:    "require dual-stack without a v6 pool fails",
			pools:   []config.Pool{mkPool("v4", "203.0.113.0/28")},
			req:     Request{Service: svc("a/x"), Families: []Family{IPv4, IPv6}, RequireAll: true},
			wantErr: ReasonNoPool,
		},
		{
			name:  "prefer dual-stack without a v6 pool gets v4",
			pools: []config.Pool{mkPool("v4", "203.0.113.0/28")},
			req:   Request{Service: svc("a/x"), Families: []Family{IPv4, IPv6}},
			want:  []string{"203.0.113.0"},
		},
		{
			name:  "sharing with equal keys and distinct ports",
			pools: []config.Pool{mkPool("p", "203.0.113.0/28")},
			setup: []Request{req4(shared("a/dns-tcp", "dns", 53))},
			req:   req4(shared("a/dns-udp", "dns", 54)),
			want:  []string{"203.0.113.0"},
		},
		{
			name:  "sharing refused on port collision takes a fresh IP",
			pools: []config.Pool{mkPool("p", "203.0.113.0/28")},
			setup: []Request{req4(shared("a/one", "k", 80))},
			req:   req4(shared("a/two", "k", 80)),
			want:  []string{"203.0.113.1"},
		},
		{
			name:  "requested shared IP with a different key is refused",
			pools: []config.Pool{mkPool("p", "203.0.113.0/28")},
			setup: []Request{req4(shared("a/one", "k", 80))},
			req: Request{Service: shared("a/two", "other", 81), Families: []Family{IPv4}, RequireAll: true,
				IPs: []netip.Addr{netip.MustParseAddr("203.0.113.0")}},
			wantErr: ReasonIPInUse,
		},
		{
			name:  "sharing with Local traffic needs the same selector",
			pools: []config.Pool{mkPool("p", "203.0.113.0/28")},
			setup: []Request{req4(func() Service { s := shared("a/one", "k", 80); s.LocalTraffic = true; s.Selector = "app=a"; return s }())},
			req: Request{Service: func() Service { s := shared("a/two", "k", 81); s.LocalTraffic = true; s.Selector = "app=b"; return s }(),
				Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.0")}},
			wantErr: ReasonIPInUse,
		},
		{
			name: "namespace-restricted pool",
			pools: []config.Pool{
				func() config.Pool {
					p := mkPool("team", "198.51.100.0/28")
					p.Namespaces = []string{"team"}
					p.Priority = -1
					return p
				}(),
				mkPool("default", "203.0.113.0/28"),
			},
			req:  req4(svc("other/x")),
			want: []string{"203.0.113.0"},
		},
		{
			name: "namespace-restricted pool by annotation is refused",
			pools: []config.Pool{
				func() config.Pool { p := mkPool("team", "198.51.100.0/28"); p.Namespaces = []string{"team"}; return p }(),
			},
			req:     Request{Service: svc("other/x"), Pool: "team", Families: []Family{IPv4}, RequireAll: true},
			wantErr: ReasonPoolNotAllowed,
		},
		{
			name: "service-selector pool",
			pools: []config.Pool{
				func() config.Pool {
					p := mkPool("web", "198.51.100.0/28")
					p.ServiceSelector = []labels.Selector{labels.SelectorFromSet(labels.Set{"tier": "web"})}
					p.Priority = -1
					return p
				}(),
				mkPool("default", "203.0.113.0/28"),
			},
			req:  req4(func() Service { s := svc("a/x"); s.Labels = map[string]string{"tier": "web"}; return s }()),
			want: []string{"198.51.100.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(tt.pools)
			for _, r := range tt.setup {
				if _, err := a.Ensure(r); err != nil {
					t.Fatalf("setup %s: %v", r.Service.Key, err)
				}
			}
			got, err := a.Ensure(tt.req)
			if tt.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tt.wantErr {
					t.Fatalf("error = %v, want reason %s", err, tt.wantErr)
				}
				if held := a.Lookup(tt.req.Service.Key); len(held) != 0 {
					t.Fatalf("failed request left %v held", held)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if fmt.Sprint(ips(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", ips(got), tt.want)
			}
		})
	}
}

func TestEnsureIsIdempotent(t *testing.T) {
	a := New([]config.Pool{mkPool("p", "203.0.113.0/28")})
	first, err := a.Ensure(req4(svc("a/x")))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again, err := a.Ensure(req4(svc("a/x")))
		if err != nil || again[0] != first[0] {
			t.Fatalf("Ensure #%d = %v, %v; want %v", i, again, err, first)
		}
	}
}

func TestFailedEnsureKeepsExistingAddress(t *testing.T) {
	a := New([]config.Pool{mkPool("p", "203.0.113.0/28")})
	first, _ := a.Ensure(req4(svc("a/x")))
	bad := req4(svc("a/x"))
	bad.Pool = "does-not-exist"
	if _, err := a.Ensure(bad); err == nil {
		t.Fatal("want an error for an unknown pool")
	}
	if got := a.Lookup("a/x"); len(got) != 1 || got[0] != first[0] {
		t.Fatalf("after a failed Ensure the service holds %v, want %v", got, first)
	}
}

func TestChangingThePoolMovesTheAddress(t *testing.T) {
	a := New([]config.Pool{mkPool("a", "203.0.113.0/28"), mkPool("b", "198.51.100.0/28")})
	if _, err := a.Ensure(req4(svc("n/x"))); err != nil {
		t.Fatal(err)
	}
	r := req4(svc("n/x"))
	r.Pool = "b"
	got, err := a.Ensure(r)
	if err != nil || got[0].Pool != "b" {
		t.Fatalf("got %v, %v; want an address of pool b", got, err)
	}
	st := a.Stats()
	if st[0].InUse != 0 || st[1].InUse != 1 {
		t.Fatalf("stats %+v: the old address was not released", st)
	}
}

func TestReleaseAndReuse(t *testing.T) {
	a := New([]config.Pool{mkPool("p", "203.0.113.10/32")})
	first, _ := a.Ensure(req4(svc("a/one")))
	if _, err := a.Ensure(req4(svc("a/two"))); err == nil {
		t.Fatal("want pool exhausted")
	}
	if got := a.Release("a/one"); len(got) != 1 || got[0] != first[0].IP {
		t.Fatalf("Release = %v", got)
	}
	got, err := a.Ensure(req4(svc("a/two")))
	if err != nil || got[0].IP != first[0].IP {
		t.Fatalf("after release got %v, %v; want %v", got, err, first)
	}
}

func TestRestore(t *testing.T) {
	a := New([]config.Pool{mkPool("p", "203.0.113.0/28")})
	ip := netip.MustParseAddr("203.0.113.5")
	if err := a.Restore(svc("a/old"), "", []netip.Addr{ip}); err != nil {
		t.Fatal(err)
	}
	// A younger Service claiming the same address loses it.
	if err := a.Restore(svc("a/young"), "", []netip.Addr{ip}); err == nil {
		t.Fatal("want a conflict for a duplicate claim")
	}
	// An address outside every pool is kept, as retained (hole 1 of issue
	// 9: a restart must not move it).
	gone := netip.MustParseAddr("192.0.2.1")
	if err := a.Restore(svc("a/gone"), "", []netip.Addr{gone}); err != nil {
		t.Fatalf("restoring an address outside every pool: %v", err)
	}
	if got := a.Retained(); len(got) != 1 || got[0].IP != gone || got[0].Holders[0] != "a/gone" || got[0].Contained {
		t.Fatalf("retained = %+v, want 192.0.2.1 held by a/gone, in no pool", got)
	}
	if got, err := a.Ensure(req4(svc("a/gone"))); err != nil || got[0].IP != gone || got[0].Pool != "" {
		t.Fatalf("Ensure after restoring a retained address = %v, %v; want it kept", got, err)
	}
	// The restored Service keeps its address on Ensure.
	got, err := a.Ensure(req4(svc("a/old")))
	if err != nil || got[0].IP != ip {
		t.Fatalf("Ensure after restore = %v, %v", got, err)
	}
	// The loser is given a fresh address, not the taken one.
	got, err = a.Ensure(req4(svc("a/young")))
	if err != nil || got[0].IP == ip {
		t.Fatalf("young service got %v, %v", got, err)
	}
	// Releasing frees the retained address; it is no longer counted.
	if freed := a.Release("a/gone"); len(freed) != 1 || freed[0] != gone {
		t.Fatalf("Release = %v", freed)
	}
	if got := a.Retained(); len(got) != 0 {
		t.Fatalf("retained after release = %+v", got)
	}
	if a.InUse(gone) {
		t.Fatal("released retained address still in use")
	}
}

// A /64 must not be enumerated: allocating in one is as cheap as in a /28.
func TestLargePoolIsNotEnumerated(t *testing.T) {
	a := New([]config.Pool{mkPool("v6", "2001:db8:1::/64"), mkPool("big4", "10.0.0.0/8")})
	st := a.Stats()
	if st[0].Usable != 1<<64-1 || st[1].Usable != 1<<24 {
		t.Fatalf("usable = %+v", st)
	}
	for i := 0; i < 1000; i++ {
		if _, err := a.Ensure(Request{Service: svc(fmt.Sprintf("a/s%d", i)), Families: []Family{IPv6}, RequireAll: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// Concurrent Ensure and Release over a small pool never give one address to
// two Services that do not share.
func TestConcurrentEnsureNeverDuplicates(t *testing.T) {
	a := New([]config.Pool{mkPool("small", "203.0.113.0/29")})
	var wg sync.WaitGroup
	var mu sync.Mutex
	owner := map[netip.Addr]string{}
	var dup []string
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				key := fmt.Sprintf("ns/w%d-s%d", w, i%5)
				if i%3 == 2 {
					mu.Lock()
					for _, x := range a.Release(key) {
						if owner[x] == key {
							delete(owner, x)
						}
					}
					mu.Unlock()
					continue
				}
				got, err := a.Ensure(req4(svc(key)))
				if err != nil {
					continue
				}
				mu.Lock()
				for _, g := range got {
					if o, ok := owner[g.IP]; ok && o != key {
						dup = append(dup, fmt.Sprintf("%s held by %s and %s", g.IP, o, key))
					}
					owner[g.IP] = key
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(dup) > 0 {
		t.Fatalf("duplicates: %v", dup[:min(len(dup), 5)])
	}
}

// A Service that changes its sharing key keeps its address, and later
// Services join it under the new key, not the old one.
func TestSharingKeyChange(t *testing.T) {
	a := New([]config.Pool{mkPool("p", "203.0.113.0/28")})
	one := svc("a/one")
	one.SharingKey = "old"
	first, _ := a.Ensure(req4(one))
	one.SharingKey = "new"
	if again, err := a.Ensure(req4(one)); err != nil || again[0] != first[0] {
		t.Fatalf("key change moved the address: %v, %v", again, err)
	}
	two := svc("a/two")
	two.SharingKey = "new"
	two.Ports = []Port{{"UDP", 53}}
	if got, err := a.Ensure(req4(two)); err != nil || got[0].IP != first[0].IP {
		t.Fatalf("joining under the new key got %v, %v; want %v", got, err, first[0].IP)
	}
	three := svc("a/three")
	three.SharingKey = "old"
	three.Ports = []Port{{"UDP", 54}}
	if got, err := a.Ensure(req4(three)); err != nil || got[0].IP == first[0].IP {
		t.Fatalf("old key still joins: %v, %v", got, err)
	}
}

// TestSharedPortClash covers a Service sharing an address whose spec comes
// to clash with its partner's ports: refused, never moved, before and after
// a restart (the chaos soak of issue 9 found restarts dropped such holders).
func TestSharedPortClash(t *testing.T) {
	shared := func(key, sharing string, port int32) Service {
		s := svc(key)
		s.SharingKey = sharing
		s.Ports = []Port{{"TCP", port}}
		return s
	}
	ip := netip.MustParseAddr("203.0.113.0")
	v6 := netip.MustParseAddr("2001:db8::")
	pools := []config.Pool{mkPool("p", "203.0.113.0/28"), mkPool("v6", "2001:db8::/124")}
	clashing := func(key string) Service { return shared(key, "k", 80) }
	cases := []struct {
		name string
		// restored lists Services restored from status onto ip, in
		// creation order; empty means the holders got it through Ensure.
		restored []Service
		req      Request
		wantErr  bool
		wantHeld []netip.Addr
	}{
		{
			name:     "live: an edit that clashes is refused and keeps the address",
			req:      req4(clashing("a/two")),
			wantErr:  true,
			wantHeld: []netip.Addr{ip, v6},
		},
		{
			name: "live: a dual-stack edit that clashes keeps both families",
			// IPv6 first, so the clash is on the secondary family, which
			// PreferDualStack would otherwise give up.
			req:      Request{Service: clashing("a/two"), Families: []Family{IPv6, IPv4}},
			wantErr:  true,
			wantHeld: []netip.Addr{ip, v6},
		},
		{
			name:     "live: the partner is still judged on the accepted spec",
			req:      req4(shared("a/one", "k", 80)),
			wantHeld: []netip.Addr{ip},
		},
		{
			name:     "restart: the younger clashing holder is restored and refused",
			restored: []Service{shared("a/one", "k", 80), clashing("a/two")},
			req:      req4(clashing("a/two")),
			wantErr:  true,
			wantHeld: []netip.Addr{ip},
		},
		{
			name:     "restart: the older holder keeps it without error",
			restored: []Service{shared("a/one", "k", 80), clashing("a/two")},
			req:      req4(shared("a/one", "k", 80)),
			wantHeld: []netip.Addr{ip},
		},
		{
			name:     "restart: the edited holder was older; the younger is refused, not moved",
			restored: []Service{clashing("a/two"), shared("a/one", "k", 80)},
			req:      req4(shared("a/one", "k", 80)),
			wantErr:  true,
			wantHeld: []netip.Addr{ip},
		},
		{
			name:     "restart: fixing the ports clears the clash",
			restored: []Service{shared("a/one", "k", 80), clashing("a/two")},
			req:      req4(shared("a/two", "k", 82)),
			wantHeld: []netip.Addr{ip},
		},
		{
			name:     "a new sharing key still moves the Service",
			req:      req4(shared("a/two", "other", 81)),
			wantHeld: []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := New(pools)
			if len(tc.restored) == 0 {
				for _, r := range []Request{
					{Service: shared("a/one", "k", 80), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{ip}},
					{Service: shared("a/two", "k", 81), Families: []Family{IPv4, IPv6}, RequireAll: true},
				} {
					if _, err := a.Ensure(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, s := range tc.restored {
				if err := a.Restore(s, "", []netip.Addr{ip}); err != nil {
					t.Fatalf("Restore %s: %v", s.Key, err)
				}
			}
			key := tc.req.Service.Key
			got, err := a.Ensure(tc.req)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("Ensure = %v, %v; want error %v", got, err, tc.wantErr)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Reason != ReasonIPInUse || !strings.Contains(e.Msg, "port 80/TCP") {
					t.Fatalf("error %v does not name the clashing port", err)
				}
			}
			if held := a.Held()[key]; !slices.Equal(held, tc.wantHeld) {
				t.Fatalf("%s holds %v, want %v", key, held, tc.wantHeld)
			}
			if !slices.Contains(a.Held()["a/one"], ip) {
				t.Fatalf("a/one lost %s: %v", ip, a.Held()["a/one"])
			}
		})
	}
	// A Service newly joining the address is judged against every holder,
	// the clashing one included.
	a := New(pools)
	for _, s := range []Service{shared("a/one", "k", 80), shared("a/two", "k", 80)} {
		if err := a.Restore(s, "", []netip.Addr{ip}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Ensure(Request{Service: shared("a/three", "k", 80), Families: []Family{IPv4}, RequireAll: true, IPs: []netip.Addr{ip}}); err == nil {
		t.Fatal("a third Service joined with a clashing port")
	}
}
