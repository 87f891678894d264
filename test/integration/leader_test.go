package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// Short leader-election timings so a fail-over takes seconds; the shipped
// Deployment keeps the defaults (15 s / 10 s / 2 s).
var shortLease = []string{
	"--leader-elect-lease-duration=4s",
	"--leader-elect-renew-deadline=3s",
	"--leader-elect-retry-period=1s",
}

// leaseHolder returns the holderIdentity of the CCM's Lease.
func (e *env) leaseHolder(ctx context.Context) (string, error) {
	l, err := e.cs.CoordinationV1().Leases(ccm.Namespace).Get(ctx, ccm.LeaseName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// isLeader reads the replica's own view from its /metrics: client-go sets
// leader_election_master_status to 1 only while the process leads.
func isLeader(ctx context.Context, c *ccm.CCM) (bool, error) {
	m, err := c.Metrics(ctx)
	if err != nil {
		return false, err
	}
	v, err := ccm.MetricValue(m, "leader_election_master_status", map[string]string{"name": ccm.LeaseName})
	if err != nil {
		return false, nil // the series appears only once the replica leads
	}
	return v == 1, nil
}

// findLeader waits until the Lease names a holder (other than notHolder)
// and exactly one running replica says it leads, and returns both.
func (e *env) findLeader(replicas []*ccm.CCM, notHolder string) (*ccm.CCM, string) {
	e.t.Helper()
	var leader *ccm.CCM
	var holder string
	err := apitest.WaitUntil(e.ctx, time.Minute, func(ctx context.Context) (bool, error) {
		h, err := e.leaseHolder(ctx)
		if err != nil || h == "" || h == notHolder {
			return false, fmt.Errorf("lease holder %q: %v", h, err)
		}
		var leading []*ccm.CCM
		for _, r := range replicas {
			if !r.Process().Running() {
				continue
			}
			ok, err := isLeader(ctx, r)
			if err != nil {
				return false, err
			}
			if ok {
				leading = append(leading, r)
			}
		}
		if len(leading) != 1 {
			return false, fmt.Errorf("%d replicas say they lead", len(leading))
		}
		leader, holder = leading[0], h
		return true, nil
	})
	if err != nil {
		e.t.Fatalf("no single leader: %v", err)
	}
	return leader, holder
}

// TestLeaderFailover runs two replicas with leader election, as the shipped
// Deployment does, and kills the leader with SIGKILL, so it cannot release
// the lease. The standby takes over once the lease expires, restores the
// addresses from the Services' status, gives the Services created
// meanwhile addresses, and no address ends up held twice.
func TestLeaderFailover(t *testing.T) {
	e := newEnv(t)
	w := newIPWatch(t, e.ctx, e.cs, e.ns)
	var replicas []*ccm.CCM
	for _, name := range []string{"ccm-a", "ccm-b"} {
		replicas = append(replicas, ccm.Start(t, cp, ccm.Options{
			Name: name, CloudConfig: scaleConfig, LeaderElect: true, Args: shortLease,
		}))
	}

	before, _ := e.createMany(e.ns, "before", 20, 4)
	if err := w.waitFor(before, time.Minute); err != nil {
		t.Fatal(err)
	}
	held := takeSnapshot(e.list(e.ns, "before-"))
	leader, holder := e.findLeader(replicas, "")
	t.Logf("%s leads as %s", leader.Name(), holder)

	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	pending, _ := e.createMany(e.ns, "during", 20, 4)

	if err := w.waitFor(pending, time.Minute); err != nil {
		t.Fatalf("Services created after the leader died stay pending: %v", err)
	}
	var last time.Time
	for _, n := range pending {
		if at, _ := w.seen(n); at.After(last) {
			last = at
		}
	}
	survivor, newHolder := e.findLeader(replicas, holder)
	if survivor == leader {
		t.Fatalf("the killed replica %s still leads", leader.Name())
	}
	t.Logf("%s took over as %s; the Services created meanwhile all had addresses %v after the kill",
		survivor.Name(), newHolder, last.Sub(killed).Round(time.Millisecond))

	for name, snap := range takeSnapshot(e.list(e.ns, "before-")) {
		if snap.ips != held[name].ips {
			t.Errorf("%s changed from %s to %s in the fail-over", name, held[name].ips, snap.ips)
		}
	}
	all := e.list(e.ns, "")
	if len(all) != len(before)+len(pending) {
		t.Fatalf("%d Services, want %d", len(all), len(before)+len(pending))
	}
	if d := duplicates(all); len(d) > 0 {
		t.Errorf("addresses held twice after the fail-over: %v", d)
	}
	for _, s := range all {
		if ips := apitest.IngressIPs(&s); len(ips) != 1 || !inRange(ips[0], scalePool) {
			t.Errorf("%s has %v, want one address from %s", s.Name, ips, scalePool)
		}
	}
}
