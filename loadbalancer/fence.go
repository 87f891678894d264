package loadbalancer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// leaseFence keeps a leader that is about to lose its lease from handing
// out addresses.
//
// The stall guard catches a process that was frozen outright. A leader
// that is only starved (a loaded node, a throttled cgroup) keeps ticking,
// but its lease renewals fall behind. client-go gives up leadership once it
// has not renewed for the renew deadline, and another replica takes over
// once it has seen no renewal for the lease duration; the gap between the
// two is the only thing that keeps a status write of the old leader from
// landing after the new leader's, and a starved process can overrun it.
// The chaos suite showed exactly that with 4 s leases: an address moved.
//
// So the fence reads the Lease itself and lets the load balancer hand out
// addresses only while the last renewal it saw, stamped by this process's
// own clock, is younger than the renew deadline. A write that passes the
// check then has the rest of the lease (lease duration minus renew
// deadline, 5 s by default) to land before any other replica may lead.
// The fence polls with GET, which the leader-election RBAC already allows;
// a stale reading only makes it refuse sooner. When the Lease names another
// holder, this replica was deposed: it refuses everything and exits, to
// come back as a standby.
type leaseFence struct {
	namespace, name string
	renewDeadline   time.Duration
	pollEvery       time.Duration
	now             func() time.Time
	exit            func()

	holder    atomic.Pointer[string] // the holder at the first reading: this replica
	renewed   atomic.Int64           // unix nanoseconds of the last renewal seen
	deposed   atomic.Bool
	readError atomic.Pointer[string]
}

func newLeaseFence(namespace, name string, renewDeadline, retryPeriod time.Duration, exit func()) *leaseFence {
	return &leaseFence{
		namespace:     namespace,
		name:          name,
		renewDeadline: renewDeadline,
		// Half the renewal period: the reading is at most that much older
		// than the renewal, well inside the renew deadline.
		pollEvery: max(retryPeriod/2, 100*time.Millisecond),
		now:       time.Now,
		exit:      exit,
	}
}

// start takes the first reading, which names this replica as the holder
// (the load balancer starts only once this replica leads), then polls until
// ctx ends. It returns once the first reading is in, or ctx ended.
func (f *leaseFence) start(ctx context.Context, client kubernetes.Interface) {
	if f == nil {
		return
	}
	logger := klog.FromContext(ctx)
	first := func(ctx context.Context) (bool, error) {
		if err := f.read(ctx, client); err != nil {
			logger.Error(err, "Reading the leader-election Lease; allocating nothing until it is read", "lease", klog.KRef(f.namespace, f.name))
			return false, nil
		}
		return true, nil
	}
	if wait.PollUntilContextCancel(ctx, f.pollEvery, true, first) != nil {
		return
	}
	logger.Info("Allocating only while this replica's leader lease is fresh", "lease", klog.KRef(f.namespace, f.name), "holder", *f.holder.Load(), "renewDeadline", f.renewDeadline)
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := f.read(ctx, client); err != nil {
			// The renewal time stays where it was, so the check refuses
			// once the deadline passes; say why only once per cause.
			msg := err.Error()
			if old := f.readError.Swap(&msg); old == nil || *old != msg {
				logger.Error(err, "Reading the leader-election Lease", "lease", klog.KRef(f.namespace, f.name))
			}
			return
		}
		f.readError.Store(nil)
	}, f.pollEvery)
}

func (f *leaseFence) read(ctx context.Context, client kubernetes.Interface) error {
	lease, err := client.CoordinationV1().Leases(f.namespace).Get(ctx, f.name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	f.observe(ctx, lease)
	return nil
}

// observe records one reading of the Lease.
func (f *leaseFence) observe(ctx context.Context, lease *coordinationv1.Lease) {
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if f.holder.Load() == nil {
		f.holder.Store(&holder)
	}
	if holder != *f.holder.Load() {
		f.depose(ctx, holder)
		return
	}
	if lease.Spec.RenewTime != nil {
		if t := lease.Spec.RenewTime.UnixNano(); t > f.renewed.Load() {
			f.renewed.Store(t)
		}
	}
}

func (f *leaseFence) depose(ctx context.Context, holder string) {
	if f.deposed.CompareAndSwap(false, true) {
		klog.FromContext(ctx).Error(nil, "Another replica holds the leader lease now; refusing every allocation and exiting, to restart as a standby",
			"lease", klog.KRef(f.namespace, f.name), "was", *f.holder.Load(), "now", holder)
		go f.exit()
	}
}

// check returns an error unless this replica's lease is fresh enough that
// a write made now lands before any other replica may lead.
func (f *leaseFence) check() error {
	if f == nil {
		return nil
	}
	if f.deposed.Load() {
		return fmt.Errorf("another replica holds the leader lease %s/%s now; this replica allocates nothing more and is exiting", f.namespace, f.name)
	}
	renewed := f.renewed.Load()
	if renewed == 0 {
		return fmt.Errorf("the leader lease %s/%s has not been read yet", f.namespace, f.name)
	}
	if age := f.now().Sub(time.Unix(0, renewed)); age > f.renewDeadline {
		return fmt.Errorf("this replica last renewed its leader lease %s/%s %v ago, more than the renew deadline of %v; another replica may lead soon, so it allocates nothing until the lease is renewed",
			f.namespace, f.name, age.Round(time.Millisecond), f.renewDeadline)
	}
	return nil
}

// FenceOnLease makes the load balancer hand out and release addresses only
// while this replica's leader-election Lease namespace/name was renewed
// within renewDeadline, and exit once another replica holds it. retryPeriod
// is the election's retry period; the Lease is read twice as often. Call it
// before Start, and only with leader election on a Lease.
func (lb *LoadBalancer) FenceOnLease(namespace, name string, renewDeadline, retryPeriod time.Duration) {
	lb.fence = newLeaseFence(namespace, name, renewDeadline, retryPeriod, func() { klog.FlushAndExit(klog.ExitFlushTimeout, 1) })
}

// writable returns an error when this replica must not hand out or take
// back addresses: it was frozen past its lease, or its lease is stale or
// held by another replica.
func (lb *LoadBalancer) writable(ctx context.Context) error {
	if err := lb.stall.check(ctx); err != nil {
		return err
	}
	return lb.fence.check()
}
