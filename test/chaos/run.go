package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// Bounds of the run's waits, generous for a loaded 2-core machine. None is
// asserted as a figure; exceeding one is reported with what was left.
const (
	// configPoll is the CCM's cloud-config poll interval
	// (config.PollInterval) plus a margin: after this, a leader has read
	// the file.
	configPoll = 5*time.Second + 3*time.Second
	// quietFor is how long status must not change to call the cluster
	// quiescent.
	quietFor = 5 * time.Second
	// servedWithin is issue 9's bound: a waiting Service that a free
	// address could serve has it within 10 s of quiescence.
	servedWithin = 10 * time.Second
	apiRetries   = 5
)

// run is one seeded chaos run. Only the driver goroutine touches its
// fields, except through the observer and the op log.
type run struct {
	t       testing.TB
	ctx     context.Context
	prof    *profile
	seed    uint64
	r       *rand.Rand
	cs      kubernetes.Interface
	ns      string
	reps    *replicaSet
	obs     *observer
	configs *configHistory
	log     *opLog

	cfg             *cloudConfig // the newest valid config
	fileValid       bool         // the files hold cfg, not an invalid edit
	lastConfigWrite time.Time

	live   []string // Services alive, in creation order
	nextID int

	ops       map[string]int // operation kind -> done
	rejected  map[string]int // operation kind -> refused by the apiserver
	faults    map[string]int
	edits     map[string]int // config edit kind -> written
	bursts    int
	downOps   int // operations while no CCM ran
	notes     []string
	infoMu    sync.Mutex
	quiescent quiescence
}

// quiescence is what the final phase found.
type quiescence struct {
	SettledAfter time.Duration
	Settled      bool
	Services     int
	Held         int
	Fingerprint  string
	Allocator    *allocatorState // nil when the CCM does not export C3
	Stale        bool
	Pending      int // Services without an address at the end
}

func (r *run) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.infoMu.Lock()
	r.notes = append(r.notes, s)
	r.infoMu.Unlock()
	r.t.Logf("chaos: %s", s)
}

// startInformer feeds the observer every Service event of the namespace.
func (r *run) startInformer() cache.SharedIndexInformer {
	f := informers.NewSharedInformerFactoryWithOptions(r.cs, 0, informers.WithNamespace(r.ns))
	inf := f.Core().V1().Services().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.obs.Observe(obj.(*corev1.Service)) },
		UpdateFunc: func(_, obj any) { r.obs.Observe(obj.(*corev1.Service)) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if s, ok := obj.(*corev1.Service); ok {
				r.obs.Forget(s.Name)
			}
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	f.Start(ctx.Done())
	r.t.Cleanup(func() { cancel(); f.Shutdown() })
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		r.t.Fatal("Service informer never synced")
	}
	return inf
}

// populate creates the profile's initial Services in parallel. Their specs
// are drawn in order first, so the seed fixes them.
func (r *run) populate() {
	n := r.prof.InitialServices
	svcs := make([]*corev1.Service, n)
	for i := range svcs {
		svcs[i] = newService(r.r, r.prof, r.newName(), r.cfg)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range r.prof.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				_, errs[i] = r.cs.CoreV1().Services(r.ns).Create(r.ctx, svcs[i], metav1.CreateOptions{})
			}
		}()
	}
	for i := range svcs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, s := range svcs {
		r.log.add(opCreate, describeNew(s)+" (initial)", errs[i])
		if errs[i] != nil {
			r.t.Fatalf("creating %s: %v", s.Name, errs[i])
		}
		r.live = append(r.live, s.Name)
	}
	r.ops[opCreate] += n
}

func (r *run) newName() string {
	r.nextID++
	return fmt.Sprintf("s%05d", r.nextID)
}

