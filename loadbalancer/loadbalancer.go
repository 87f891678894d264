package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	servicehelper "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/loadbalancer/ipam"
)

var _ cloudprovider.LoadBalancer = (*LoadBalancer)(nil)

// LoadBalancer implements cloudprovider.LoadBalancer by handing out
// addresses from the configured pools. The announcer DaemonSet makes them
// reachable; nothing here touches the network.
//
// The address rule (contract C1, see the ipam package): a Service's address
// changes only when its own spec asks for it. Around the allocator, this
// type adds what needs the API: the status index that keeps addresses
// still shown in a status from being handed out, the flagging and
// publishing of retained addresses, the duplicate audit, and the retrier.
// The provider is initialised only in the leader, so all of it (and every
// write it makes) runs only there.
type LoadBalancer struct {
	alloc     *ipam.Allocator
	retrier   *retrier
	stall     *stallGuard // nil without leader election
	fence     *leaseFence // nil without leader election on a Lease
	shown     *statusIndex
	retention *retention
	// auditKicks asks the duplicate audit to run soon; kicks coalesce.
	auditKicks chan struct{}
	// freedGen counts the moments an address became free to hand out, so
	// that a Service that fails for want of one can tell whether one was
	// freed while it was failing (the kick then found it not yet pending).
	freedGen atomic.Uint64

	client   kubernetes.Interface
	recorder record.EventRecorder

	// ready is closed once the allocator holds every address already in
	// Services' status, so that no answer is given from a partial picture.
	ready     chan struct{}
	readyOnce sync.Once
	services  corelisters.ServiceLister
	hasSynced cache.InformerSynced
}

// New returns a load balancer over cfg's pools. It answers nothing until
// SetInformers and Start have run and the state is restored.
func New(cfg *config.Config) *LoadBalancer {
	lb := &LoadBalancer{
		alloc:      ipam.New(cfg.Pools),
		retrier:    newRetrier(),
		shown:      newStatusIndex(),
		retention:  newRetention(),
		auditKicks: make(chan struct{}, 1),
		ready:      make(chan struct{}),
	}
	lb.alloc.SetShownBy(lb.shown.shownBy)
	lb.retrier.wants = lb.wantsAddress
	registerMetrics()
	collected.Store(lb)
	lb.recordStats()
	return lb
}

// SetInformers takes the Service informer shared with the service
// controller, so that restoring state and following status costs no extra
// watch.
func (lb *LoadBalancer) SetInformers(f informers.SharedInformerFactory) {
	inf := f.Core().V1().Services()
	lb.services = inf.Lister()
	// Asking for the informer registers it before the factory starts.
	informer := inf.Informer()
	reg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { lb.serviceChanged(obj, false) },
		UpdateFunc: func(_, obj any) { lb.serviceChanged(obj, false) },
		DeleteFunc: func(obj any) { lb.serviceChanged(obj, true) },
	})
	if err != nil {
		// Only a stopped informer refuses a handler; it never syncs then.
		klog.Background().Error(err, "Following Service status")
		lb.hasSynced = func() bool { return false }
		return
	}
	// Synced once the status index has seen every Service, too.
	lb.hasSynced = func() bool { return informer.HasSynced() && reg.HasSynced() }
}

// serviceChanged follows one Service event: the status index, the retry
// list, and the duplicate audit's and the retrier's triggers.
func (lb *LoadBalancer) serviceChanged(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	svc, ok := obj.(*v1.Service)
	if !ok {
		return
	}
	key := serviceKey(svc)
	var addrs []netip.Addr
	if !deleted {
		addrs = statusAddrs(svc)
	}
	gone, shared := lb.shown.set(key, addrs)
	if deleted || !wantsAddress(svc) {
		lb.retrier.remove(key)
	}
	if shared {
		lb.kickAudit()
	}
	// An address that left the last status showing it, and that no
	// Service holds, can now be given to a pending Service.
	if len(gone) > 0 {
		var fams familySet
		for _, a := range gone {
			if !lb.alloc.InUse(a) {
				fams |= familyOf(a)
			}
		}
		lb.freed(fams)
	}
}

