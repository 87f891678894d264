package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// The configs the fuzzer switches between: small pools, so that exhaustion,
// sharing and retention happen often. They drop, shrink, swap and restrict
// each other's ranges.
var fuzzConfigs = [][]config.Pool{
	{mkPool("a", "192.0.2.0/30"), noAuto(mkPool("b", "198.51.100.0/31")), mkPool("v6", "2001:db8::/126")},
	{mkPool("a", "192.0.2.0/31"), mkPool("b", "198.51.100.0/30")},
	{mkPool("a", "198.51.100.0/30"), mkPool("b", "192.0.2.0/30"), mkPool("v6", "2001:db8::/127")},
	{inNamespaces(buggy(mkPool("a", "192.0.2.0/30")), "n0"), mkPool("v6", "2001:db8::2/127")},
	{},
	{selecting(mkPool("c", "203.0.113.0/30"), "tier", "web"), mkPool("a", "192.0.2.0/29"), noAuto(mkPool("v6", "2001:db8::/125"))},
}

const fuzzServices = 6

var fuzzPoolNames = []string{"", "", "", "a", "b", "c", "v6"}

var fuzzFamilies = []struct {
	families   []Family
	requireAll bool
}{
	{[]Family{IPv4}, true},
	{[]Family{IPv6}, true},
	{[]Family{IPv4, IPv6}, true},
	{[]Family{IPv4, IPv6}, false},
	{[]Family{IPv6, IPv4}, false},
}

var fuzzIPs = []string{"192.0.2.0", "192.0.2.1", "192.0.2.3", "198.51.100.0", "198.51.100.1", "203.0.113.1", "2001:db8::1", "2001:db8::3", "10.0.0.1"}

// fuzzInput reads the fuzzer's bytes; past the end it reads zeros.
type fuzzInput struct {
	b []byte
}

func (in *fuzzInput) next() int {
	if len(in.b) == 0 {
		return 0
	}
	v := int(in.b[0])
	in.b = in.b[1:]
	return v
}

func (in *fuzzInput) pick(n int) int { return in.next() % n }

// request decodes a request for Service i.
func (in *fuzzInput) request(i int) Request {
	key := fmt.Sprintf("n%d/s%d", i%2, i)
	s := svc(key)
	flags := in.next()
	s.SharingKey = []string{"", "k1", "k2", ""}[flags&3]
	s.Ports = []Port{{"TCP", int32(80 + (flags>>2)&1)}}
	if flags&8 != 0 {
		s.Labels = map[string]string{"tier": "web"}
	}
	if flags&16 != 0 {
		s.LocalTraffic = true
		s.Selector = fmt.Sprintf("app=%d", (flags>>5)&1)
	}
	fam := fuzzFamilies[in.pick(len(fuzzFamilies))]
	r := Request{Service: s, Pool: fuzzPoolNames[in.pick(len(fuzzPoolNames))], Families: fam.families, RequireAll: fam.requireAll}
	if v := in.pick(2 * len(fuzzIPs)); v < len(fuzzIPs) {
		ip := netip.MustParseAddr(fuzzIPs[v])
		if slices.Contains(r.Families, FamilyOf(ip)) {
			r.IPs = []netip.Addr{ip}
		}
	}
	return r
}

func sameRequest(a, b *Request) bool {
	return a != nil && b != nil && fmt.Sprintf("%+v", *a) == fmt.Sprintf("%+v", *b)
}

// fuzzModel is what the test knows independently of the allocator.
type fuzzModel struct {
	cfg []config.Pool
	// svcs is each Service as the allocator last accepted it (by Ensure or
	// Restore); sharing is judged on these.
	svcs map[string]Service
	// last is each Service's last request that Ensure met; nil when its
	// addresses came from a status claim instead.
	last map[string]*Request
	// asked is each Service's spec as last asked for, met or refused. A
	// restart restores from the spec, so a refused edit of ports or traffic
	// policy reaches Restore (a refused sharing-key edit is left out: after
	// a restart it cannot be told from a duplicate, which Restore refuses).
	asked map[string]Service
	// mayRefuse marks Services whose unchanged request may be refused after
	// a restart, because the spec of a co-holder restored before them now
	// clashes with theirs. They keep their address all the same.
	mayRefuse map[string]bool
}

