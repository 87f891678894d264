package chaos

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// maxViolationsShown bounds the violations printed; the counts are whole.
const maxViolationsShown = 40

// summary renders a run's figures and findings: the seed to replay it,
// operation and fault counts, what quiescence found, and every violation
// with where in the operation log it was seen.
func (r *run) summary(binary string, wall time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (replay: CHAOS_SEED=%d CHAOS_PROFILE=%s), profile %s\n", r.seed, r.seed, r.prof.Name, r.prof.Name)
	leases := os.Getenv(LeasesEnv)
	if leases == "" {
		leases = "15s/10s/2s"
	}
	fmt.Fprintf(&b, "CCM binary: %s (2 replicas, leader election %s lease/renew/retry, deploy/base RBAC)\n", binary, leases)
	fmt.Fprintf(&b, "operations: %d (%s)\n", sum(r.ops), counts(r.ops))
	if len(r.rejected) > 0 {
		fmt.Fprintf(&b, "  of which refused by the apiserver: %s\n", counts(r.rejected))
	}
	fmt.Fprintf(&b, "faults: %d (%s); %d preceded by a burst of moving edits; %d operations while no CCM ran\n",
		sum(r.faults), counts(r.faults), r.bursts, r.downOps)
	fmt.Fprintf(&b, "  replicas that exited by themselves: %d; resumed ex-leaders killed for not exiting: %d\n",
		r.reps.unplannedExits, r.reps.zombieKills)
	accepted, refused := map[string]int{}, map[string]int{}
	for k, n := range r.edits {
		switch k {
		case "bad-yaml", "unknown-key", "overlap", "host-bits", "duplicate-name":
			refused[k] = n
		default:
			accepted[k] = n
		}
	}
	fmt.Fprintf(&b, "config edits: %d to apply (%s), %d to refuse (%s)\n", sum(accepted), counts(accepted), sum(refused), counts(refused))
	q := r.quiescent
	fmt.Fprintf(&b, "quiescence: settled %v after %v; %d Services, %d addresses in status, fingerprint %s; ",
		q.Settled, q.SettledAfter.Round(100*time.Millisecond), q.Services, q.Held, q.Fingerprint)
	if q.Allocator != nil {
		fmt.Fprintf(&b, "allocator %d addresses, fingerprint %s\n", q.Allocator.Held, q.Allocator.Fingerprint)
	} else {
		b.WriteString("allocator state not exported (CCM before contract C3)\n")
	}
	_, changes := r.obs.Quiet()
	fmt.Fprintf(&b, "status changes seen: %d; CCM annotation writes on Services that want no load balancer: %d\n", changes, r.obs.NonLBWrites())
	fmt.Fprintf(&b, "waiting for an address at the end: %d; config stale at the end: %v\n", q.Pending, q.Stale)
	for _, n := range r.notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	vs, byKind := r.obs.Violations()
	fmt.Fprintf(&b, "violations: %d", sum(byKind))
	if len(byKind) > 0 {
		fmt.Fprintf(&b, " (%s)", counts(byKind))
	}
	holes := map[string]int{}
	for _, v := range vs {
		if v.Hole != "" {
			holes["hole "+v.Hole]++
		}
	}
	if len(holes) > 0 {
		fmt.Fprintf(&b, "; issue 9 holes shown: %s", counts(holes))
	}
	b.WriteString("\n")
	for i, v := range vs {
		if i == maxViolationsShown {
			fmt.Fprintf(&b, "  … and %d more\n", len(vs)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", v)
	}
	fmt.Fprintf(&b, "wall time: %v\n", wall.Round(100*time.Millisecond))
	return b.String()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// counts renders "a 1, b 2" in key order.
func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