// faultSchedule places faults every FaultEvery operations with a seeded
// jitter, so a run always has Ops/FaultEvery of them.
func (r *run) faultSchedule() map[int]string {
	out := map[int]string{}
	kinds := []string{faultKillLeader, faultKillBoth, faultZombie}
	// The first three are one of each, so even a short run has every kind.
	r.r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	n := r.prof.Ops / r.prof.FaultEvery
	for k := range n {
		at := k*r.prof.FaultEvery + r.prof.FaultEvery/2 + r.r.IntN(r.prof.FaultEvery/2)
		kind := kinds[k%3]
		if k >= 3 {
			kind = []string{faultKillLeader, faultKillBoth, faultZombie, faultZombie, faultKillLeader}[r.r.IntN(5)]
		}
		out[at] = kind
	}
	return out
}

// drive runs the operations and faults.
func (r *run) drive() {
	schedule := r.faultSchedule()
	for i := range r.prof.Ops {
		if r.ctx.Err() != nil {
			r.note("stopped after %d operations: %v", i, r.ctx.Err())
			return
		}
		r.reps.resume(r.ctx, false)
		if err := r.reps.supervise(); err != nil {
			r.infra("supervise", err)
		}
		if kind, ok := schedule[i]; ok {
			r.fault(kind)
		} else {
			r.apply(r.prof.drawOp(r.r))
		}
		if d := r.prof.MaxPause; d > 0 {
			time.Sleep(time.Duration(r.r.Int64N(int64(d))))
		}
	}
}

// infra records that the suite could not do its part. It fails the run,
// since a CCM that cannot elect a leader or start is a finding too.
func (r *run) infra(what string, err error) {
	r.obs.Report(fmt.Sprintf("%s/%d", vInfrastructure, r.log.Len()), violation{Kind: vInfrastructure, Service: "-", Detail: what + ": " + err.Error()})
}

// fault injects one fault. Before the leader is killed or paused, half the
// time, a burst of edits that move addresses runs first, so the leader
// dies with allocations whose status writes are still in flight.
func (r *run) fault(kind string) {
	if err := r.reps.settle(r.ctx); err != nil {
		r.infra("settling before a fault", err)
	}
	if kind != faultKillBoth && r.r.IntN(2) == 0 {
		r.bursts++
		for range 3 + r.r.IntN(4) {
			r.apply([]string{opEditPool, opEditShare, opEditPorts, opEditIPs, opDelete}[r.r.IntN(5)])
		}
	}
	r.faults[kind]++
	switch kind {
	case faultKillLeader:
		r.ensureValidFile()
		name, err := r.reps.killLeader(r.ctx)
		r.log.add(kind, "SIGKILL the leader "+name+", start it again", err)
		if err != nil {
			r.infra(kind, err)
		}
	case faultZombie:
		r.ensureValidFile()
		name, err := r.reps.pauseLeader(r.ctx)
		r.log.add(kind, fmt.Sprintf("SIGSTOP the leader %s until the standby holds the lease, then SIGCONT", name), err)
		if err != nil {
			r.infra(kind, err)
		}
	case faultKillBoth:
		err := r.reps.killAll()
		r.log.add(kind, "SIGKILL both replicas", err)
		for range 3 + r.r.IntN(6) {
			r.downOps++
			r.apply([]string{opDelete, opDelete, opRetype, opRetype, opCreate, opTouch}[r.r.IntN(6)])
		}
		r.ensureValidFile()
		err = r.reps.startAll()
		r.log.add(kind, "start both replicas", err)
		if err != nil {
			r.infra(kind, err)
		}
	}
}

// ensureValidFile puts the newest valid config back if the files hold an
// invalid edit: a CCM refuses to start on an invalid file (C1), as it
// should, and a fault is about to start one.
func (r *run) ensureValidFile() {
	if r.fileValid {
		return
	}
	err := r.reps.writeConfig(r.cfg.render())
	r.log.add("config-repair", "write the newest valid config back before a CCM starts", err)
	r.fileValid, r.lastConfigWrite = err == nil, time.Now()
}