// FuzzAllocatorOperations drives random sequences of Ensure, Release,
// Restore (a restart, or a Service claiming its status) and Reconfigure
// through the allocator and checks, after every step, the address rule of
// issue 9: no address is held by two Services that do not share a key;
// every address satisfied its request when given; no held address changes
// unless that Service's own request changed or it was released;
// Reconfigure and restarts never drop or move a held address; the pool
// usage and the retained set agree with the holdings.
func FuzzAllocatorOperations(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 3, 4, 0, 0, 0, 0, 0})
	f.Add([]byte("\x00\x01\x05\x03\x00\x00\x02\x05\x03\x00\x03\x04\x04\x00\x00\x01\x05\x03\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		m := &fuzzModel{cfg: fuzzConfigs[0], svcs: map[string]Service{}, last: map[string]*Request{},
			asked: map[string]Service{}, mayRefuse: map[string]bool{}}
		a := New(m.cfg)
		for step := 0; len(in.b) > 0 && step < 300; step++ {
			before := a.Held()
			retainedBefore := retainedSet(a)
			op, i := in.pick(7), in.pick(fuzzServices)
			key := fmt.Sprintf("n%d/s%d", i%2, i)
			var what string
			switch op {
			case 0, 1: // Ensure, half the time with the last request again
				req := in.request(i)
				if op == 1 && m.last[key] != nil {
					req = *m.last[key]
				}
				what = fmt.Sprintf("Ensure %+v", req)
				got, err := a.Ensure(req)
				m.asked[key] = req.Service
				if err != nil && len(before[key]) > 0 && sameRequest(m.last[key], &req) && !m.mayRefuse[key] {
					t.Fatalf("step %d %s: an unchanged request failed (%v); it held %v", step, what, err, before[key])
				}
				if err != nil {
					if !sameHeld(a.Held(), before) {
						t.Fatalf("step %d %s failed (%v) but changed holdings:\n%v\n-> %v", step, what, err, before, a.Held())
					}
					break
				}
				m.checkGiven(t, step, what, &req, got, before, retainedBefore)
				if sameRequest(m.last[key], &req) {
					for _, x := range before[key] {
						if !slices.ContainsFunc(got, func(g Assignment) bool { return g.IP == x }) {
							t.Fatalf("step %d %s: %s moved from %s with an unchanged request; now %v", step, what, key, x, got)
						}
					}
				}
				m.svcs[key] = req.Service
				m.last[key] = &req
				delete(m.mayRefuse, key)
				checkOthersUnchanged(t, step, what, key, before, a.Held())
			case 2:
				what = "Release " + key
				a.Release(key)
				delete(m.svcs, key)
				delete(m.last, key)
				delete(m.asked, key)
				delete(m.mayRefuse, key)
				checkOthersUnchanged(t, step, what, key, before, a.Held())
				if _, ok := a.Held()[key]; ok {
					t.Fatalf("step %d %s: still holds %v", step, what, a.Held()[key])
				}
			case 3:
				c := in.pick(len(fuzzConfigs))
				what = fmt.Sprintf("Reconfigure to config %d", c)
				m.cfg = fuzzConfigs[c]
				a.Reconfigure(m.cfg)
				if !sameHeld(a.Held(), before) {
					t.Fatalf("step %d %s changed holdings:\n%v\n-> %v", step, what, before, a.Held())
				}
			case 4:
				what = "restart"
				a = restart(t, m, before)
				if !sameHeld(a.Held(), before) {
					t.Fatalf("step %d %s changed holdings:\n%v\n-> %v", step, what, before, a.Held())
				}
			case 5: // a Service the allocator does not know claims its status
				if len(before[key]) > 0 {
					continue
				}
				req := in.request(i)
				var addrs []netip.Addr
				for range 1 + in.pick(2) {
					addrs = append(addrs, netip.MustParseAddr(fuzzIPs[in.pick(len(fuzzIPs))]))
				}
				what = fmt.Sprintf("Restore %s %v", key, addrs)
				_ = a.Restore(req.Service, req.Pool, addrs)
				m.asked[key] = req.Service
				if len(a.Held()[key]) > 0 {
					m.svcs[key] = req.Service
				}
				m.last[key] = nil
				checkOthersUnchanged(t, step, what, key, before, a.Held())
			case 6: // the duplicate audit settles an address on a keeper
				addr := netip.MustParseAddr(fuzzIPs[in.pick(len(fuzzIPs))])
				keeper, known := m.svcs[key]
				if !known {
					keeper = in.request(i).Service
				}
				var losers []string
				for k, addrs := range before {
					if k != key && slices.Contains(addrs, addr) {
						losers = append(losers, k)
					}
				}
				slices.Sort(losers)
				if len(losers) > 0 && in.pick(2) == 1 {
					losers = losers[1:] // one holder is not a loser: may refuse
				}
				what = fmt.Sprintf("Settle %s on %s, losers %v", addr, key, losers)
				if err := a.Settle(addr, keeper, "", losers); err != nil {
					if !sameHeld(a.Held(), before) {
						t.Fatalf("step %d %s failed (%v) but changed holdings", step, what, err)
					}
					break
				}
				if !slices.Contains(a.Held()[key], addr) {
					t.Fatalf("step %d %s: the keeper does not hold it: %v", step, what, a.Held()[key])
				}
				m.svcs[key] = keeper
				m.last[key] = nil
				for _, k := range losers {
					m.last[k] = nil
					if slices.Contains(a.Held()[k], addr) {
						t.Fatalf("step %d %s: loser %s still holds it", step, what, k)
					}
				}
			}
			m.checkState(t, step, what, a)
		}
	})
}

