package onewrite

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// The side-by-side benchmark runs the meter of test/integration's
// BenchmarkCreateToIP, BenchmarkBurst1000 and BenchmarkRestartWith1000
// (the meter of issue 16: 100 sequential creates, 1,000 creates by 8
// workers, a SIGKILL restart with 1,000 Services) against the same CCM
// binary with shipped defaults, with and without the one-write policy, in
// one run:
//
//	go test -run '^$' -bench OneWrite -benchtime=1x -timeout 30m ./test/integration/onewrite/
//
// and writes bench/results/one-write-create-to-ip.txt.

// benchTimeout bounds one benchmark's scenario.
const benchTimeout = 20 * time.Minute

// benchCCMArgs make the CCM log as the shipped Deployment does (no -v).
var benchCCMArgs = []string{"--v=0"}

// benchLabel marks the namespaces the benchmark's policy binding applies to.
const benchLabel = "onewrite.test/policy"

// Arm names.
const (
	twoWrite = "two-write (no policy)"
	oneWrite = "one-write (policy)"
)

// singleResult is the sequential meter for one arm.
type singleResult struct {
	fromReturn, fromCall, call []time.Duration // sorted
	early                      int             // IP seen before Create returned
}

// scaleResult is the 1,000-Service meter for one arm and repetition.
type scaleResult struct {
	afterLast      time.Duration // last create returned -> all have IPs
	creates        time.Duration // first create sent -> last returned
	perService     []time.Duration
	restartNewIP   time.Duration // restart -> new Service's IP
	restartCreate  time.Duration // that Service's create returned -> its IP
	restartHealthy time.Duration
}

// BenchmarkOneWriteSideBySide measures create -> IP with and without the
// policy in one run. The sequential creates alternate between a namespace
// the policy applies to and one it does not, Service by Service, under
// one CCM, so both arms see the same load. The 1,000-Service burst and the
// restart need a CCM of their own per arm; they run one arm after the
// other with the shipped component installed or not.
func BenchmarkOneWriteSideBySide(b *testing.B) {
	requireControlPlane(b)
	var single map[string]*singleResult
	b.Run("sequential", func(b *testing.B) { single = benchSequential(b) })
	scale := map[string][]scaleResult{}
	reps := benchutil.Reps() // the 1,000-Service arms that many times, alternating their order, for medians
	for rep := range reps {
		arms := []string{twoWrite, oneWrite}
		if rep%2 == 1 {
			slices.Reverse(arms)
		}
		for _, arm := range arms {
			name := map[string]string{twoWrite: "burst-restart-two-write", oneWrite: "burst-restart-one-write"}[arm]
			if reps > 1 {
				name += fmt.Sprintf("-rep%d", rep+1)
			}
			b.Run(name, func(b *testing.B) {
				r := benchScale(b, arm == oneWrite)
				scale[arm] = append(scale[arm], r)
			})
		}
	}
	if single == nil || len(scale[twoWrite]) == 0 || len(scale[oneWrite]) == 0 {
		return // a sub-benchmark failed and said why
	}
	text := report(single, scale)
	writeResult(b, "one-write-create-to-ip", text)
	// go test does not print the log of a benchmark with sub-benchmarks.
	fmt.Printf("--- %s\n%s\n", b.Name(), text)
}

// benchSequential creates 100 Services (after 5 warm-up) in each arm,
// alternating arms and which goes first.
func benchSequential(b *testing.B) map[string]*singleResult {
	const n, warmup = 100, 5
	arms := newSideBySide(newEnv(b, cp, benchTimeout), "bench-node")
	startCCM(b, cp, scaleConfig, benchCCMArgs...)
	out := map[string]*singleResult{twoWrite: {}, oneWrite: {}}
	b.ResetTimer()
	for i := range n + warmup {
		order := []string{twoWrite, oneWrite}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, arm := range order {
			call, ret, at := arms.create(b, arm, fmt.Sprintf("seq-%d", i))
			if i < warmup {
				continue // connections and caches warm up on the first few
			}
			r := out[arm]
			if at.Before(ret) {
				r.early++
			}
			r.fromReturn = append(r.fromReturn, max(at.Sub(ret), 0))
			r.fromCall = append(r.fromCall, at.Sub(call))
			r.call = append(r.call, ret.Sub(call))
		}
	}
	b.StopTimer()
	for _, arm := range []string{twoWrite, oneWrite} {
		r := out[arm]
		slices.Sort(r.fromReturn)
		slices.Sort(r.fromCall)
		slices.Sort(r.call)
		tag := map[string]string{twoWrite: "two", oneWrite: "one"}[arm]
		b.ReportMetric(benchutil.Millis(benchutil.Percentile(r.fromReturn, 50)), tag+"-p50-ms")
		b.ReportMetric(benchutil.Millis(benchutil.Percentile(r.fromReturn, 99)), tag+"-p99-ms")
	}
	return out
}

