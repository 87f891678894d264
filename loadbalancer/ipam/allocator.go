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
	IP netip.Addr
	// Pool is the pool that contains the address in the config in effect,
	// or "" for a retained address that no pool contains any more.
	Pool string
}

// PoolStats is one pool's usage, for metrics.
type PoolStats struct {
	Pool   string
	Family Family
	// InUse counts the addresses in use that the pool could hand out, so
	// InUse <= Usable always. An address in use that no pool can hand out
	// (retained outside every pool, or skipped by avoid-buggy-ips) is
	// counted by no pool.
	InUse  uint64
	Usable uint64
}

// RetainedAddress is an address in use that the config in effect would not
// give its holders today (see the package comment). They keep it until they
// release it.
type RetainedAddress struct {
	IP netip.Addr
	// Holders are the keys of the Services holding it, sorted.
	Holders []string
	// Reason says why the config in effect would not give it, naming the
	// pool or the Service.
	Reason string
	// Contained is whether a pool of the config in effect contains it
	// (retained for avoid-buggy-ips or a namespace or service-selector
	// restriction). Such an address is still announced under that pool.
	Contained bool
	// Last is the pool that last contained it, while this allocator ran;
	// nil when it was restored from status outside every pool.
	Last *config.Pool
}

// ShownBy reports a Service other than except whose status still shows
// addr, as the loadbalancer package reads it from the Service informer.
type ShownBy func(addr netip.Addr, except string) (other string, shown bool)

// holder is one Service holding an address.
type holder struct {
	svc Service
	// origin is the name of the pool the address was given from, or, for an
	// address restored from status, the pool the Service is pinned to by
	// its address-pool annotation (else the pool containing it then).
	origin string
	// clashes is set by Restore when the Service's ports or traffic policy
	// clash with those of a Service restored before it under the same
	// sharing key. Only a spec edit that Ensure refused, while the Service
	// kept the address, leaves status like that; before the restart the
	// allocator still knew the spec it last accepted. The address stays the
	// Service's, and other holders are not judged against it, so they keep
	// it as they did before the restart; its own next Ensure is (see keeps).
	clashes bool
}

// ipUse records who holds one address. All users of a shared address have
// the same sharing key, so it is recorded once.
type ipUse struct {
	// pool is the pool of the config in effect that could hand this
	// address out, and counts it as used; nil if none does.
	pool *pool
	// last is the config of the pool that last contained the address.
	last       *config.Pool
	sharingKey string
	users      map[string]*holder
	// retained: see RetainedAddress.
	retained bool
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
	// retained is the set of retained addresses; retainedGen counts its
	// changes, so that a caller can tell cheaply whether to look again.
	retained    map[netip.Addr]struct{}
	retainedGen uint64
	// shownBy, when set, keeps an address that another Service's status
	// still shows from being handed out.
	shownBy ShownBy
}

// New returns an allocator over the given pools, which the config package
// has already validated (in particular, they do not overlap).
func New(pools []config.Pool) *Allocator {
	a := &Allocator{
		pools:     make(map[string]*pool, len(pools)),
		inUse:     make(map[netip.Addr]*ipUse),
		held:      make(map[string][]netip.Addr),
		shareable: make(map[string]map[netip.Addr]struct{}),
		retained:  make(map[netip.Addr]struct{}),
	}
	for i := range pools {
		p := newPool(&pools[i])
		a.pools[p.name()] = p
		a.ordered = append(a.ordered, p)
	}
	sort.SliceStable(a.ordered, func(i, j int) bool {
		return a.ordered[i].cfg.Priority < a.ordered[j].cfg.Priority
	})
	return a
}

// SetShownBy makes the allocator consult shown before it hands out an
// address that no Service holds: one that another Service's status still
// shows is not free. A Service's status lags its allocation (the service
// controller patches it after Ensure returns, and the patch may fail), so
// without this check an address freed in memory could appear in two
// Services' status at once. shown is called with the allocator's lock
// held; it must not call back into the allocator.
func (a *Allocator) SetShownBy(shown ShownBy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shownBy = shown
}

// Ensure makes the Service hold addresses that satisfy req and returns them,
// primary family first. An address the Service already holds is kept unless
// the request itself rules it out (see the package comment). On error
// nothing changes: the Service keeps what it held.
func (a *Allocator) Ensure(req Request) ([]Assignment, error) {
	got, _, err := a.EnsureWithShortfall(req)
	return got, err
}