// wantsAddress reports whether svc wants an address from us now.
func wantsAddress(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil && svc.DeletionTimestamp == nil
}

// wantsAddress reports whether the Service key, as the informer cache has
// it, wants an address from us.
func (lb *LoadBalancer) wantsAddress(key string) bool {
	if lb.services == nil {
		return true
	}
	ns, name, _ := strings.Cut(key, "/")
	svc, err := lb.services.Services(ns).Get(name)
	return err == nil && wantsAddress(svc)
}

// Start restores state from the Service cache once it has synced, then
// starts answering. It must follow SetInformers. client nudges pending
// Services, repairs duplicates, records events and writes the ConfigMap of
// retained addresses.
func (lb *LoadBalancer) Start(ctx context.Context, client kubernetes.Interface) {
	lb.client = client
	lb.retrier.client = client
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	lb.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: EventSource})
	go func() {
		<-ctx.Done()
		broadcaster.Shutdown()
	}()
	go lb.retrier.run(ctx)
	if lb.stall != nil {
		// A standby waits for its lease for as long as it takes; the
		// guard counts only from the moment this replica leads.
		lb.stall.touch()
		go lb.stall.run(ctx)
	}
	go func() {
		logger := klog.FromContext(ctx)
		// cache.WaitForCacheSync polls every 100 ms; a restart should not
		// wait that long for nothing, so poll faster.
		synced := func(context.Context) (bool, error) { return lb.hasSynced(), nil }
		if wait.PollUntilContextCancel(ctx, 5*time.Millisecond, true, synced) != nil {
			return
		}
		// One reading of the leader lease before the first answer: the
		// fence refuses every write until it has one.
		lb.fence.start(ctx, client)
		// The previous leader's list gives retained addresses that the
		// restore is about to find their old pools' settings.
		if err := lb.readRetainedConfigMap(ctx); err != nil {
			logger.Error(err, "Reading the retained-addresses ConfigMap; retained addresses without a pool in memory are not published until it is rewritten")
		}
		if err := lb.restore(ctx); err != nil {
			logger.Error(err, "Listing Services to restore allocations")
		}
		lb.noteRetained(ctx)
		lb.retention.kick()
		go lb.runRetainedPublisher(ctx)
		go lb.runAudit(ctx)
		lb.kickAudit()
	}()
}

// EventSource is the component named in the events this package records.
const EventSource = "baremetal-loadbalancer"

// event records an event on the Service key, if the cache still has it.
func (lb *LoadBalancer) event(key, eventType, reason, format string, args ...any) {
	if lb.recorder == nil || lb.services == nil {
		return
	}
	ns, name, _ := strings.Cut(key, "/")
	svc, err := lb.services.Services(ns).Get(name)
	if err != nil {
		return
	}
	lb.recorder.Eventf(svc, eventType, reason, format, args...)
}

// restore rebuilds allocations from every Service's status, oldest first,
// so that on a conflict the Service that had the address first keeps it.
func (lb *LoadBalancer) restore(ctx context.Context) error {
	defer lb.readyOnce.Do(func() { close(lb.ready) })
	logger := klog.FromContext(ctx)
	all, err := lb.services.List(labels.Everything())
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b *v1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return compareKeys(serviceKey(a), serviceKey(b))
	})
	restored := 0
	for _, svc := range all {
		addrs := statusAddrs(svc)
		if len(addrs) == 0 || !holdsAddress(svc) {
			continue
		}
		ann, _ := ParseAnnotations(svc.Annotations) // a bad annotation must not cost the address
		if err := lb.alloc.Restore(allocatorService(svc, ann), ann.Pool, addrs); err != nil {
			logger.Info("Not restoring an address", "service", klog.KObj(svc), "err", err)
			continue
		}
		restored++
	}
	lb.recordStats()
	logger.Info("Restored load-balancer allocations from Service status", "services", restored, "scanned", len(all))
	return nil
}

// holdsAddress reports whether svc's status addresses are ours to keep: it
// wants a load balancer from us, or it still has the cleanup finalizer and
// so its address is not released yet.
func holdsAddress(svc *v1.Service) bool {
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil {
		return true
	}
	return servicehelper.HasLBFinalizer(svc)
}

