package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Port is one Service port, as far as IP sharing cares.
type Port struct {
	Protocol string
	Port     int32
}

// Service is what the allocator needs to know about a Service.
type Service struct {
	// Key identifies the Service, "namespace/name".
	Key       string
	Namespace string
	Labels    map[string]string
	// SharingKey is the allow-shared-ip annotation; empty means never share.
	SharingKey string
	Ports      []Port
	// LocalTraffic is externalTrafficPolicy: Local. Such Services share an
	// address only with Services that select the same pods, or traffic would
	// reach nodes without a local endpoint for one of them.
	LocalTraffic bool
	// Selector is the pod selector in a canonical string form.
	Selector string
}

// Request asks for the addresses one Service should hold.
type Request struct {
	Service Service
	// Pool, when set, is the only pool to use (the address-pool annotation).
	Pool string
	// Families are wanted in order, the primary first.
	Families []Family
	// RequireAll fails the request unless every family gets an address
	// (SingleStack and RequireDualStack). Otherwise only the primary family
	// must succeed (PreferDualStack).
	RequireAll bool
	// IPs are specific addresses asked for, at most one per family.
	IPs []netip.Addr
}

// Assignment is one address a Service holds and the pool it came from.
type Assignment struct {
	IP   netip.Addr
	Pool string
}

// PoolStats is one pool's usage, for metrics.
type PoolStats struct {
	Pool   string
	Family Family
	InUse  uint64
	Usable uint64
}

// ipUse records who holds one address. All users of a shared address have
// the same sharing key, so it is recorded once.
type ipUse struct {
	pool       *pool
	sharingKey string
	users      map[string]*Service
}

// Allocator assigns addresses to Services. It is safe for concurrent use.
type Allocator struct {
	mu      sync.Mutex
	pools   map[string]*pool
	ordered []*pool // auto-assign order: priority, then file order
	inUse   map[netip.Addr]*ipUse
	held    map[string][]netip.Addr // service key -> addresses, at most one per family
	// shareable indexes the in-use addresses by sharing key, so joining a
	// shared address looks only at addresses with the same key.
	shareable map[string]map[netip.Addr]struct{}
}

// New returns an allocator over the given pools, which the config package
// has already validated (in particular, they do not overlap).
func New(pools []config.Pool) *Allocator {
	a := &Allocator{
		pools:     make(map[string]*pool, len(pools)),
		inUse:     make(map[netip.Addr]*ipUse),
		held:      make(map[string][]netip.Addr),
		shareable: make(map[string]map[netip.Addr]struct{}),
	}
	for i := range pools {
		p := newPool(&pools[i], i)
		a.pools[p.name()] = p
		a.ordered = append(a.ordered, p)
	}
	sort.SliceStable(a.ordered, func(i, j int) bool {
		return a.ordered[i].cfg.Priority < a.ordered[j].cfg.Priority
	})
	return a
}

