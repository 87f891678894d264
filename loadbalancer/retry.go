package loadbalancer

import (
	"context"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/loadbalancer/ipam"
)

// retrier wakes Services that are pending for want of an address as soon as
// one is freed.
//
// The service controller retries a failed sync with a back-off that grows
// from 5 s to 5 min, and it has no hook to requeue a Service. It does sync a
// Service at once when its annotations change, so we write RetryAnnotation.
// Only Services whose failure another release can cure are nudged, and only
// when something was released, so the writes are few.
//
// A PreferDualStack Service that got its primary family but not the second
// one, for want of a free address, is pending too: it gets the second
// family on the sync after an address frees up.
//
// A Service leaves the list when it is served, and also when it stops
// wanting an address from us (deleted, turned ClusterIP, given a
// loadBalancerClass): the informer tells the list, and the nudge checks
// again, so no one is patched for nothing.
type retrier struct {
	client kubernetes.Interface
	// wants reports whether the Service still wants an address from us, as
	// the informer cache has it; nil means always.
	wants func(key string) bool
	mu    sync.Mutex
	// pending maps each pending Service to the families a freed address of
	// which may serve it.
	pending map[string]familySet
	// freed is the families of the addresses freed since the last run.
	freed familySet
	kicks chan struct{}
}

// familySet is a set of IP families, one bit per ipam.Family.
type familySet uint8

const anyFamily familySet = 1<<ipam.IPv4 | 1<<ipam.IPv6

func familyOf(a netip.Addr) familySet { return 1 << ipam.FamilyOf(a) }

func newRetrier() *retrier {
	return &retrier{pending: map[string]familySet{}, kicks: make(chan struct{}, 1)}
}

// add makes key pending until an address of one of fams is freed.
func (r *retrier) add(key string, fams familySet) {
	r.mu.Lock()
	r.pending[key] = fams
	r.mu.Unlock()
}

func (r *retrier) remove(key string) {
	r.mu.Lock()
	delete(r.pending, key)
	r.mu.Unlock()
}

func (r *retrier) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pending[key]
	return ok
}

func (r *retrier) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) == 0
}

// kick asks run to nudge the pending Services that an address of one of
// fams may serve; kicks coalesce.
func (r *retrier) kick(fams familySet) {
	r.mu.Lock()
	r.freed |= fams
	r.mu.Unlock()
	select {
	case r.kicks <- struct{}{}:
	default:
	}
}

func (r *retrier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kicks:
		}
		if r.client == nil {
			continue
		}
		r.mu.Lock()
		freed := r.freed
		r.freed = 0
		keys := make([]string, 0, len(r.pending))
		for k, fams := range r.pending {
			if fams&freed != 0 {
				keys = append(keys, k)
			}
		}
		r.mu.Unlock()
		for _, key := range keys {
			if r.wants != nil && !r.wants(key) {
				r.remove(key)
				continue
			}
			r.nudge(ctx, key, "Nudged a pending Service after an address was freed")
		}
	}
}

// nudge makes the service controller sync the Service now, by touching
// RetryAnnotation; done is logged (at V(2)) when it worked.
func (r *retrier) nudge(ctx context.Context, key, done string) {
	logger := klog.FromContext(ctx)
	ns, name, _ := strings.Cut(key, "/")
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		RetryAnnotation: strconv.FormatInt(time.Now().UnixNano(), 10),
	}}})
	_, err := r.client.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case errors.IsNotFound(err):
		r.remove(key)
	case err != nil:
		logger.Error(err, "Nudging a Service", "service", key)
	default:
		logger.V(2).Info(done, "service", key)
	}
}