// restart builds a new allocator from the holdings, as a restarted CCM does
// from Services' status, in creation (here: key) order. Each Service is
// restored with the ports and traffic policy its spec last asked for, which
// may clash with a co-holder's after a refused edit.
func restart(t *testing.T, m *fuzzModel, held map[string][]netip.Addr) *Allocator {
	a := New(m.cfg)
	for _, key := range slices.Sorted(maps.Keys(held)) {
		pin := ""
		if r := m.last[key]; r != nil {
			pin = r.Pool
		}
		s := m.svcs[key]
		if asked, ok := m.asked[key]; ok {
			s.Ports, s.LocalTraffic, s.Selector = asked.Ports, asked.LocalTraffic, asked.Selector
		}
		if err := a.Restore(s, pin, held[key]); err != nil {
			t.Fatalf("restart: %v", err)
		}
		m.svcs[key] = s
	}
	for _, addrs := range held {
		for _, x := range addrs {
			use := a.inUse[x]
			for k1 := range use.users {
				for k2, h2 := range use.users {
					if k1 != k2 && fits(&h2.svc, x, &ipUse{users: map[string]*holder{k1: use.users[k1]}}, false) != nil {
						m.mayRefuse[k1], m.mayRefuse[k2] = true, true
					}
				}
			}
		}
	}
	return a
}

func retainedSet(a *Allocator) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, r := range a.Retained() {
		out[r.IP] = true
	}
	return out
}