// Ensure makes the Service hold addresses that satisfy req and returns them,
// primary family first. A valid address the Service already holds is kept.
// On error nothing changes: the Service keeps what it held.
func (a *Allocator) Ensure(req Request) ([]Assignment, error) {
	if req.Service.Key == "" {
		return nil, errorf(ReasonInvalidRequest, "service has no key")
	}
	if len(req.Families) == 0 {
		return nil, errorf(ReasonInvalidRequest, "service %s asks for no IP family", req.Service.Key)
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	svc := &req.Service
	current := a.held[svc.Key]
	var chosen []netip.Addr
	for i, f := range req.Families {
		addr, err := a.choose(&req, f, current)
		if err != nil {
			if i == 0 || req.RequireAll {
				return nil, err
			}
			// PreferDualStack: the secondary family is best effort.
			continue
		}
		chosen = append(chosen, addr)
	}

	for _, old := range current {
		if !slices.Contains(chosen, old) {
			a.unassign(svc.Key, old)
		}
	}
	for _, addr := range chosen {
		a.assign(svc, addr)
	}
	a.held[svc.Key] = chosen
	return a.assignments(chosen), nil
}

// choose picks the address of family f for req: the one the Service holds if
// still valid, else the requested one, else a shared or free one.
func (a *Allocator) choose(req *Request, f Family, current []netip.Addr) (netip.Addr, error) {
	svc := &req.Service
	var want netip.Addr
	for _, ip := range req.IPs {
		if FamilyOf(ip) == f {
			want = ip
		}
	}
	for _, addr := range current {
		if FamilyOf(addr) != f || (want.IsValid() && addr != want) {
			continue
		}
		if a.validFor(req, addr) == nil {
			return addr, nil
		}
	}
	if want.IsValid() {
		if err := a.validFor(req, want); err != nil {
			return netip.Addr{}, err
		}
		return want, nil
	}

	candidates, err := a.candidatePools(req, f)
	if err != nil {
		return netip.Addr{}, err
	}
	// A Service with a sharing key joins an address already shared under
	// that key before it takes a fresh one.
	if svc.SharingKey != "" {
		if addr, ok := a.findShared(svc, f, candidates); ok {
			return addr, nil
		}
	}
	for _, p := range candidates {
		addr, ok := p.nextFree(f, func(x netip.Addr) bool { return a.inUse[x] == nil })
		if ok {
			return addr, nil
		}
	}
	names := make([]string, len(candidates))
	for i, p := range candidates {
		names[i] = fmt.Sprintf("%q", p.name())
	}
	return netip.Addr{}, errorf(ReasonPoolExhausted,
		"no free %s address for service %s: pool %s exhausted", f, svc.Key, strings.Join(names, ", "))
}

// validFor reports why addr cannot serve req, or nil if it can.
func (a *Allocator) validFor(req *Request, addr netip.Addr) error {
	svc := &req.Service
	p := a.poolOf(addr)
	if p == nil {
		return errorf(ReasonNotInPool, "requested IP %s for service %s is not in any address pool", addr, svc.Key)
	}
	if req.Pool != "" && p.name() != req.Pool {
		return errorf(ReasonNotInPool, "requested IP %s for service %s is in pool %q, not in the requested pool %q", addr, svc.Key, p.name(), req.Pool)
	}
	if !p.cfg.Assignable(addr) {
		return errorf(ReasonNotInPool, "requested IP %s for service %s is skipped by avoid-buggy-ips in pool %q", addr, svc.Key, p.name())
	}
	if !p.allows(svc) {
		return errorf(ReasonPoolNotAllowed, "pool %q does not allow service %s (namespace or service-selector restriction)", p.name(), svc.Key)
	}
	if use := a.inUse[addr]; use != nil {
		if err := compatible(svc, addr, use); err != nil {
			return err
		}
	}
	return nil
}

// candidatePools lists the pools req may take a family-f address from, in
// the order to try them.
func (a *Allocator) candidatePools(req *Request, f Family) ([]*pool, error) {
	svc := &req.Service
	if req.Pool != "" {
		p := a.pools[req.Pool]
		switch {
		case p == nil:
			return nil, errorf(ReasonUnknownPool, "address pool %q requested by service %s does not exist", req.Pool, svc.Key)
		case !p.hasFamily(f):
			return nil, errorf(ReasonNoPool, "address pool %q requested by service %s has no %s addresses", req.Pool, svc.Key, f)
		case !p.allows(svc):
			return nil, errorf(ReasonPoolNotAllowed, "address pool %q does not allow service %s (namespace or service-selector restriction)", req.Pool, svc.Key)
		}
		return []*pool{p}, nil
	}
	var out []*pool
	for _, p := range a.ordered {
		if p.cfg.AutoAssigns() && p.hasFamily(f) && p.allows(svc) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errorf(ReasonNoPool, "no auto-assign address pool with %s addresses allows service %s", f, svc.Key)
	}
	return out, nil
}

// findShared returns an address of family f in one of pools that is already
// shared under svc's sharing key and compatible with svc.
func (a *Allocator) findShared(svc *Service, f Family, pools []*pool) (netip.Addr, bool) {
	var found []netip.Addr
	for addr := range a.shareable[svc.SharingKey] {
		use := a.inUse[addr]
		if FamilyOf(addr) != f || !slices.Contains(pools, use.pool) {
			continue
		}
		if compatible(svc, addr, use) == nil {
			found = append(found, addr)
		}
	}
	if len(found) == 0 {
		return netip.Addr{}, false
	}
	// Map order is random; pick the lowest so the answer is stable.
	slices.SortFunc(found, netip.Addr.Compare)
	return found[0], true
}

// compatible reports why svc may not share addr with its current users.
func compatible(svc *Service, addr netip.Addr, use *ipUse) error {
	for key, other := range use.users {
		if key == svc.Key {
			continue
		}
		if svc.SharingKey == "" || other.SharingKey != svc.SharingKey {
			return errorf(ReasonIPInUse, "IP %s is already used by service %s and the allow-shared-ip keys do not match (%q vs %q)",
				addr, key, svc.SharingKey, other.SharingKey)
		}
		for _, p := range svc.Ports {
			for _, q := range other.Ports {
				if p == q {
					return errorf(ReasonIPInUse, "IP %s cannot be shared with service %s: both use port %d/%s", addr, key, p.Port, p.Protocol)
				}
			}
		}
		if (svc.LocalTraffic || other.LocalTraffic) && svc.Selector != other.Selector {
			return errorf(ReasonIPInUse, "IP %s cannot be shared with service %s: with externalTrafficPolicy Local both must select the same pods", addr, key)
		}
	}
	return nil
}

func (a *Allocator) poolOf(addr netip.Addr) *pool {
	if use := a.inUse[addr]; use != nil {
		return use.pool
	}
	for _, p := range a.ordered {
		if p.contains(addr) {
			return p
		}
	}
	return nil
}

func (a *Allocator) assign(svc *Service, addr netip.Addr) {
	use := a.inUse[addr]
	if use == nil {
		p := a.poolOf(addr)
		use = &ipUse{pool: p, users: make(map[string]*Service, 1)}
		a.inUse[addr] = use
		p.used[FamilyOf(addr)]++
		p.cursor[FamilyOf(addr)] = addr
	}
	cp := *svc
	use.users[svc.Key] = &cp
	// The sole user of an address may have changed its key; shared users
	// all have the same key by construction.
	if len(use.users) == 1 && use.sharingKey != svc.SharingKey {
		a.unindex(addr, use)
		use.sharingKey = svc.SharingKey
		if use.sharingKey != "" {
			if a.shareable[use.sharingKey] == nil {
				a.shareable[use.sharingKey] = make(map[netip.Addr]struct{})
			}
			a.shareable[use.sharingKey][addr] = struct{}{}
		}
	}
}

func (a *Allocator) unindex(addr netip.Addr, use *ipUse) {
	if set := a.shareable[use.sharingKey]; set != nil {
		delete(set, addr)
		if len(set) == 0 {
			delete(a.shareable, use.sharingKey)
		}
	}
}

func (a *Allocator) unassign(key string, addr netip.Addr) {
	use := a.inUse[addr]
	if use == nil {
		return
	}
	delete(use.users, key)
	if len(use.users) == 0 {
		delete(a.inUse, addr)
		use.pool.used[FamilyOf(addr)]--
		a.unindex(addr, use)
	}
}

func (a *Allocator) assignments(addrs []netip.Addr) []Assignment {
	out := make([]Assignment, len(addrs))
	for i, addr := range addrs {
		out[i] = Assignment{IP: addr, Pool: a.inUse[addr].pool.name()}
	}
	return out
}

// Restore records that a Service already holds addrs, as read from its
// status after a restart. Addresses outside every pool, or that clash with
// a Service restored before it, are skipped and reported; the next Ensure
// for the Service then finds it a valid address. Call it for Services in
// creation order, so the oldest claim to an address wins.
func (a *Allocator) Restore(svc Service, addrs []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []string
	kept := a.held[svc.Key]
	for _, addr := range addrs {
		p := a.poolOf(addr)
		if p == nil || !p.cfg.Assignable(addr) {
			errs = append(errs, fmt.Sprintf("%s is not in any address pool", addr))
			continue
		}
		if slices.ContainsFunc(kept, func(x netip.Addr) bool { return FamilyOf(x) == FamilyOf(addr) }) {
			errs = append(errs, fmt.Sprintf("%s is a second %s address", addr, FamilyOf(addr)))
			continue
		}
		if use := a.inUse[addr]; use != nil {
			if err := compatible(&svc, addr, use); err != nil {
				errs = append(errs, err.Error())
				continue
			}
		}
		a.assign(&svc, addr)
		kept = append(kept, addr)
	}
	a.held[svc.Key] = kept
	if len(errs) > 0 {
		return fmt.Errorf("restoring service %s: %s", svc.Key, strings.Join(errs, "; "))
	}
	return nil
}

// Release frees every address the Service holds and returns them.
func (a *Allocator) Release(key string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	addrs := a.held[key]
	for _, addr := range addrs {
		a.unassign(key, addr)
	}
	delete(a.held, key)
	return addrs
}

// Lookup returns what the Service holds, primary family first.
func (a *Allocator) Lookup(key string) []Assignment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.assignments(a.held[key])
}

