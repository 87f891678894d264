package loadbalancer

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// EventDuplicateAddress is the reason of the Warning event on a Service
// that lost an address another, older Service's status also showed.
const EventDuplicateAddress = "DuplicateAddress"

// How often the duplicate audit runs without a cause.
const auditInterval = 30 * time.Second

// auditDebounce is how long the audit lets Service events settle before it
// looks, in nanoseconds; tests shorten it.
var auditDebounce atomic.Int64

func init() { auditDebounce.Store(int64(time.Second)) }

// The duplicate audit.
//
// The allocator never gives one address to two Services that do not share
// it, and it does not hand out an address another status still shows. Yet a
// status can still show one address twice after a fault that bypasses this
// process: a deposed leader, paused past its lease, patching a status late;
// a restore that lost a race. The upstream service controller never syncs
// a Service because its status changed, so such a duplicate would stay.
//
// The audit finds them: two of our Services whose status shows one address
// and that do not share it (different or empty allow-shared-ip keys). The
// older one (creationTimestamp, then namespace/name) keeps the address; the
// younger loses it: the allocator records the address as the older one's,
// the address is removed from the younger one's status, it gets a Warning
// event naming the other Service, and it is nudged so that the service
// controller syncs it and it gets a new address.
//
// It runs only in the leader, when the status index sees an address shown
// twice (after a short debounce) and every auditInterval.
func (lb *LoadBalancer) runAudit(ctx context.Context) {
	ticker := time.NewTicker(auditInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-lb.auditKicks:
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(auditDebounce.Load())):
			}
			// Kicks during the debounce are covered by this run.
			select {
			case <-lb.auditKicks:
			default:
			}
		}
		lb.auditDuplicates(ctx)
	}
}

func (lb *LoadBalancer) kickAudit() {
	select {
	case lb.auditKicks <- struct{}{}:
	default:
	}
}

// auditDuplicates repairs every address that two of our Services' status
// show without sharing it.
func (lb *LoadBalancer) auditDuplicates(ctx context.Context) {
	select {
	case <-lb.ready:
	default:
		return // the restore decides first who keeps what
	}
	if lb.writable(ctx) != nil {
		return
	}
	shared := lb.shown.sharedAddrs()
	addrs := make([]netip.Addr, 0, len(shared))
	for a := range shared {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, addr := range addrs {
		var showing []*v1.Service
		for _, key := range shared[addr] {
			ns, name, _ := strings.Cut(key, "/")
			svc, err := lb.services.Services(ns).Get(name)
			if err != nil || !holdsAddress(svc) || !slices.Contains(statusAddrs(svc), addr) {
				continue
			}
			showing = append(showing, svc)
		}
		if len(showing) < 2 {
			continue
		}
		slices.SortFunc(showing, olderFirst)
		keeper := showing[0]
		var losers []*v1.Service
		for _, s := range showing[1:] {
			if !shareKey(keeper, s) {
				losers = append(losers, s)
			}
		}
		if len(losers) > 0 {
			lb.repairDuplicate(ctx, addr, keeper, losers)
		}
	}
}

// olderFirst orders Services by creationTimestamp, then namespace/name.
func olderFirst(a, b *v1.Service) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(serviceKey(a), serviceKey(b))
}

// shareKey reports whether a and b may share an address: the same
// non-empty allow-shared-ip key.
func shareKey(a, b *v1.Service) bool {
	x, _ := ParseAnnotations(a.Annotations)
	y, _ := ParseAnnotations(b.Annotations)
	return x.SharingKey != "" && x.SharingKey == y.SharingKey
}

func (lb *LoadBalancer) repairDuplicate(ctx context.Context, addr netip.Addr, keeper *v1.Service, losers []*v1.Service) {
	logger := klog.FromContext(ctx)
	keeperAnn, _ := ParseAnnotations(keeper.Annotations)
	loserKeys := make([]string, len(losers))
	for i, s := range losers {
		loserKeys[i] = serviceKey(s)
	}
	if err := lb.alloc.Settle(addr, allocatorService(keeper, keeperAnn), keeperAnn.Pool, loserKeys); err != nil {
		// A third Service holds it in memory; once its status shows it,
		// the next audit settles it against the keeper.
		logger.Info("Duplicate address: the older Service cannot take it in the allocator yet", "address", addr, "service", klog.KObj(keeper), "err", err)
	}
	lb.recordStats()
	lb.noteRetained(ctx)
	for _, s := range losers {
		var keep []v1.LoadBalancerIngress
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(ing.IP); err != nil || ip.Unmap() != addr {
				keep = append(keep, ing)
			}
		}
		if keep == nil {
			keep = []v1.LoadBalancerIngress{}
		}
		// The resourceVersion makes this fail rather than overwrite a
		// status written since the cache was read; the next audit retries.
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": s.ResourceVersion},
			"status":   map[string]any{"loadBalancer": map[string]any{"ingress": keep}},
		})
		_, err := lb.client.CoreV1().Services(s.Namespace).Patch(ctx, s.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		switch {
		case apierrors.IsNotFound(err):
			continue
		case apierrors.IsConflict(err):
			lb.kickAudit()
			continue
		case err != nil:
			logger.Error(err, "Removing a duplicate address from a Service's status", "address", addr, "service", klog.KObj(s))
			continue
		}
		duplicatesRepaired.Inc()
		logger.Info("Duplicate address: removed it from the younger Service's status; it will get a new address",
			"address", addr, "service", klog.KObj(s), "keptBy", klog.KObj(keeper))
		lb.event(serviceKey(s), v1.EventTypeWarning, EventDuplicateAddress,
			"Address %s was also in the status of Service %s, created earlier, which keeps it. It was removed from this Service's status; a new address will be allocated.",
			addr, serviceKey(keeper))
		lb.retrier.nudge(ctx, serviceKey(s), "Nudged a Service that lost a duplicate address")
	}
}