// EnsureWithShortfall is Ensure that also says why a PreferDualStack
// request got no address of a secondary family (nil if it got all), so
// that the caller can retry that family when an address frees up.
func (a *Allocator) EnsureWithShortfall(req Request) ([]Assignment, *Error, error) {
	if req.Service.Key == "" {
		return nil, nil, errorf(ReasonInvalidRequest, "service has no key")
	}
	if len(req.Families) == 0 {
		return nil, nil, errorf(ReasonInvalidRequest, "service %s asks for no IP family", req.Service.Key)
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	svc := &req.Service
	current := a.held[svc.Key]
	var chosen []netip.Addr
	origins := make([]string, 0, 2) // one per family; kept on the stack
	froms := make([]*pool, 0, 2)
	var shortfall *Error
	for i, f := range req.Families {
		addr, origin, from, err := a.choose(&req, f, current)
		if err != nil {
			// A refusal that keeps a held address fails the whole
			// request, so that a secondary family's address is not dropped.
			if i == 0 || req.RequireAll || err.keeps {
				return nil, nil, err
			}
			// PreferDualStack: the secondary family is best effort.
			if shortfall == nil {
				shortfall = err
			}
			continue
		}
		chosen = append(chosen, addr)
		origins = append(origins, origin)
		froms = append(froms, from)
	}

	for _, old := range current {
		if !slices.Contains(chosen, old) {
			a.unassign(svc.Key, old)
		}
	}
	for i, addr := range chosen {
		a.assign(svc, addr, origins[i], froms[i])
	}
	a.held[svc.Key] = chosen
	return a.assignments(chosen), shortfall, nil
}

// choose picks the address of family f for req, and the pool it is given
// from: the one the Service holds if the request still allows it, else the
// requested one, else a shared or free one. from is the pool that hands
// out an address new to the Service, nil for one it keeps or joins.
func (a *Allocator) choose(req *Request, f Family, current []netip.Addr) (netip.Addr, string, *pool, *Error) {
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
		use := a.inUse[addr]
		h := use.users[svc.Key]
		moves, err := a.keeps(req, addr, use, h)
		if err != nil && !moves {
			return netip.Addr{}, "", nil, err
		}
		if err == nil {
			// A Service now pinned to the pool containing its address holds
			// it as that pool's from now on.
			origin := h.origin
			if req.Pool != "" {
				origin = req.Pool
			}
			return addr, origin, nil, nil
		}
	}
	if want.IsValid() {
		p, err := a.validNew(req, want)
		if err != nil {
			return netip.Addr{}, "", nil, err
		}
		return want, p.name(), p, nil
	}

	candidates, err := a.candidatePools(req, f)
	if err != nil {
		return netip.Addr{}, "", nil, err
	}
	// A Service with a sharing key joins an address already shared under
	// that key before it takes a fresh one.
	if svc.SharingKey != "" {
		if addr, ok := a.findShared(svc, f, candidates); ok {
			return addr, a.inUse[addr].pool.name(), nil, nil
		}
	}
	free := func(x netip.Addr) bool {
		if a.inUse[x] != nil {
			return false
		}
		if a.shownBy != nil {
			if _, shown := a.shownBy(x, svc.Key); shown {
				return false
			}
		}
		return true
	}
	for _, p := range candidates {
		if addr, ok := p.nextFree(f, free); ok {
			return addr, p.name(), p, nil
		}
	}
	names := make([]string, len(candidates))
	for i, p := range candidates {
		names[i] = fmt.Sprintf("%q", p.name())
	}
	return netip.Addr{}, "", nil, errorf(ReasonPoolExhausted,
		"no free %s address for service %s: pool %s exhausted", f, svc.Key, strings.Join(names, ", "))
}

// keeps reports why the Service may not keep addr, which it holds, or nil
// if it may. Only the Service's own request can rule out an address it
// holds: a requested pool that is neither the one the address was given
// from nor the one containing it now, or sharing made impossible by its
// sharing key, ports or traffic policy. The config's pools, avoid-buggy-ips
// and restrictions are not checked: a config edit never takes an address
// away (such an address is retained). The requested-IP and family checks
// are made by choose.
//
// moves says what the refusal means. A requested pool or a new sharing key
// asks for another address, so the Service moves to one. Ports or a traffic
// policy that clash with the other holders' do not: the request is refused
// and the Service keeps its address, so that a port typo never moves a
// working address, and the refusal reads the same after a restart, when
// Restore cannot tell which of two clashing holders was edited last.
func (a *Allocator) keeps(req *Request, addr netip.Addr, use *ipUse, h *holder) (moves bool, err *Error) {
	svc := &req.Service
	if req.Pool != "" && h.origin != req.Pool && (use.pool == nil || use.pool.name() != req.Pool) {
		return true, errorf(ReasonNotInPool, "IP %s of service %s is not from the requested pool %q", addr, svc.Key, req.Pool)
	}
	if err := sameSharingKey(svc, addr, use); err != nil {
		return true, err
	}
	if err := fits(svc, addr, use, true); err != nil {
		err.Msg += "; it keeps the address until its spec no longer clashes"
		err.keeps = true
		return false, err
	}
	return false, nil
}