func checkOthersUnchanged(t *testing.T, step int, what, key string, before, after map[string][]netip.Addr) {
	t.Helper()
	for k, v := range before {
		if k != key && !slices.Equal(v, after[k]) {
			t.Fatalf("step %d %s changed %s: %v -> %v", step, what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && k != key {
			t.Fatalf("step %d %s gave %s addresses %v", step, what, k, after[k])
		}
	}
}

// checkGiven checks each address newly given by a successful Ensure
// against every rule of the config in effect.
func (m *fuzzModel) checkGiven(t *testing.T, step int, what string, req *Request, got []Assignment, before map[string][]netip.Addr, retained map[netip.Addr]bool) {
	t.Helper()
	key := req.Service.Key
	fams := map[Family]bool{}
	for _, g := range got {
		f := FamilyOf(g.IP)
		if fams[f] || !slices.Contains(req.Families, f) {
			t.Fatalf("step %d %s: got %v, not one address per requested family", step, what, got)
		}
		fams[f] = true
		for _, ip := range req.IPs {
			if FamilyOf(ip) == f && ip != g.IP {
				t.Fatalf("step %d %s: got %s, requested %s", step, what, g.IP, ip)
			}
		}
		if slices.Contains(before[key], g.IP) {
			continue // kept: checked by the unchanged-request rule
		}
		var p *config.Pool
		for i := range m.cfg {
			if m.cfg[i].Contains(g.IP) {
				p = &m.cfg[i]
			}
		}
		switch {
		case p == nil:
			t.Fatalf("step %d %s: gave %s, in no pool", step, what, g.IP)
		case !p.Assignable(g.IP):
			t.Fatalf("step %d %s: gave %s, skipped by avoid-buggy-ips", step, what, g.IP)
		case !newPool(p).allows(&req.Service):
			t.Fatalf("step %d %s: gave %s from pool %s, which does not allow it", step, what, g.IP, p.Name)
		case req.Pool != "" && p.Name != req.Pool:
			t.Fatalf("step %d %s: gave %s from pool %s, not the requested one", step, what, g.IP, p.Name)
		case req.Pool == "" && len(req.IPs) == 0 && !p.AutoAssigns():
			t.Fatalf("step %d %s: gave %s from non-auto-assign pool %s", step, what, g.IP, p.Name)
		case retained[g.IP]:
			t.Fatalf("step %d %s: gave %s, which was retained by another Service", step, what, g.IP)
		}
	}
	if req.RequireAll && len(got) != len(req.Families) {
		t.Fatalf("step %d %s: got %v, not every required family", step, what, got)
	}
}

// checkState checks the invariants that hold between operations.
func (m *fuzzModel) checkState(t *testing.T, step int, what string, a *Allocator) {
	t.Helper()
	held := a.Held()
	holders := map[netip.Addr][]string{}
	for key, addrs := range held {
		fams := map[Family]bool{}
		for _, x := range addrs {
			if fams[FamilyOf(x)] {
				t.Fatalf("after step %d %s: %s holds two %s addresses %v", step, what, key, FamilyOf(x), addrs)
			}
			fams[FamilyOf(x)] = true
			holders[x] = append(holders[x], key)
		}
	}
	wantRetained := map[netip.Addr]bool{}
	inUse := map[string]uint64{}
	for x, keys := range holders {
		for _, k1 := range keys {
			for _, k2 := range keys {
				s1, s2 := m.svcs[k1], m.svcs[k2]
				if k1 != k2 && (s1.SharingKey == "" || s1.SharingKey != s2.SharingKey) {
					t.Fatalf("after step %d %s: %s held by %s and %s, which do not share a key (%q, %q)",
						step, what, x, k1, k2, s1.SharingKey, s2.SharingKey)
				}
			}
		}
		var p *config.Pool
		for i := range m.cfg {
			if m.cfg[i].Contains(x) {
				p = &m.cfg[i]
			}
		}
		if p == nil || !p.Assignable(x) {
			wantRetained[x] = true
			continue
		}
		inUse[fmt.Sprintf("%s/%s", p.Name, FamilyOf(x))]++
		for _, k := range keys {
			s := m.svcs[k]
			if !newPool(p).allows(&s) {
				wantRetained[x] = true
			}
		}
	}
	if got := retainedSet(a); !maps.Equal(got, wantRetained) {
		t.Fatalf("after step %d %s: retained %v, want %v", step, what, got, wantRetained)
	}
	for _, st := range a.Stats() {
		k := fmt.Sprintf("%s/%s", st.Pool, st.Family)
		if st.InUse != inUse[k] || st.InUse > st.Usable {
			t.Fatalf("after step %d %s: pool %s in use %d of %d, want %d", step, what, k, st.InUse, st.Usable, inUse[k])
		}
	}
	if n := len(a.Retained()); n != len(wantRetained) {
		t.Fatalf("after step %d %s: %d retained, want %d", step, what, n, len(wantRetained))
	}
}