// pick returns a live Service, nil if none is left.
func (r *run) pick() (string, int, bool) {
	if len(r.live) == 0 {
		return "", 0, false
	}
	i := r.r.IntN(len(r.live))
	return r.live[i], i, true
}

// apply performs one operation of the given kind.
func (r *run) apply(kind string) {
	switch kind {
	case opCreate:
		if len(r.live) >= r.prof.MaxLive {
			r.apply(opDelete)
			return
		}
		s := newService(r.r, r.prof, r.newName(), r.cfg)
		_, err := r.cs.CoreV1().Services(r.ns).Create(r.ctx, s, metav1.CreateOptions{})
		r.done(kind, describeNew(s), err)
		if err == nil {
			r.live = append(r.live, s.Name)
		}
	case opDelete:
		name, i, ok := r.pick()
		if !ok {
			r.apply(opCreate)
			return
		}
		err := r.cs.CoreV1().Services(r.ns).Delete(r.ctx, name, metav1.DeleteOptions{})
		r.done(kind, name, err)
		r.live = slices.Delete(r.live, i, i+1)
	case opConfigValid:
		e := validEdit(r.r, r.cfg)
		if err := checkEdit(e); err != nil {
			r.t.Fatal(err)
		}
		r.configs.add(e.Next) // before the write: the CCM may allocate from it at once
		err := r.reps.writeConfig(e.Text)
		r.edits[e.Kind]++
		r.done(kind, e.Kind+": "+e.Note, err)
		r.cfg, r.fileValid, r.lastConfigWrite = e.Next, true, time.Now()
	case opConfigInvalid:
		e := invalidEdit(r.r, r.cfg)
		if err := checkEdit(e); err != nil {
			r.t.Fatal(err)
		}
		err := r.reps.writeConfig(e.Text)
		r.edits[e.Kind]++
		r.done(kind, e.Note, err)
		r.fileValid, r.lastConfigWrite = false, time.Now()
	default:
		name, _, ok := r.pick()
		if kind == opRetype && ok && r.r.IntN(2) == 0 {
			// Half the retypes hit the newest Services, the ones most
			// likely still waiting for an address: a waiting Service that
			// turns ClusterIP is what leaks in the retrier (hole 4).
			newest := r.live[len(r.live)-max(1, len(r.live)/4):]
			name = newest[r.r.IntN(len(newest))]
		}
		if !ok {
			r.apply(opCreate)
			return
		}
		edit, what := r.drawEdit(kind)
		r.done(kind, name+": "+what, r.update(name, edit))
	}
}

// done counts an operation and logs it.
func (r *run) done(kind, what string, err error) {
	r.log.add(kind, what, err)
	switch {
	case err == nil:
		r.ops[kind]++
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		r.ops[kind]++
		r.rejected[kind]++
	default:
		r.infra(kind+" "+what, err)
	}
}

