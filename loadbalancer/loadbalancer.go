package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
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
type LoadBalancer struct {
	alloc   *ipam.Allocator
	retrier *retrier

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
		alloc:   ipam.New(cfg.Pools),
		retrier: newRetrier(),
		ready:   make(chan struct{}),
	}
	registerMetrics()
	collected.Store(lb)
	lb.recordStats()
	return lb
}

// SetInformers takes the Service informer shared with the service
// controller, so that restoring state costs no extra watch.
func (lb *LoadBalancer) SetInformers(f informers.SharedInformerFactory) {
	inf := f.Core().V1().Services()
	lb.services = inf.Lister()
	// Asking for the informer registers it before the factory starts.
	lb.hasSynced = inf.Informer().HasSynced
}

// Start restores state from the Service cache once it has synced, then
// starts answering. It must follow SetInformers. client is used only to
// nudge pending Services.
func (lb *LoadBalancer) Start(ctx context.Context, client kubernetes.Interface) {
	lb.retrier.client = client
	go lb.retrier.run(ctx)
	go func() {
		// cache.WaitForCacheSync polls every 100 ms; a restart should not
		// wait that long for nothing, so poll faster.
		synced := func(context.Context) (bool, error) { return lb.hasSynced(), nil }
		if wait.PollUntilContextCancel(ctx, 5*time.Millisecond, true, synced) != nil {
			return
		}
		if err := lb.restore(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Listing Services to restore allocations")
		}
	}()
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
	got, err := lb.alloc.Ensure(req)
	lb.recordStats()
	if err != nil {
		var ae *ipam.Error
		if errors.As(err, &ae) {
			allocationErrors.WithLabelValues(string(ae.Reason)).Inc()
			if ae.Retryable() {
				lb.retrier.add(key)
			}
		}
		return nil, err
	}
	lb.retrier.remove(key)
	if freed := released(before, got); freed {
		lb.retrier.kick()
	}
	if !slices.Equal(before, got) {
		logger.Info("Allocated load-balancer addresses", "addresses", got)
	}
	return ingressStatus(got), nil
}

// released reports whether an address held before is no longer held.
func released(before, after []ipam.Assignment) bool {
	for _, b := range before {
		if !slices.Contains(after, b) {
			return true
		}
	}
	return false
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
	key := serviceKey(service)
	lb.retrier.remove(key)
	freed := lb.alloc.Release(key)
	lb.recordStats()
	if len(freed) > 0 {
		klog.FromContext(ctx).Info("Released load-balancer addresses", "service", klog.KObj(service), "addresses", freed)
		lb.retrier.kick()
	}
	return nil
}

// Reconfigure switches to cfg's pools without restarting. Every address in
// use stays with its Service; a config that would take one away is refused
// and the old pools stay in effect (see ipam.Allocator.Reconfigure).
// Services still waiting for an address are nudged, because the new pools
// may now have one for them.
func (lb *LoadBalancer) Reconfigure(ctx context.Context, cfg *config.Config) error {
	if err := lb.waitReady(ctx); err != nil {
		return err
	}
	lb.alloc.Reconfigure(cfg.Pools)
	// Series of pools that are gone must not linger.
	poolInUse.Reset()
	poolTotal.Reset()
	lb.recordStats()
	if lb.services != nil {
		all, err := lb.services.List(labels.Everything())
		if err != nil {
			return err
		}
		for _, svc := range all {
			if svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil && len(lb.alloc.Lookup(serviceKey(svc))) == 0 {
				lb.retrier.add(serviceKey(svc))
			}
		}
		lb.retrier.kick()
	}
	return nil
}

func (lb *LoadBalancer) recordStats() {
	for _, st := range lb.alloc.Stats() {
		poolInUse.WithLabelValues(st.Pool, st.Family.String()).Set(float64(st.InUse))
		poolTotal.WithLabelValues(st.Pool, st.Family.String()).Set(float64(st.Usable))
	}
}
