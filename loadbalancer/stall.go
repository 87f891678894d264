package loadbalancer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// stallGuard stops a replica that was frozen for longer than its leader
// lease.
//
// A leader that is stopped (SIGSTOP, a frozen VM, a host deep in swap) past
// its lease wakes up still believing it leads. Its service workers carry on
// with what they were doing until the lease renewal notices the loss, up to
// the renew deadline later. Meanwhile another replica leads with its own
// allocations, so the woken replica's writes can give one address to two
// Services, or move one; the chaos suite's zombie fault shows both. The
// guard closes that window from inside the process: it notes the monotonic
// time on every tick, and once it sees a gap longer than the lease, every
// allocation is refused and the process exits, as client-go's leader
// election does on a lost lease. It then restarts as a standby and restores
// its state from Service status. The duplicate audit repairs what slips
// through (a status patch already on its way when the process froze).
type stallGuard struct {
	limit   time.Duration
	epoch   time.Time    // carries the monotonic clock reading
	last    atomic.Int64 // nanoseconds since epoch at the last tick
	stalled atomic.Bool
	exit    func()
}

func newStallGuard(limit time.Duration, exit func()) *stallGuard {
	return &stallGuard{limit: limit, epoch: time.Now(), exit: exit}
}

// tickEvery is how often the guard notes the time: often enough that a
// tick right after a resume is rare, and cheap either way.
func (g *stallGuard) tickEvery() time.Duration {
	return min(g.limit/10, 100*time.Millisecond)
}

// touch notes that the process is running now.
func (g *stallGuard) touch() { g.last.Store(int64(time.Since(g.epoch))) }

func (g *stallGuard) run(ctx context.Context) {
	t := time.NewTicker(g.tickEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if g.check(ctx) != nil {
			return
		}
		g.touch()
	}
}

// check returns an error once the process has been frozen for longer than
// the limit. It is also called on every allocation, because after a resume
// a worker may run before the ticker does.
func (g *stallGuard) check(ctx context.Context) error {
	if g == nil {
		return nil
	}
	gap := time.Since(g.epoch) - time.Duration(g.last.Load())
	if g.stalled.Load() || gap > g.limit {
		if g.stalled.CompareAndSwap(false, true) {
			klog.FromContext(ctx).Error(nil, "This replica was frozen for longer than its leader lease; another replica may lead now. Refusing every allocation and exiting, to restart as a standby",
				"frozenFor", gap.Round(time.Millisecond), "lease", g.limit)
			go g.exit()
		}
		return fmt.Errorf("this replica was frozen for longer than its leader lease (%v); it allocates nothing more and is exiting", g.limit)
	}
	return nil
}

// ExitAfterStall makes the load balancer refuse every allocation and end the
// process once it notices that the process was frozen for longer than
// lease, the leader-election lease duration. Call it before Start. Without
// leader election there is no other replica to clash with, so the app does
// not call it.
func (lb *LoadBalancer) ExitAfterStall(lease time.Duration) {
	lb.stall = newStallGuard(lease, func() { klog.FlushAndExit(klog.ExitFlushTimeout, 1) })
}