// drawEdit draws the change an edit operation makes. Everything random is
// drawn here, before the Service is read, so the seed alone fixes it.
func (r *run) drawEdit(kind string) (func(*corev1.Service), string) {
	switch kind {
	case opRetype:
		return func(s *corev1.Service) {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				s.Spec.Type = corev1.ServiceTypeClusterIP
				s.Spec.AllocateLoadBalancerNodePorts = nil
				s.Spec.ExternalTrafficPolicy = ""
				for i := range s.Spec.Ports {
					s.Spec.Ports[i].NodePort = 0
				}
				return
			}
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.AllocateLoadBalancerNodePorts = new(bool)
		}, "LoadBalancer <-> ClusterIP"
	case opEditIPs:
		if r.r.IntN(10) < 3 {
			return func(s *corev1.Service) { delete(s.Annotations, annIPs) }, "no requested IP"
		}
		v4 := r.r.IntN(5) > 0
		ip, ok := drawIP(r.r, r.cfg, v4)
		if !ok {
			return func(s *corev1.Service) { delete(s.Annotations, annIPs) }, "no requested IP"
		}
		return setAnnotation(annIPs, ip.String()), annIPs + "=" + ip.String()
	case opEditShare:
		k := shareValues[r.r.IntN(len(shareValues))]
		return setAnnotation(annShare, k), annShare + "=" + k
	case opEditPool:
		p := ""
		if r.r.IntN(10) >= 3 {
			p = drawPoolName(r.r, r.cfg)
		}
		return setAnnotation(annPool, p), annPool + "=" + p
	case opEditPorts:
		set := portSets[r.r.IntN(len(portSets))]
		return func(s *corev1.Service) {
			ps := servicePorts(set)
			// Keep a node port the apiserver gave, as kubectl apply would.
			for i := range ps {
				for _, old := range s.Spec.Ports {
					if old.Port == ps[i].Port && old.Protocol == ps[i].Protocol {
						ps[i].NodePort = old.NodePort
					}
				}
			}
			s.Spec.Ports = ps
		}, fmt.Sprintf("ports %v", set)
	case opEditFamily:
		fc := r.prof.drawFamilies(r.r)
		return func(s *corev1.Service) {
			// The primary family of a Service cannot change; keep it and
			// change the policy, as an operator would.
			fams := s.Spec.IPFamilies[:1]
			if fc.Policy != corev1.IPFamilyPolicySingleStack {
				other := corev1.IPv6Protocol
				if fams[0] == corev1.IPv6Protocol {
					other = corev1.IPv4Protocol
				}
				fams = append(slices.Clone(fams), other)
			}
			s.Spec.IPFamilyPolicy = &fc.Policy
			s.Spec.IPFamilies = fams
			if len(s.Spec.ClusterIPs) > len(fams) {
				s.Spec.ClusterIPs = s.Spec.ClusterIPs[:len(fams)]
			}
		}, "ipFamilyPolicy " + string(fc.Policy)
	case opTouch:
		v := strconv.Itoa(r.log.Len())
		return setAnnotation(annTouch, v), annTouch + "=" + v
	}
	panic("unknown edit " + kind)
}