func compareKeys(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (lb *LoadBalancer) waitReady(ctx context.Context) error {
	select {
	case <-lb.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for load-balancer state to be restored: %w", ctx.Err())
	}
}

// GetLoadBalancer returns whether the specified load balancer exists, and
// if so, what its status is.
func (lb *LoadBalancer) GetLoadBalancer(ctx context.Context, clusterName string, service *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	if err := lb.waitReady(ctx); err != nil {
		return nil, false, err
	}
	held := lb.alloc.Lookup(serviceKey(service))
	if len(held) == 0 {
		return nil, false, nil
	}
	return ingressStatus(held), true, nil
}

// GetLoadBalancerName returns the name of the load balancer.
func (lb *LoadBalancer) GetLoadBalancerName(ctx context.Context, clusterName string, service *v1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(service)
}

// EnsureLoadBalancer creates a new load balancer 'name', or updates the
// existing one. Returns the status of the balancer.
func (lb *LoadBalancer) EnsureLoadBalancer(ctx context.Context, clusterName string, service *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := lb.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := lb.writable(ctx); err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithValues("service", klog.KObj(service))
	if service.Spec.LoadBalancerClass != nil {
		// The service controller already skips these; say so if one slips by.
		return nil, fmt.Errorf("spec.loadBalancerClass is %q: this service is left to that load balancer", *service.Spec.LoadBalancerClass)
	}
	key := serviceKey(service)
	req, err := buildRequest(service)
	if err != nil {
		allocationErrors.WithLabelValues(string(ipam.ReasonInvalidRequest)).Inc()
		return nil, err
	}
	// A Service we hold nothing for may still show addresses in its status
	// that the informer had not delivered at restore time: claim them first.
	if len(lb.alloc.Lookup(key)) == 0 {
		if addrs := statusAddrs(service); len(addrs) > 0 {
			if err := lb.alloc.Restore(req.Service, req.Pool, addrs); err != nil {
				logger.V(2).Info("Status addresses not restored", "err", err)
			}
		}
	}
	before := lb.alloc.Lookup(key)
	gen := lb.freedGen.Load()
	got, shortfall, err := lb.alloc.EnsureWithShortfall(req)
	lb.recordStats()
	if err != nil {
		var ae *ipam.Error
		if errors.As(err, &ae) {
			allocationErrors.WithLabelValues(string(ae.Reason)).Inc()
			if ae.Retryable() {
				lb.pending(key, anyFamily, gen)
			}
		}
		lb.noteRetained(ctx)
		return nil, err
	}
	// A PreferDualStack Service short of its second family for want of a
	// free address stays pending, to get it when one frees up.
	if shortfall != nil && shortfall.Retryable() {
		lb.pending(key, missingFamilies(req.Families, got), gen)
		logger.V(2).Info("Second IP family pending", "reason", shortfall)
	} else {
		lb.retrier.remove(key)
	}
	lb.releasedAddresses(released(before, got))
	lb.noteRetained(ctx)
	// The service controller writes what this returns. Check the lease
	// again: the allocation may have waited on a lock while it went stale,
	// and what is held in memory is written by a later sync or restored
	// from status by the next leader.
	if err := lb.writable(ctx); err != nil {
		return nil, err
	}
	if !slices.Equal(before, got) {
		logger.Info("Allocated load-balancer addresses", "addresses", got)
	}
	return ingressStatus(got), nil
}

// released returns the addresses held before and no longer held.
func released(before, after []ipam.Assignment) []netip.Addr {
	var out []netip.Addr
	for _, b := range before {
		if !slices.ContainsFunc(after, func(a ipam.Assignment) bool { return a.IP == b.IP }) {
			out = append(out, b.IP)
		}
	}
	return out
}

// missingFamilies is the families of wanted that got has no address of.
func missingFamilies(wanted []ipam.Family, got []ipam.Assignment) familySet {
	var out familySet
	for _, f := range wanted {
		out |= 1 << f
	}
	for _, a := range got {
		out &^= familyOf(a.IP)
	}
	return out
}

// releasedAddresses wakes the pending Services if a freed address can be
// handed out now. One that a status still shows cannot (see statusIndex);
// the status index wakes them when it leaves the last status.
func (lb *LoadBalancer) releasedAddresses(released []netip.Addr) {
	var fams familySet
	for _, a := range released {
		if !lb.shown.shown(a) && !lb.alloc.InUse(a) {
			fams |= familyOf(a)
		}
	}
	lb.freed(fams)
}

// freed records that addresses of fams can be handed out now, and wakes
// the pending Services that one may serve.
func (lb *LoadBalancer) freed(fams familySet) {
	if fams == 0 {
		return
	}
	lb.freedGen.Add(1)
	if !lb.retrier.empty() {
		lb.retrier.kick(fams)
	}
}

// pending puts key on the retry list. If an address was freed since gen,
// while the Service was failing, that kick may have missed it: kick again.
func (lb *LoadBalancer) pending(key string, fams familySet, gen uint64) {
	lb.retrier.add(key, fams)
	if lb.freedGen.Load() != gen {
		lb.retrier.kick(fams)
	}
}

// UpdateLoadBalancer updates hosts under the specified load balancer.
//
// Which nodes announce an address is the announcers' business, so this is
// ImplementedElsewhere: the service controller then treats it as done and,
// unlike for a nil error, records no "UpdatedLoadBalancer" event on every
// Service each time a node joins or leaves.
func (lb *LoadBalancer) UpdateLoadBalancer(ctx context.Context, clusterName string, service *v1.Service, nodes []*v1.Node) error {
	return cloudprovider.ImplementedElsewhere
}

// EnsureLoadBalancerDeleted deletes the specified load balancer if it
// exists, returning nil if the load balancer specified either didn't exist or
// was successfully deleted.
func (lb *LoadBalancer) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, service *v1.Service) error {
	if err := lb.waitReady(ctx); err != nil {
		return err
	}
	if err := lb.writable(ctx); err != nil {
		return err
	}
	key := serviceKey(service)
	lb.retrier.remove(key)
	freed := lb.alloc.Release(key)
	lb.recordStats()
	if len(freed) > 0 {
		klog.FromContext(ctx).Info("Released load-balancer addresses", "service", klog.KObj(service), "addresses", freed)
		lb.releasedAddresses(freed)
		lb.noteRetained(ctx)
	}
	return nil
}

