package chaos

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The kinds of violation, one per invariant of issue 9.
const (
	vDuplicate      = "duplicate"            // two Services that do not share a key show one address
	vNotAllowed     = "not-allowed"          // an address given that no pool allowed the Service
	vMoved          = "moved"                // an address replaced though the spec asked for nothing
	vDropped        = "dropped"              // an address taken away though the spec asked for nothing
	vRetryLeak      = "retry-leak"           // the CCM keeps writing to a Service that wants no load balancer
	vFinalizer      = "finalizer-kept"       // a deleted Service still exists after quiescence
	vAllocator      = "allocator-mismatch"   // the allocator's view (C3) differs from status
	vPending        = "pending-servable"     // a waiting Service that a free address could serve
	vSecondFamily   = "second-family"        // a PreferDualStack Service without the free second family
	vConfig         = "config-not-in-effect" // the leader's pools are not the file's, and it does not say stale
	vInfrastructure = "suite-infrastructure" // the suite could not do its part, or a replica would not start or lead
)

// violation is one broken invariant.
type violation struct {
	Kind    string
	Hole    string // the hole of issue 9 it shows (1–4), when the suite can tell
	Service string
	Detail  string
	At      time.Time
	Op      int // operations started when it was seen
}

func (v violation) String() string {
	hole := ""
	if v.Hole != "" {
		hole = " [hole " + v.Hole + "]"
	}
	return fmt.Sprintf("op %d %s%s %s: %s", v.Op, v.Kind, hole, v.Service, v.Detail)
}

// configHistory is every valid config written during a run, in order. A
// status address is allowed if some version of the pools allowed it: the
// CCM reads the file every few seconds, so for a while after an edit it
// may still allocate from the version before.
type configHistory struct {
	mu      sync.Mutex
	configs []*cloudConfig
}

func (h *configHistory) add(c *cloudConfig) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.configs = append(h.configs, c)
}

func (h *configHistory) all() []*cloudConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.configs)
}

func (h *configHistory) latest() *cloudConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.configs) == 0 {
		return nil
	}
	return h.configs[len(h.configs)-1]
}

// maxViews bounds the spec versions remembered per Service between two
// status changes, and maxRecent the last versions kept whatever status did.
const (
	maxViews  = 32
	maxRecent = 6
)

// svcState is what the observer knows of one Service.
type svcState struct {
	name string
	// gen counts the changes of the Service's specView seen so far.
	gen  int
	fp   string
	view specView
	// views are the spec versions seen since the last status change: the
	// CCM computed the next status from one of them.
	views []versionedView
	// recent are the last spec versions, whatever status did: a leader
	// that was paused, or two leaders at once, may write a status computed
	// from a version older than the previous status change.
	recent []versionedView
	ips    []netip.Addr
	// givenGen is, per status address, the oldest spec version it may
	// have been computed from. An address may leave status only once gen
	// has moved past it.
	givenGen map[netip.Addr]int
	// everHeld are the addresses the Service has shown at some point.
	everHeld map[netip.Addr]bool

	foreignAnn     string // annotations the suite does not write
	lastNonLB      bool
	foreignChanges int // changes of foreignAnn seen while not a LoadBalancer
	known          bool
	gone           bool
}

type versionedView struct {
	gen  int
	view specView
}

// settled says whether s holds ip with no spec change since: then nothing
// but a bug may take it away or give it to another.
func (s *svcState) settled(ip netip.Addr) bool {
	g, ok := s.givenGen[ip]
	return ok && s.view.WantsLB && !s.view.Deleting && s.gen == g
}

// observer checks the invariants on every Service event it is given, and
// keeps what the final checks need. It is safe for concurrent use.
type observer struct {
	mu      sync.Mutex
	now     func() time.Time
	opIndex func() int
	configs *configHistory

	svcs    map[string]*svcState
	holders map[netip.Addr]map[string]bool

	violations []violation
	counts     map[string]int
	reported   map[string]bool

	lastStatusChange time.Time
	statusChanges    int
	// nonLBWrites counts the CCM's annotation writes seen on Services
	// that want no load balancer, the first of which is no violation.
	nonLBWrites int
}

func newObserver(configs *configHistory, opIndex func() int) *observer {
	return &observer{
		now: time.Now, opIndex: opIndex, configs: configs,
		svcs: map[string]*svcState{}, holders: map[netip.Addr]map[string]bool{},
		counts: map[string]int{}, reported: map[string]bool{},
	}
}

// maxViolationsKept bounds the list; counts go on.
const maxViolationsKept = 500

// report records a violation once per dedupe key.
func (o *observer) report(key string, v violation) {
	if o.reported[key] {
		return
	}
	o.reported[key] = true
	v.At = o.now()
	v.Op = o.opIndex()
	o.counts[v.Kind]++
	if len(o.violations) < maxViolationsKept {
		o.violations = append(o.violations, v)
	}
}