func setAnnotation(k, v string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if v == "" {
			delete(s.Annotations, k)
			return
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

// update reads, edits and writes a Service, again on a conflict with the
// CCM's own writes.
func (r *run) update(name string, edit func(*corev1.Service)) error {
	var err error
	for range apiRetries {
		var s *corev1.Service
		s, err = r.cs.CoreV1().Services(r.ns).Get(r.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edit(s)
		_, err = r.cs.CoreV1().Services(r.ns).Update(r.ctx, s, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

func describeNew(s *corev1.Service) string {
	var ports []int32
	for _, p := range s.Spec.Ports {
		ports = append(ports, p.Port)
	}
	d := fmt.Sprintf("%s %s %s %v ports %v", s.Name, s.Spec.Type, *s.Spec.IPFamilyPolicy, s.Spec.IPFamilies, ports)
	for _, k := range []string{annPool, annShare, annIPs} {
		if v, ok := s.Annotations[k]; ok {
			d += " " + k + "=" + v
		}
	}
	return d
}

// list returns every Service of the run, straight from the apiserver.
func (r *run) list(ctx context.Context) ([]corev1.Service, error) {
	l, err := r.cs.CoreV1().Services(r.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// quiesce ends the faults, waits for the cluster to settle and runs the
// checks that hold only then.
func (r *run) quiesce(settleTimeout time.Duration) {
	start := time.Now()
	if err := r.reps.settle(r.ctx); err != nil {
		r.infra("settling replicas", err)
	}
	r.ensureValidFile()
	leader, err := r.reps.leader(r.ctx)
	if err != nil {
		r.infra("quiescence", err)
		return
	}
	if wait := time.Until(r.lastConfigWrite.Add(configPoll)); wait > 0 {
		time.Sleep(wait)
	}

	// Settle: status unchanged for quietFor, no deleted Service left and,
	// if the CCM exports C3, its allocator agrees with status.
	deadline := start.Add(settleTimeout)
	var svcs []corev1.Service
	for {
		if err := r.reps.supervise(); err != nil {
			r.infra("supervise", err)
		}
		if l, err := r.reps.leader(r.ctx); err == nil {
			leader = l
		}
		svcs, err = r.list(r.ctx)
		if err != nil {
			r.infra("listing Services", err)
			return
		}
		held, n := heldByStatus(svcs)
		r.quiescent.Fingerprint, r.quiescent.Held, r.quiescent.Services = stateFingerprint(held), n, len(svcs)
		r.quiescent.Allocator = nil
		if m, err := leader.Metrics(r.ctx); err == nil {
			if st, ok, err := parseAllocatorState(m); err != nil {
				r.infra("reading C3 metrics", err)
			} else if ok {
				r.quiescent.Allocator = &st
			}
		}
		last, _ := r.obs.Quiet()
		agree := r.quiescent.Allocator == nil || (r.quiescent.Allocator.Fingerprint == r.quiescent.Fingerprint && r.quiescent.Allocator.Held == n)
		if time.Since(last) >= quietFor && !anyDeleting(svcs) && agree {
			r.quiescent.Settled = true
			break
		}
		if time.Now().After(deadline) {
			r.note("not quiescent after %v: last status change %v ago, deleting %v, allocator agrees %v",
				settleTimeout, time.Since(last).Round(time.Millisecond), anyDeleting(svcs), agree)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.quiescent.SettledAfter = time.Since(start)

	r.obs.checkFinal(svcs)
	switch a := r.quiescent.Allocator; {
	case a == nil:
		r.note("the CCM exports no baremetal_allocator_state_info (built before contract C3): allocator comparison skipped")
	case a.Fingerprint != r.quiescent.Fingerprint || a.Held != r.quiescent.Held:
		r.obs.Report(vAllocator, violation{Kind: vAllocator, Hole: "3", Service: "-",
			Detail: fmt.Sprintf("leader %s holds %d addresses, fingerprint %s; status of %d Services has %d, fingerprint %s",
				leader.Name(), a.Held, a.Fingerprint, len(svcs), r.quiescent.Held, r.quiescent.Fingerprint)})
	}

	// Issue 9: every waiting Service that could be served is served within
	// 10 s. Judged against the config in effect, known only if the leader
	// applied the file (not stale).
	if m, err := leader.Metrics(r.ctx); err == nil {
		if v, err := ccm.MetricValue(m, "baremetal_cloud_config_stale", nil); err == nil && v == 1 {
			r.quiescent.Stale = true
		}
	}
	if r.quiescent.Stale {
		r.note("the leader reports its cloud-config stale (an edit refused in memory): the config in effect is unknown, servable check skipped")
	} else {
		r.checkConfigInEffect(leader)
		r.checkServed()
	}
	for i := range svcs {
		if viewOf(&svcs[i]).WantsLB && len(statusIPs(&svcs[i])) == 0 {
			r.quiescent.Pending++
		}
	}
}

// checkConfigInEffect compares the leader's pools, as its pool-size
// metrics show them, with the file: a leader that is not stale must have
// the file's pools in effect, whenever it took over.
func (r *run) checkConfigInEffect(leader *ccm.CCM) {
	m, err := leader.Metrics(r.ctx)
	if err != nil {
		r.infra("reading the leader's metrics", err)
		return
	}
	got, want := poolTotals(m), expectedTotals(r.cfg)
	if maps.Equal(got, want) {
		return
	}
	r.obs.Report(vConfig, violation{Kind: vConfig, Service: "-",
		Detail: fmt.Sprintf("leader %s has pools %s in effect (pool_addresses_total), the file has %s and the leader does not report it stale",
			leader.Name(), counts(got), counts(want))})
}

// checkServed waits up to servedWithin for every waiting Service that a
// free address could serve to get it, and reports those that do not.
func (r *run) checkServed() {
	deadline := time.Now().Add(servedWithin)
	var left []servable
	for {
		svcs, err := r.list(r.ctx)
		if err != nil {
			r.infra("listing Services", err)
			return
		}
		left = findServable(svcs, r.cfg)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, s := range left {
		kind, hole := vPending, ""
		if s.SecondFamily {
			kind, hole = vSecondFamily, "4"
		}
		r.obs.Report(kind+"/"+s.Name, violation{Kind: kind, Hole: hole, Service: s.Name,
			Detail: fmt.Sprintf("%s %v after %v of quiescence, though %s is free for it", s.Why, s.Have, servedWithin, s.Free)})
	}
}

func anyDeleting(svcs []corev1.Service) bool {
	for i := range svcs {
		if svcs[i].DeletionTimestamp != nil {
			return true
		}
	}
	return false
}

// servable is a waiting Service that a free address could serve.
type servable struct {
	Name         string
	Why          string
	Have         []netip.Addr
	Free         netip.Addr
	SecondFamily bool
}

// findServable lists the Services that want a load balancer and lack an
// address of a family they ask for, while cfg has a free address they may
// take: one no Service shows in status, in the pool the Service names (or
// an auto-assign pool), or the address it requests. Sharing is ignored,
// which only makes the list shorter.
func findServable(svcs []corev1.Service, cfg *cloudConfig) []servable {
	used := map[netip.Addr]bool{}
	for i := range svcs {
		if holdsAddress(&svcs[i]) {
			for _, ip := range statusIPs(&svcs[i]) {
				used[ip] = true
			}
		}
	}
	freeFor := func(v specView, v4 bool) (netip.Addr, bool) {
		if v.BadIPs || !v.hasFamily(v4) {
			return netip.Addr{}, false
		}
		for _, ip := range v.IPs {
			if !v.hasFamily(ip.Is4()) {
				return netip.Addr{}, false // the CCM refuses the request
			}
		}
		if want, ok := v.requested(v4); ok {
			p := cfg.poolOf(want)
			return want, !used[want] && p != nil && (v.Pool == "" || p.Name == v.Pool)
		}
		for i := range cfg.Pools {
			p := &cfg.Pools[i]
			if (v.Pool != "" && p.Name != v.Pool) || (v.Pool == "" && !p.AutoAssign) {
				continue
			}
			for _, a := range cfg.addresses(p, v4) {
				if !used[a] {
					return a, true
				}
			}
		}
		return netip.Addr{}, false
	}
	var out []servable
	for i := range svcs {
		s := &svcs[i]
		v := viewOf(s)
		if !v.WantsLB || v.Deleting || len(v.Families) == 0 {
			continue
		}
		have := statusIPs(s)
		primary := v.Families[0] == corev1.IPv4Protocol
		switch {
		case len(have) == 0:
			a, ok := freeFor(v, primary)
			if !ok {
				continue
			}
			if v.Policy == corev1.IPFamilyPolicyRequireDualStack {
				if _, ok := freeFor(v, !primary); !ok {
					continue
				}
			}
			out = append(out, servable{Name: s.Name, Why: "still waiting", Free: a})
		case v.Policy == corev1.IPFamilyPolicyPreferDualStack && len(v.Families) == 2 && len(have) == 1:
			if have[0].Is4() != primary {
				continue
			}
			// A request for another address of the family it holds that
			// cannot be given (outside every pool, in another pool, in
			// use) fails the whole Ensure: the CCM keeps what the Service
			// has and adds nothing, so the second family is not owed.
			if want, ok := v.requested(primary); ok && want != have[0] {
				if _, ok := freeFor(v, primary); !ok {
					continue
				}
			}
			if a, ok := freeFor(v, !primary); ok {
				out = append(out, servable{Name: s.Name, Why: "PreferDualStack with one family only", Have: have, Free: a, SecondFamily: true})
			}
		}
	}
	return out
}