// Held returns a copy of what every Service holds, by Service key.
func (a *Allocator) Held() map[string][]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string][]netip.Addr, len(a.held))
	for k, addrs := range a.held {
		if len(addrs) > 0 {
			out[k] = slices.Clone(addrs)
		}
	}
	return out
}

// Stats returns every pool's usage per family it has.
func (a *Allocator) Stats() []PoolStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []PoolStats
	for _, p := range a.ordered {
		for _, f := range []Family{IPv4, IPv6} {
			if p.hasFamily(f) {
				out = append(out, PoolStats{Pool: p.name(), Family: f, InUse: p.used[f], Usable: p.usable[f]})
			}
		}
	}
	return out
}

// Reconfigure replaces the pools, keeping every address in use with the
// Services that hold it. It refuses, changing nothing, when an address in
// use would be lost: outside every new pool, skipped by avoid-buggy-ips, or
// in a pool whose namespace or service-selector restriction no longer
// allows a Service holding it. Otherwise the next change to that Service
// would hand it a different address, and a working IP must never move
// because of a config edit. The error lists every such address.
func (a *Allocator) Reconfigure(pools []config.Pool) error {
	next := New(pools)
	a.mu.Lock()
	defer a.mu.Unlock()
	var lost []string
	homes := make(map[netip.Addr]*pool, len(a.inUse))
	for addr, use := range a.inUse {
		p := next.poolOf(addr)
		var why string
		switch {
		case p == nil:
			why = "would be in no address pool"
		case !p.cfg.Assignable(addr):
			why = fmt.Sprintf("would be skipped by avoid-buggy-ips in pool %q", p.name())
		default:
			for key, svc := range use.users {
				if !p.allows(svc) {
					why = fmt.Sprintf("would be in pool %q, whose namespaces or service-selectors no longer allow service %s", p.name(), key)
					break
				}
			}
		}
		if why != "" {
			lost = append(lost, fmt.Sprintf("%s (held by %s) %s", addr, strings.Join(slices.Sorted(maps.Keys(use.users)), ", "), why))
			continue
		}
		homes[addr] = p
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return fmt.Errorf("address-pools: the new pools would take %d address(es) in use away from their Services; keep them in a pool or delete those Services first:\n  %s",
			len(lost), strings.Join(lost, "\n  "))
	}
	for addr, use := range a.inUse {
		p := homes[addr]
		use.pool = p
		p.used[FamilyOf(addr)]++
	}
	a.pools, a.ordered = next.pools, next.ordered
	return nil
}