// validNew returns the pool that can give addr, which the Service does not
// hold yet, to req, or why it cannot. Every rule of the config in effect
// applies to an address newly given.
func (a *Allocator) validNew(req *Request, addr netip.Addr) (*pool, *Error) {
	svc := &req.Service
	p := a.containing(addr)
	if p == nil {
		return nil, errorf(ReasonNotInPool, "requested IP %s for service %s is not in any address pool", addr, svc.Key)
	}
	if req.Pool != "" && p.name() != req.Pool {
		return nil, errorf(ReasonNotInPool, "requested IP %s for service %s is in pool %q, not in the requested pool %q", addr, svc.Key, p.name(), req.Pool)
	}
	if !p.cfg.Assignable(addr) {
		return nil, errorf(ReasonNotInPool, "requested IP %s for service %s is skipped by avoid-buggy-ips in pool %q", addr, svc.Key, p.name())
	}
	if !p.allows(svc) {
		return nil, errorf(ReasonPoolNotAllowed, "pool %q does not allow service %s (namespace or service-selector restriction)", p.name(), svc.Key)
	}
	use := a.inUse[addr]
	if use == nil {
		if a.shownBy != nil {
			if other, shown := a.shownBy(addr, svc.Key); shown {
				return nil, errorf(ReasonIPInUse, "IP %s is still in the status of service %s", addr, other)
			}
		}
		return p, nil
	}
	if use.retained {
		return nil, errorf(ReasonIPInUse, "IP %s is retained by service %s, which holds it from an earlier config", addr, strings.Join(slices.Sorted(maps.Keys(use.users)), ", "))
	}
	if err := compatible(svc, addr, use); err != nil {
		return nil, err
	}
	return p, nil
}