// sideBySide is the setup of the benchmarks that compare the arms within
// one CCM run: three Ready Nodes, the test's namespace for the two-write
// arm and another, where the policy applies, for the one-write arm, each
// with a recorder.
type sideBySide struct {
	e    *env
	nss  map[string]string    // by arm
	recs map[string]*recorder // by arm
}

func newSideBySide(e *env, nodePrefix string) *sideBySide {
	e.t.Helper()
	for i := range 3 {
		e.readyNode(fmt.Sprintf("%s-%d", nodePrefix, i))
	}
	nsPolicy := e.installForLabel(benchLabel, "on")
	return &sideBySide{
		e:    e,
		nss:  map[string]string{twoWrite: e.ns, oneWrite: nsPolicy},
		recs: map[string]*recorder{twoWrite: newRecorder(e, e.ns), oneWrite: newRecorder(e, nsPolicy)},
	}
}

// create creates the LoadBalancer Service name in arm's namespace and
// waits for its address. It returns when Create was called, when it
// returned and when the address was first seen.
func (s *sideBySide) create(b *testing.B, arm, name string) (call, ret, ip time.Time) {
	b.Helper()
	call = time.Now()
	if _, err := s.e.cs.CoreV1().Services(s.nss[arm]).Create(s.e.ctx, lbService(name), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	ret = time.Now()
	if err := s.recs[arm].waitIPs([]string{name}, ipTimeout); err != nil {
		b.Fatalf("%s: %v", arm, err)
	}
	ip, _ = s.recs[arm].seen(name)
	return call, ret, ip
}

// benchScale creates 1,000 Services by 8 workers under a fresh CCM, with
// the component installed or not, waits until all have addresses, then
// kills the CCM, starts it again and times a new Service's address.
func benchScale(b *testing.B, policy bool) scaleResult {
	const n, workers = 1000, 8
	e := newEnv(b, cp, benchTimeout)
	for i := range 3 {
		e.readyNode(fmt.Sprintf("bench-node-%d", i))
	}
	if policy {
		e.installComponent()
	} else {
		e.waitPolicy(e.ns, false)
	}
	rec := newRecorder(e, e.ns)
	c := ccm.New(b, cp, ccm.Options{CloudConfig: scaleConfig, Args: benchCCMArgs})
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	e.create(e.ns, lbService("probe"))
	if err := rec.waitIPs([]string{"probe"}, time.Minute); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	names := make([]string, n)
	returned := make([]time.Time, n)
	errs := make(chan error, n)
	first := time.Now()
	apitest.Parallel(workers, n, func(i int) {
		names[i] = fmt.Sprintf("burst-%d", i)
		if _, err := e.cs.CoreV1().Services(e.ns).Create(e.ctx, lbService(names[i]), metav1.CreateOptions{}); err != nil {
			errs <- fmt.Errorf("creating %s: %w", names[i], err)
		}
		returned[i] = time.Now()
	})
	last := time.Now()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if err := rec.waitIPs(names, 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	var r scaleResult
	var done time.Time
	for i, name := range names {
		at, _ := rec.seen(name)
		if at.After(done) {
			done = at
		}
		r.perService = append(r.perService, max(at.Sub(returned[i]), 0))
	}
	slices.Sort(r.perService)
	r.afterLast, r.creates = max(done.Sub(last), 0), last.Sub(first)

	if err := c.Kill(); err != nil {
		b.Fatal(err)
	}
	restart := time.Now()
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	r.restartHealthy = time.Since(restart)
	e.create(e.ns, lbService("after-restart"))
	created := time.Now()
	if err := rec.waitIPs([]string{"after-restart"}, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	at, _ := rec.seen("after-restart")
	r.restartNewIP, r.restartCreate = at.Sub(restart), at.Sub(created)
	b.StopTimer()
	b.ReportMetric(r.afterLast.Seconds(), "s-after-last-create")
	b.ReportMetric(benchutil.Millis(benchutil.Percentile(r.perService, 50)), "per-service-p50-ms")
	b.ReportMetric(r.restartNewIP.Seconds(), "s-restart-to-new-ip")
	return r
}

// report renders the comparison and checks issue 16's target.
func report(single map[string]*singleResult, scale map[string][]scaleResult) string {
	var t strings.Builder
	two, one := single[twoWrite], single[oneWrite]
	fmt.Fprintf(&t, "Single Service, create -> IP seen by a watch; %d sequential creates per arm after 5 warm-up,\n", len(two.fromReturn))
	fmt.Fprintf(&t, "alternating arms Service by Service under one CCM (shipped defaults, --v=0):\n")
	fmt.Fprintf(&t, "  %-44s %12s %12s %8s\n", "", "two-write", "one-write", "ratio")
	row := func(label string, a, b time.Duration) {
		fmt.Fprintf(&t, "  %-44s %9.1f ms %9.1f ms %7.2fx\n", label, benchutil.Millis(a), benchutil.Millis(b), ratio(b, a))
	}
	row("from Create returned, p50", benchutil.Percentile(two.fromReturn, 50), benchutil.Percentile(one.fromReturn, 50))
	row("from Create returned, p99", benchutil.Percentile(two.fromReturn, 99), benchutil.Percentile(one.fromReturn, 99))
	row("from Create sent (what kubectl apply sees), p50", benchutil.Percentile(two.fromCall, 50), benchutil.Percentile(one.fromCall, 50))
	row("from Create sent, p99", benchutil.Percentile(two.fromCall, 99), benchutil.Percentile(one.fromCall, 99))
	row("the Create call alone, p50", benchutil.Percentile(two.call, 50), benchutil.Percentile(one.call, 50))
	fmt.Fprintf(&t, "  (IP seen before Create returned, counted as 0: two-write %d, one-write %d)\n", two.early, one.early)
	meets := func(a, b time.Duration) string {
		if ratio(b, a) <= 0.8 {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(&t, "  target <= 0.80x (from Create returned): p50 %s, p99 %s; (from Create sent): p50 %s, p99 %s\n\n",
		meets(benchutil.Percentile(two.fromReturn, 50), benchutil.Percentile(one.fromReturn, 50)),
		meets(benchutil.Percentile(two.fromReturn, 99), benchutil.Percentile(one.fromReturn, 99)),
		meets(benchutil.Percentile(two.fromCall, 50), benchutil.Percentile(one.fromCall, 50)),
		meets(benchutil.Percentile(two.fromCall, 99), benchutil.Percentile(one.fromCall, 99)))

	reps := len(scale[twoWrite])
	fmt.Fprintf(&t, "1,000 Services by 8 client goroutines, then SIGKILL and restart with them; a fresh CCM per arm,\n")
	fmt.Fprintf(&t, "arms one after the other (%d run(s) each, alternating order; medians):\n", reps)
	fmt.Fprintf(&t, "  %-44s %12s %12s\n", "", "two-write", "one-write")
	med := func(arm string, f func(scaleResult) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range scale[arm] {
			ds = append(ds, f(r))
		}
		slices.Sort(ds)
		return ds[(len(ds)-1)/2]
	}
	srow := func(label string, f func(scaleResult) time.Duration, unit string) {
		a, b := med(twoWrite, f), med(oneWrite, f)
		if unit == "s" {
			fmt.Fprintf(&t, "  %-44s %10.2f s %10.2f s\n", label, a.Seconds(), b.Seconds())
		} else {
			fmt.Fprintf(&t, "  %-44s %9.0f ms %9.0f ms\n", label, benchutil.Millis(a), benchutil.Millis(b))
		}
	}
	srow("last create returned -> all have IPs", func(r scaleResult) time.Duration { return r.afterLast }, "s")
	srow("the 1,000 creates took", func(r scaleResult) time.Duration { return r.creates }, "s")
	srow("per Service (create returned -> IP), p50", func(r scaleResult) time.Duration { return benchutil.Percentile(r.perService, 50) }, "ms")
	srow("per Service, p99", func(r scaleResult) time.Duration { return benchutil.Percentile(r.perService, 99) }, "ms")
	srow("restart -> a new Service's IP", func(r scaleResult) time.Duration { return r.restartNewIP }, "s")
	srow("  of which: restart -> healthy", func(r scaleResult) time.Duration { return r.restartHealthy }, "s")
	srow("  of which: its create returned -> IP", func(r scaleResult) time.Duration { return r.restartCreate }, "ms")
	if reps > 1 {
		for _, arm := range []string{twoWrite, oneWrite} {
			var each []string
			for _, r := range scale[arm] {
				each = append(each, fmt.Sprintf("%.2f/%.0f/%.2f", r.afterLast.Seconds(), benchutil.Millis(benchutil.Percentile(r.perService, 50)), r.restartNewIP.Seconds()))
			}
			fmt.Fprintf(&t, "  %s runs (after-last s / per-Service p50 ms / restart s): %s\n", arm, strings.Join(each, ", "))
		}
	} else {
		fmt.Fprintf(&t, "  One run per arm: set %s=3 for medians before acting on a difference at scale.\n", benchutil.RepsEnv)
	}
	return t.String()
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// writeResult logs text and stores it in bench/results (see
// benchutil.WriteResult).
func writeResult(b *testing.B, name, text string) {
	b.Helper()
	b.Log("\n" + text)
	benchutil.WriteResult(b, name, "at end "+benchutil.LoadAvg(), "CCM bin/baremetal-cloud-controller-manager", text)
}