// Report records a violation found outside the event stream.
func (o *observer) Report(key string, v violation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.report(key, v)
}

// Observe takes the Service as an informer delivered it.
func (o *observer) Observe(s *corev1.Service) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.svcs[s.Name]
	if st == nil {
		st = &svcState{name: s.Name, givenGen: map[netip.Addr]int{}, everHeld: map[netip.Addr]bool{}}
		o.svcs[s.Name] = st
	}
	v := viewOf(s)
	if fp := v.fingerprint(); fp != st.fp {
		st.gen++
		st.fp, st.view = fp, v
		st.views = append(st.views, versionedView{st.gen, v})
		if len(st.views) > maxViews {
			st.views = st.views[len(st.views)-maxViews:]
		}
		st.recent = append(st.recent, versionedView{st.gen, v})
		if len(st.recent) > maxRecent {
			st.recent = st.recent[len(st.recent)-maxRecent:]
		}
	}

	// Hole 4: the retrier keeps nudging a Service that stopped wanting a
	// load balancer. One write may race the retype; a second is a leak.
	foreign := foreignAnnotations(s)
	isLB := s.Spec.Type == corev1.ServiceTypeLoadBalancer
	if st.known && foreign != st.foreignAnn && !isLB && st.lastNonLB {
		st.foreignChanges++
		o.nonLBWrites++
		if st.foreignChanges >= 2 {
			o.report(vRetryLeak+"/"+s.Name, violation{Kind: vRetryLeak, Hole: "4", Service: s.Name,
				Detail: fmt.Sprintf("type %s, yet the CCM changed its annotations %d times since (now %s)", s.Spec.Type, st.foreignChanges, foreign)})
		}
	}
	if isLB {
		st.foreignChanges = 0
	}
	st.foreignAnn, st.lastNonLB, st.known = foreign, !isLB, true

	if ips := statusIPs(s); !slices.Equal(ips, st.ips) {
		o.statusChanged(st, ips)
	}
}

// Forget takes a Service's deletion.
func (o *observer) Forget(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.svcs[name]
	if st == nil {
		return
	}
	for _, ip := range st.ips {
		o.unhold(ip, name)
	}
	st.ips, st.gone = nil, true
}

func (o *observer) unhold(ip netip.Addr, name string) {
	delete(o.holders[ip], name)
	if len(o.holders[ip]) == 0 {
		delete(o.holders, ip)
	}
}

func (o *observer) statusChanged(st *svcState, ips []netip.Addr) {
	o.lastStatusChange = o.now()
	o.statusChanges++
	var added []netip.Addr
	for _, ip := range ips {
		if !slices.Contains(st.ips, ip) {
			added = append(added, ip)
		}
	}
	for _, old := range st.ips {
		if slices.Contains(ips, old) {
			continue
		}
		if g, ok := st.givenGen[old]; ok && g == st.gen && !o.coHolderChanged(st.name, old) {
			kind, now := vDropped, "nothing in its place"
			for _, a := range added {
				if a.Is4() == old.Is4() {
					kind, now = vMoved, "now "+a.String()
				}
			}
			o.report(fmt.Sprintf("%s/%s/%s", kind, st.name, old), violation{Kind: kind, Hole: o.moveHole(st.view, old), Service: st.name,
				Detail: fmt.Sprintf("lost %s (%s) with no change of its spec since it got it; %s", old, o.whereIs(old), now)})
		}
		delete(st.givenGen, old)
		o.unhold(old, st.name)
	}

	oldest := st.gen
	for _, vv := range st.views {
		oldest = min(oldest, vv.gen)
	}
	for _, ip := range added {
		// An address coming back (status flapping between two writers) was
		// judged when the Service first got it.
		if !st.everHeld[ip] && !o.allowed(ip, st.views) && !o.allowed(ip, st.recent) {
			o.report(fmt.Sprintf("%s/%s/%s", vNotAllowed, st.name, ip), violation{Kind: vNotAllowed, Service: st.name,
				Detail: fmt.Sprintf("got %s (%s), which no version of the pools allowed it (spec %s)", ip, o.whereIs(ip), st.view.fingerprint())})
		}
		st.givenGen[ip] = oldest
		st.everHeld[ip] = true
		for other := range o.holders[ip] {
			ost := o.svcs[other]
			if shared(st.view, ost.view) || !st.settled(ip) || !ost.settled(ip) {
				continue
			}
			a, b := min(st.name, other), max(st.name, other)
			o.report(fmt.Sprintf("%s/%s/%s/%s", vDuplicate, ip, a, b), violation{Kind: vDuplicate, Hole: "3", Service: st.name,
				Detail: fmt.Sprintf("got %s, which %s holds; sharing keys %q and %q", ip, other, st.view.Share, ost.view.Share)})
		}
		if o.holders[ip] == nil {
			o.holders[ip] = map[string]bool{}
		}
		o.holders[ip][st.name] = true
	}
	st.ips = ips
	st.views = []versionedView{{st.gen, st.view}}
}