// candidatePools lists the pools req may take a family-f address from, in
// the order to try them.
func (a *Allocator) candidatePools(req *Request, f Family) ([]*pool, *Error) {
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
// shared under svc's sharing key and compatible with svc. A retained
// address is never joined: it is its holders' only.
func (a *Allocator) findShared(svc *Service, f Family, pools []*pool) (netip.Addr, bool) {
	var found []netip.Addr
	for addr := range a.shareable[svc.SharingKey] {
		use := a.inUse[addr]
		if FamilyOf(addr) != f || use.retained || !slices.Contains(pools, use.pool) {
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
func compatible(svc *Service, addr netip.Addr, use *ipUse) *Error {
	if err := sameSharingKey(svc, addr, use); err != nil {
		return err
	}
	return fits(svc, addr, use, false)
}

// sameSharingKey reports why svc may not share addr with its current users
// because of its allow-shared-ip key.
func sameSharingKey(svc *Service, addr netip.Addr, use *ipUse) *Error {
	for key, other := range use.users {
		if key == svc.Key {
			continue
		}
		if svc.SharingKey == "" || other.svc.SharingKey != svc.SharingKey {
			return errorf(ReasonIPInUse, "IP %s is already used by service %s and the allow-shared-ip keys do not match (%q vs %q)",
				addr, key, svc.SharingKey, other.svc.SharingKey)
		}
	}
	return nil
}

// fits reports why svc, whose sharing key matches, may not share addr with
// its current users because of its ports or traffic policy. With
// skipClashing, a holder restored in clash with the others is not judged
// against (see holder.clashes): that is for a holder keeping the address;
// a Service newly joining it must fit every holder's spec.
func fits(svc *Service, addr netip.Addr, use *ipUse, skipClashing bool) *Error {
	for key, other := range use.users {
		if key == svc.Key || (skipClashing && other.clashes) {
			continue
		}
		for _, p := range svc.Ports {
			for _, q := range other.svc.Ports {
				if p == q {
					return errorf(ReasonIPInUse, "IP %s cannot be shared with service %s: both use port %d/%s", addr, key, p.Port, p.Protocol)
				}
			}
		}
		if (svc.LocalTraffic || other.svc.LocalTraffic) && svc.Selector != other.svc.Selector {
			return errorf(ReasonIPInUse, "IP %s cannot be shared with service %s: with externalTrafficPolicy Local both must select the same pods", addr, key)
		}
	}
	return nil
}

// containing returns the pool of the config in effect whose ranges contain
// addr, or nil. Pools do not overlap, so there is at most one.
func (a *Allocator) containing(addr netip.Addr) *pool {
	for _, p := range a.ordered {
		if p.contains(addr) {
			return p
		}
	}
	return nil
}

// assign records that svc holds addr, given from the pool named origin;
// "" means the pool that contains it, if any (for an address taken from
// status, whose origin is not known). from is the pool of the config in
// effect that hands addr out, when the caller knows it (choose found addr
// there, assignable); nil means looking it up.
func (a *Allocator) assign(svc *Service, addr netip.Addr, origin string, from *pool) {
	use := a.inUse[addr]
	if use == nil {
		use = &ipUse{users: make(map[string]*holder, 1)}
		p, gives := from, from != nil
		if p == nil {
			p = a.containing(addr)
			gives = p != nil && (!p.cfg.AvoidBuggyIPs || p.cfg.Assignable(addr))
		}
		if p != nil {
			use.last = p.cfg
		}
		if gives {
			use.pool = p
			p.used[FamilyOf(addr)]++
			p.cursor[FamilyOf(addr)] = addr
		}
		a.inUse[addr] = use
	}
	if origin == "" && use.last != nil {
		origin = use.last.Name
	}
	if h := use.users[svc.Key]; h != nil {
		h.svc, h.origin, h.clashes = *svc, origin, false
	} else {
		use.users[svc.Key] = &holder{svc: *svc, origin: origin}
	}
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
	a.refreshRetained(addr, use)
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
		if use.pool != nil {
			use.pool.used[FamilyOf(addr)]--
		}
		a.unindex(addr, use)
		if use.retained {
			use.retained = false
			a.markRetained(addr, false)
		}
		return
	}
	a.refreshRetained(addr, use)
}

// refreshRetained works out whether addr is retained: no pool of the config
// in effect could hand it out, or its pool does not allow a holder.
func (a *Allocator) refreshRetained(addr netip.Addr, use *ipUse) {
	r := use.pool == nil
	if !r && use.pool.restricted() {
		for _, h := range use.users {
			if !use.pool.allows(&h.svc) {
				r = true
				break
			}
		}
	}
	if r != use.retained {
		use.retained = r
		a.markRetained(addr, r)
	}
}

func (a *Allocator) markRetained(addr netip.Addr, r bool) {
	_, was := a.retained[addr]
	switch {
	case r && !was:
		a.retained[addr] = struct{}{}
	case !r && was:
		delete(a.retained, addr)
	default:
		return
	}
	a.retainedGen++
}

func (a *Allocator) assignments(addrs []netip.Addr) []Assignment {
	out := make([]Assignment, len(addrs))
	for i, addr := range addrs {
		out[i] = Assignment{IP: addr}
		if p := a.inUse[addr].pool; p != nil {
			out[i].Pool = p.name()
		} else if p := a.containing(addr); p != nil {
			out[i].Pool = p.name()
		}
	}
	return out
}

// Restore records that a Service already holds addrs, as read from its
// status after a restart. pin is its address-pool annotation, taken as the
// pool the addresses were given from. An address no pool can give any more
// is kept all the same, as retained: a restart must not move an address
// that a config edit did not. So is an address shared under the same key
// with a Service restored before it whose ports or traffic policy now clash
// (a spec edit refused before the restart; see holder.clashes). Skipped,
// and reported, are a second address of one family and an address a
// Service restored before it holds under another sharing key (a duplicate,
// which only a fault can cause); the next Ensure for the Service then finds
// it a valid address. Call it for Services in creation order, so the oldest
// claim to an address wins.
func (a *Allocator) Restore(svc Service, pin string, addrs []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []string
	kept := a.held[svc.Key]
	for _, addr := range addrs {
		if slices.ContainsFunc(kept, func(x netip.Addr) bool { return FamilyOf(x) == FamilyOf(addr) }) {
			if !slices.Contains(kept, addr) {
				errs = append(errs, fmt.Sprintf("%s is a second %s address", addr, FamilyOf(addr)))
			}
			continue
		}
		clashes := false
		if use := a.inUse[addr]; use != nil {
			if err := sameSharingKey(&svc, addr, use); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			clashes = fits(&svc, addr, use, false) != nil
		}
		a.assign(&svc, addr, pin, nil)
		a.inUse[addr].users[svc.Key].clashes = clashes
		kept = append(kept, addr)
	}
	a.held[svc.Key] = kept
	if len(errs) > 0 {
		return fmt.Errorf("restoring service %s: %s", svc.Key, strings.Join(errs, "; "))
	}
	return nil
}

// Settle resolves an address that the status of several Services shows,
// which only a fault can cause (a status patch that failed or came from a
// deposed leader). keeper keeps addr and is recorded as holding it, in
// place of any other address of that family it held; every Service in
// losers stops holding addr. pin is keeper's address-pool annotation.
func (a *Allocator) Settle(addr netip.Addr, keeper Service, pin string, losers []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Check first, so that a refusal changes nothing.
	if use := a.inUse[addr]; use != nil && !slices.Contains(a.held[keeper.Key], addr) {
		rest := &ipUse{users: maps.Clone(use.users)}
		for _, key := range losers {
			delete(rest.users, key)
		}
		if err := compatible(&keeper, addr, rest); err != nil {
			return err
		}
	}
	for _, key := range losers {
		if key == keeper.Key || !slices.Contains(a.held[key], addr) {
			continue
		}
		a.unassign(key, addr)
		a.held[key] = slices.DeleteFunc(slices.Clone(a.held[key]), func(x netip.Addr) bool { return x == addr })
		if len(a.held[key]) == 0 {
			delete(a.held, key)
		}
	}
	kept := a.held[keeper.Key]
	if slices.Contains(kept, addr) {
		return nil
	}
	// addr takes the place of the keeper's address of its family, so the
	// primary family stays first.
	next := slices.Clone(kept)
	i := slices.IndexFunc(next, func(x netip.Addr) bool { return FamilyOf(x) == FamilyOf(addr) })
	if i >= 0 {
		a.unassign(keeper.Key, next[i])
		next[i] = addr
	} else {
		next = append(next, addr)
	}
	a.assign(&keeper, addr, pin, nil)
	a.held[keeper.Key] = next
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

// InUse reports whether some Service holds addr.
func (a *Allocator) InUse(addr netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse[addr] != nil
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

// RetainedGeneration changes whenever the set of retained addresses does.
// It is cheap, so a caller can check it after every operation and call
// Retained only when it moved.
func (a *Allocator) RetainedGeneration() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.retainedGen
}

// Retained lists the retained addresses, sorted.
func (a *Allocator) Retained() []RetainedAddress {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]RetainedAddress, 0, len(a.retained))
	for addr := range a.retained {
		use := a.inUse[addr]
		r := RetainedAddress{IP: addr, Holders: slices.Sorted(maps.Keys(use.users)), Last: use.last}
		p := a.containing(addr)
		switch {
		case p == nil:
			r.Reason = "no address pool contains it any more"
		case !p.cfg.Assignable(addr):
			r.Contained = true
			r.Reason = fmt.Sprintf("pool %q skips it (avoid-buggy-ips)", p.name())
		default:
			r.Contained = true
			var denied []string
			for key, h := range use.users {
				if !p.allows(&h.svc) {
					denied = append(denied, key)
				}
			}
			slices.Sort(denied)
			r.Reason = fmt.Sprintf("pool %q does not allow service %s (namespaces or service-selectors)", p.name(), strings.Join(denied, ", "))
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y RetainedAddress) int { return x.IP.Compare(y.IP) })
	return out
}

// Reconfigure replaces the pools. It always succeeds, and keeps every
// address in use with the Services that hold it (contract C1: a config edit
// never moves or drops an address in use). New pools apply to addresses
// handed out from now on. An address in use that the new pools would not
// hand its holders (outside every pool, skipped by avoid-buggy-ips, or in a
// pool whose namespace or service-selector restriction excludes a holder)
// becomes retained; one they would hand out again stops being retained.
func (a *Allocator) Reconfigure(pools []config.Pool) {
	next := New(pools)
	a.mu.Lock()
	defer a.mu.Unlock()
	// Next-fit goes on where it was in a pool that stays, so a just-freed
	// address is not handed out again at once.
	for name, p := range next.pools {
		if old := a.pools[name]; old != nil {
			for f, c := range old.cursor {
				if c.IsValid() && p.contains(c) {
					p.cursor[f] = c
				}
			}
		}
	}
	a.pools, a.ordered = next.pools, next.ordered
	for addr, use := range a.inUse {
		use.pool = nil
		if p := a.containing(addr); p != nil {
			use.last = p.cfg
			if p.cfg.Assignable(addr) {
				use.pool = p
				p.used[FamilyOf(addr)]++
			}
		}
		a.refreshRetained(addr, use)
	}
}