// Reconfigure switches to cfg's pools without restarting. New pools apply
// to addresses handed out from now on; every address in use stays with its
// Service, and one the new pools would not give it is retained and flagged
// (see ipam.Allocator.Reconfigure). Services still waiting for an address,
// or PreferDualStack ones short of a family, are nudged, because the new
// pools may now have one for them. It fails only if ctx ends before the
// state is restored.
func (lb *LoadBalancer) Reconfigure(ctx context.Context, cfg *config.Config) error {
	if err := lb.waitReady(ctx); err != nil {
		return err
	}
	lb.alloc.Reconfigure(cfg.Pools)
	// Series of pools that are gone must not linger.
	poolInUse.Reset()
	poolTotal.Reset()
	lb.recordStats()
	lb.noteRetained(ctx)
	if lb.services != nil {
		all, err := lb.services.List(labels.Everything())
		if err != nil {
			return err
		}
		for _, svc := range all {
			if wantsAddress(svc) && len(lb.alloc.Lookup(serviceKey(svc))) < wantedFamilies(svc) {
				lb.retrier.add(serviceKey(svc), anyFamily)
			}
		}
		lb.retrier.kick(anyFamily)
	}
	return nil
}

// wantedFamilies is how many addresses svc asks for: one, or one per IP
// family for a dual-stack policy.
func wantedFamilies(svc *v1.Service) int {
	if p := svc.Spec.IPFamilyPolicy; p != nil && *p != v1.IPFamilyPolicySingleStack && len(svc.Spec.IPFamilies) > 1 {
		return len(svc.Spec.IPFamilies)
	}
	return 1
}

func (lb *LoadBalancer) recordStats() {
	for _, st := range lb.alloc.Stats() {
		poolInUse.WithLabelValues(st.Pool, st.Family.String()).Set(float64(st.InUse))
		poolTotal.WithLabelValues(st.Pool, st.Family.String()).Set(float64(st.Usable))
	}
}