// coHolderChanged says whether another Service showing ip changed its
// spec since it got ip. Then the shared address may have become impossible
// to share, and which member moves is not the observer's call: after a
// restart, status does not say which member changed.
func (o *observer) coHolderChanged(name string, ip netip.Addr) bool {
	for other := range o.holders[ip] {
		if other == name {
			continue
		}
		if ost := o.svcs[other]; ost != nil && ost.gen != ost.givenGen[ip] {
			return true
		}
	}
	return false
}

// shared says whether two Services may show one address: both ask to share
// under the same key. (Whether their ports allow it is the allocator's
// call, and a port clash is a spec change that asks for a move.)
func shared(a, b specView) bool { return a.Share != "" && a.Share == b.Share }

// allowed says whether some version of the Service's spec since its last
// status change, under some version of the pools, allowed ip.
func (o *observer) allowed(ip netip.Addr, views []versionedView) bool {
	configs := o.configs.all()
	for _, vv := range views {
		v := vv.view
		if !v.WantsLB || v.BadIPs || !v.hasFamily(ip.Is4()) {
			continue
		}
		if want, ok := v.requested(ip.Is4()); ok {
			if want == ip {
				return true
			}
			continue
		}
		for _, c := range configs {
			p := c.poolOf(ip)
			if p == nil {
				continue
			}
			if (v.Pool == "" && p.AutoAssign) || (v.Pool != "" && p.Name == v.Pool) {
				return true
			}
		}
	}
	return false
}

// moveHole tells which hole of issue 9 a move of old shows, judged against
// the newest pools: an address no pool covers any more is hole 1 (a
// refused or applied edit, then a restart, and the address is not kept); a
// pinned Service whose address is now in another pool's range is hole 2.
func (o *observer) moveHole(v specView, old netip.Addr) string {
	c := o.configs.latest()
	if c == nil {
		return ""
	}
	p := c.poolOf(old)
	switch {
	case p == nil:
		return "1"
	case v.Pool != "" && p.Name != v.Pool:
		return "2"
	}
	return ""
}

// whereIs names the newest pool that covers ip.
func (o *observer) whereIs(ip netip.Addr) string {
	c := o.configs.latest()
	if c == nil {
		return "no config"
	}
	if p := c.poolOf(ip); p != nil {
		return "in pool " + p.Name
	}
	return "in no pool now"
}

// foreignAnnotations renders the annotations the suite does not write.
func foreignAnnotations(s *corev1.Service) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.Annotations)) {
		if !ourAnnotations[k] {
			parts = append(parts, k+"="+s.Annotations[k])
		}
	}
	return strings.Join(parts, ",")
}

// Quiet returns when status last changed and how many changes were seen.
func (o *observer) Quiet() (time.Time, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastStatusChange, o.statusChanges
}

// NonLBWrites returns how many CCM annotation writes were seen on Services
// that want no load balancer.
func (o *observer) NonLBWrites() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nonLBWrites
}

// Violations returns the violations recorded and the count per kind.
func (o *observer) Violations() ([]violation, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.violations), maps.Clone(o.counts)
}

// checkFinal runs the checks that hold only after quiescence on a list of
// every Service of the run: no deleted Service is left, no two Services
// that do not share a key show one address.
func (o *observer) checkFinal(svcs []corev1.Service) {
	o.mu.Lock()
	defer o.mu.Unlock()
	byIP := map[netip.Addr][]*corev1.Service{}
	for i := range svcs {
		s := &svcs[i]
		if s.DeletionTimestamp != nil {
			o.report(vFinalizer+"/"+s.Name, violation{Kind: vFinalizer, Service: s.Name,
				Detail: fmt.Sprintf("deleted at %s but still there with finalizers %v", s.DeletionTimestamp.Format(time.RFC3339), s.Finalizers)})
		}
		if !holdsAddress(s) {
			continue
		}
		for _, ip := range statusIPs(s) {
			byIP[ip] = append(byIP[ip], s)
		}
	}
	ips := slices.SortedFunc(maps.Keys(byIP), netip.Addr.Compare)
	for _, ip := range ips {
		hs := byIP[ip]
		sort.Slice(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
		for i := range hs {
			for j := i + 1; j < len(hs); j++ {
				a, b := viewOf(hs[i]), viewOf(hs[j])
				if shared(a, b) {
					continue
				}
				o.report(fmt.Sprintf("%s/%s/%s/%s", vDuplicate, ip, hs[i].Name, hs[j].Name), violation{Kind: vDuplicate, Hole: "3", Service: hs[i].Name,
					Detail: fmt.Sprintf("after quiescence %s is held by %s too; sharing keys %q and %q", ip, hs[j].Name, a.Share, b.Share)})
			}
		}
	}
}
