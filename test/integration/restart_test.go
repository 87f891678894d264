package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// scaleConfig is a pool large enough for the scale tests and benchmarks:
// 198.18.0.0/15 is RFC 2544's benchmarking range, never routed on the
// internet, like the documentation ranges the other tests use.
const scaleConfig = `address-pools:
- name: scale
  protocol: layer2
  addresses:
  - 198.18.0.0/20
`

const scalePool = "198.18.0.0/20"

// snapshot is what must not change about a Service across a CCM restart.
type snapshot struct {
	ips             string
	resourceVersion string
	finalizers      string
}

func takeSnapshot(svcs []corev1.Service) map[string]snapshot {
	out := make(map[string]snapshot, len(svcs))
	for _, s := range svcs {
		out[s.Name] = snapshot{
			ips:             strings.Join(apitest.IngressIPs(&s), ","),
			resourceVersion: s.ResourceVersion,
			finalizers:      strings.Join(s.Finalizers, ","),
		}
	}
	return out
}

// createMany creates Services named prefix-0..n-1 with a few client
// goroutines, as a deployment tool would, and returns their names and when
// the last create returned.
func (e *env) createMany(ns, prefix string, n, workers int, opts ...svcOpt) ([]string, time.Time) {
	e.t.Helper()
	names := make([]string, n)
	errs := make(chan error, n)
	apitest.Parallel(workers, n, func(i int) {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		if _, err := e.cs.CoreV1().Services(ns).Create(e.ctx, lbService(names[i], opts...), metav1.CreateOptions{}); err != nil {
			errs <- fmt.Errorf("creating %s: %w", names[i], err)
		}
	})
	last := time.Now()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	return names, last
}

// list returns the Services of ns whose names start with prefix.
func (e *env) list(ns, prefix string) []corev1.Service {
	e.t.Helper()
	l, err := e.cs.CoreV1().Services(ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Service
	for _, s := range l.Items {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// waitQueueDrained waits until the CCM's service controller has taken at
// least adds Services off its queue and has nothing queued or in flight,
// read from the standard workqueue metrics: after a restart that is the
// moment every existing Service has been synced once. The in-flight gauge
// is refreshed only every 500 ms, so the state must hold on two reads that
// far apart.
// It returns when the drained state was first seen.
func waitQueueDrained(ctx context.Context, c *ccm.CCM, adds int, timeout time.Duration) (time.Time, error) {
	q := map[string]string{"name": "service"}
	var drainedSince time.Time
	err := apitest.WaitUntil(ctx, timeout, func(ctx context.Context) (bool, error) {
		m, err := c.Metrics(ctx)
		if err != nil {
			return false, err
		}
		added, err1 := ccm.MetricValue(m, "workqueue_adds_total", q)
		depth, err2 := ccm.MetricValue(m, "workqueue_depth", q)
		busy, err3 := ccm.MetricValue(m, "workqueue_unfinished_work_seconds", q)
		if err1 != nil || err2 != nil || err3 != nil {
			return false, fmt.Errorf("workqueue metrics: %v %v %v", err1, err2, err3)
		}
		if int(added) < adds || depth != 0 || busy != 0 {
			drainedSince = time.Time{}
			return false, fmt.Errorf("service queue: %v added, %v queued, %vs unfinished", added, depth, busy)
		}
		if drainedSince.IsZero() {
			drainedSince = time.Now()
		}
		return time.Since(drainedSince) > 600*time.Millisecond, nil
	})
	return drainedSince, err
}

// TestRestartKeepsEveryAddress kills the CCM with SIGKILL while 300
// Services hold addresses and starts it again. The new process must read
// the addresses back from the Services' status: no Service's status is
// rewritten (not even to the same value), and new Services get addresses
// that no one holds.
func TestRestartKeepsEveryAddress(t *testing.T) {
	const n = 300
	e := newEnv(t)
	w := newIPWatch(t, e.ctx, e.cs, e.ns)
	c := ccm.Start(t, cp, ccm.Options{CloudConfig: scaleConfig})

	names, lastCreate := e.createMany(e.ns, "svc", n, 8)
	if err := w.waitFor(names, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Services created; all had addresses %v after the last create", n, time.Since(lastCreate).Round(time.Millisecond))
	before := e.list(e.ns, "svc-")
	if d := duplicates(before); len(d) > 0 {
		t.Fatalf("addresses held twice before the restart: %v", d)
	}
	snap := takeSnapshot(before)

	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	healthy := time.Since(restart)
	e.create(e.ns, lbService("after-restart-0"))
	if err := w.waitFor([]string{"after-restart-0"}, ipTimeout); err != nil {
		t.Fatal(err)
	}
	at, _ := w.seen("after-restart-0")
	t.Logf("restart with %d Services: new Service had an address %v after the restart (healthy after %v)",
		n, at.Sub(restart).Round(time.Millisecond), healthy.Round(time.Millisecond))

	newNames, _ := e.createMany(e.ns, "after-restart-more", 9, 3)
	newNames = append(newNames, "after-restart-0")
	if err := w.waitFor(newNames, ipTimeout); err != nil {
		t.Fatal(err)
	}

	// Every old Service has been through the new process's sync once.
	if _, err := waitQueueDrained(e.ctx, c, n+len(newNames), 2*time.Minute); err != nil {
		t.Fatalf("the restarted CCM did not sync every Service: %v", err)
	}
	if log := c.Log(); !strings.Contains(log, fmt.Sprintf(`"Restored load-balancer allocations from Service status" services=%d `, n)) {
		t.Errorf("the restarted CCM did not report restoring %d Services; log %s", n, c.LogPath())
	}

	after := takeSnapshot(e.list(e.ns, "svc-"))
	if len(after) != n {
		t.Fatalf("%d Services after the restart, want %d", len(after), n)
	}
	changed := 0
	for _, name := range slices.Sorted(maps.Keys(snap)) {
		if snap[name] != after[name] {
			changed++
			if changed <= 10 {
				t.Errorf("%s changed across the restart: %+v -> %+v", name, snap[name], after[name])
			}
		}
	}
	if changed > 10 {
		t.Errorf("... %d Services changed in all", changed)
	}

	all := e.list(e.ns, "")
	if d := duplicates(all); len(d) > 0 {
		t.Errorf("addresses held twice after the restart: %v", d)
	}
	for _, s := range all {
		if strings.HasPrefix(s.Name, "after-restart") {
			ips := apitest.IngressIPs(&s)
			if len(ips) != 1 || !inRange(ips[0], scalePool) {
				t.Errorf("%s got %v, want one address from %s", s.Name, ips, scalePool)
			}
		}
	}
}
