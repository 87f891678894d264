package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// The benchmarks time what a user waits for, against the real binary and
// apiserver. Each runs its scenario once; run them with -benchtime=1x:
//
//	go test -run '^$' -bench . -benchtime=1x -timeout 30m ./test/integration/
//
// Every benchmark reports its figures with b.ReportMetric, logs a line for
// humans that compares them with MetalLB v0.16.1's published figures, and
// writes the same text to bench/results/<name>.txt. The figures depend on
// the machine and on whatever else runs on it; the load average at the start
// is recorded with them.

// MetalLB v0.16.1's figures, for comparison.
const (
	metallbP50          = 10 * time.Millisecond
	metallbP99          = 23 * time.Millisecond
	metallbBurstLow     = 2200 * time.Millisecond
	metallbBurstHigh    = 2800 * time.Millisecond
	metallbRestartNewIP = 3 * time.Second
)

// benchTimeout bounds one benchmark's scenario.
const benchTimeout = 15 * time.Minute

// benchCCMArgs make the CCM log as the shipped Deployment does (no -v), so
// that logging at V(2) does not weigh on the figures.
var benchCCMArgs = []string{"--v=0"}

// benchSetup is a namespace, a few Ready Nodes (a real cluster has them,
// and without any the service controller adds a warning event to every
// sync) and a watch recording when each Service got its address.
func benchSetup(b *testing.B) (*env, *ipWatch) {
	b.Helper()
	// Upstream's flags need minutes for 1,000 Services.
	e := newEnvWithin(b, benchTimeout)
	for i := range 3 {
		readyNode(e, fmt.Sprintf("bench-%s-node-%d", apitest.RandHex(3), i))
	}
	return e, newIPWatch(b, e.ctx, e.cs, e.ns)
}

// benchCCM prepares (without starting) a CCM over the scale pool with the
// given throughput flags.
func benchCCM(b *testing.B, flags ...string) *ccm.CCM {
	b.Helper()
	return ccm.New(b, cp, ccm.Options{CloudConfig: scaleConfig, Args: append(slices.Clone(benchCCMArgs), flags...)})
}

// benchEnv is benchSetup plus a started CCM whose Service syncs are known
// to run: a probe Service got an address.
func benchEnv(b *testing.B, flags ...string) (*env, *ccm.CCM, *ipWatch) {
	b.Helper()
	e, w := benchSetup(b)
	c := benchCCM(b, flags...)
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	e.create(e.ns, lbService("probe"))
	if err := w.waitFor([]string{"probe"}, time.Minute); err != nil {
		b.Fatal(err)
	}
	return e, c, w
}

// lastSeen is when the last of names got its address.
func (w *ipWatch) lastSeen(names []string) time.Time {
	var last time.Time
	for _, n := range names {
		if at, _ := w.seen(n); at.After(last) {
			last = at
		}
	}
	return last
}

// readyNode registers a Node that reports Ready, like a running kubelet;
// cleanup deletes it.
func readyNode(e *env, name string) {
	e.t.Helper()
	n, err := apitest.ReadyNode(e.ctx, e.cs, name)
	if n != nil {
		e.trackNode(name)
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// writeResult logs text and stores it in bench/results (see
// benchutil.WriteResult).
func writeResult(b *testing.B, name, text string) {
	b.Helper()
	b.Log("\n" + text)
	benchutil.WriteResult(b, name, "at start "+benchutil.LoadAvg(), "CCM bin/baremetal-cloud-controller-manager", text)
}

// BenchmarkCreateToIP creates 200 Services one after another and measures,
// for each, the time from Create returning to the address being visible
// through a watch, as `kubectl get svc -w` would show it.
func BenchmarkCreateToIP(b *testing.B) {
	const n, warmup = 200, 5
	e, _, w := benchEnv(b)
	lat := make([]time.Duration, 0, n)
	// On a busy machine the watch can deliver the address before the
	// Create response has been read; such samples count as 0.
	early := 0
	b.ResetTimer()
	for i := range n + warmup {
		name := fmt.Sprintf("seq-%d", i)
		if _, err := e.cs.CoreV1().Services(e.ns).Create(e.ctx, lbService(name), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		created := time.Now()
		if err := w.waitFor([]string{name}, ipTimeout); err != nil {
			b.Fatal(err)
		}
		if i < warmup {
			continue // connections and caches warm up on the first few
		}
		at, _ := w.seen(name)
		if at.Before(created) {
			early++
		}
		lat = append(lat, max(at.Sub(created), 0))
	}
	b.StopTimer()
	slices.Sort(lat)
	p50, p99 := benchutil.Percentile(lat, 50), benchutil.Percentile(lat, 99)
	b.ReportMetric(benchutil.Millis(p50), "p50-ms")
	b.ReportMetric(benchutil.Millis(p99), "p99-ms")
	writeResult(b, "create-to-ip", fmt.Sprintf(
		"create -> IP over %d sequential creates (after %d warm-up), shipped defaults:\n"+
			"  p50 %.1f ms, p99 %.1f ms, min %.1f ms, max %.1f ms (%d seen before Create returned, counted as 0)\n"+
			"  MetalLB v0.16.1: p50 %.0f ms, p99 %.0f ms\n",
		n, warmup, benchutil.Millis(p50), benchutil.Millis(p99), benchutil.Millis(lat[0]), benchutil.Millis(lat[len(lat)-1]), early, benchutil.Millis(metallbP50), benchutil.Millis(metallbP99)))
}

// flagSet is one choice of the CCM's throughput flags.
type flagSet struct {
	name  string
	flags []string
}

// burstFlagSets are compared by BenchmarkBurst1000: upstream's defaults,
// ours (provider/app), and neighbours of ours, to show whether ours are
// the best measured.
var burstFlagSets = []flagSet{
	{name: "upstream-defaults", flags: []string{"--concurrent-service-syncs=1", "--kube-api-qps=20", "--kube-api-burst=30"}},
	{name: "shipped-defaults"},
	{name: "syncs-5-qps-100-burst-200", flags: []string{"--concurrent-service-syncs=5", "--kube-api-qps=100", "--kube-api-burst=200"}},
	{name: "syncs-10-qps-400-burst-800", flags: []string{"--concurrent-service-syncs=10", "--kube-api-qps=400", "--kube-api-burst=800"}},
	{name: "syncs-10-qps-200-burst-400", flags: []string{"--concurrent-service-syncs=10", "--kube-api-qps=200", "--kube-api-burst=400"}},
	{name: "syncs-50-qps-1000-burst-2000", flags: []string{"--concurrent-service-syncs=50", "--kube-api-qps=1000", "--kube-api-burst=2000"}},
}

// flagResult is one flag set's figure in a comparison.
type flagResult struct {
	name, flags, detail string
	d                   time.Duration
}

// compareFlagSets writes the comparison of flag sets as results file name:
// one block per flag set, then which were best. Figures within 10% or
// 0.25 s of the best are counted as tied with it: single runs on a shared
// machine are not more precise than that.
func compareFlagSets(b *testing.B, name, title string, results []flagResult, reference string) {
	b.Helper()
	if len(results) == 0 {
		return
	}
	var text strings.Builder
	fmt.Fprintf(&text, "%s\n", title)
	best := results[0]
	for _, r := range results {
		fmt.Fprintf(&text, "%-30s %s\n  %s\n", r.name, r.flags, r.detail)
		if r.d < best.d {
			best = r
		}
	}
	slack := max(best.d/10, 250*time.Millisecond)
	var tied []string
	for _, r := range results {
		if r.d <= best.d+slack {
			tied = append(tied, fmt.Sprintf("%s (%.2f s)", r.name, r.d.Seconds()))
		}
	}
	fmt.Fprintf(&text, "best measured: %s; within noise of it: %s\n%s\n", best.name, strings.Join(tied, ", "), reference)
	writeResult(b, name, text.String())
	// go test does not print the log of a benchmark that has
	// sub-benchmarks, and this comparison is the point of it.
	fmt.Printf("--- %s\n%s\n", b.Name(), text.String())
}

var metallbBurstRef = fmt.Sprintf("MetalLB v0.16.1: %.1f-%.1f s after the last create", metallbBurstLow.Seconds(), metallbBurstHigh.Seconds())

// BenchmarkBurst1000 creates 1,000 Services at once from 8 client
// goroutines and measures the time from the last create returning until
// every one has an address, for each flag set. Where the apiserver creates
// Services more slowly than the CCM allocates (it does on a small
// machine), this is close to zero for every fast enough flag set;
// BenchmarkBacklog1000 then tells them apart.
func BenchmarkBurst1000(b *testing.B) {
	const n, workers = 1000, 8
	var results []flagResult
	for _, fs := range burstFlagSets {
		b.Run(fs.name, func(b *testing.B) {
			e, c, w := benchEnv(b, fs.flags...)
			effective := effectiveFlags(b, e.ctx, c)
			b.ResetTimer()
			first := time.Now()
			names, lastCreate := e.createMany(e.ns, "burst", n, workers)
			if err := w.waitFor(names, 10*time.Minute); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			done := w.lastSeen(names)
			afterLast, afterFirst := done.Sub(lastCreate), done.Sub(first)
			b.ReportMetric(afterLast.Seconds(), "s-after-last-create")
			b.ReportMetric(afterFirst.Seconds(), "s-after-first-create")
			if d := duplicates(e.list(e.ns, "burst-")); len(d) > 0 {
				b.Errorf("addresses held twice: %v", d)
			}
			r := flagResult{name: fs.name, flags: effective, d: afterLast, detail: fmt.Sprintf(
				"all %d addresses %.2f s after the last create (%.2f s after the first; the creates took %.2f s)",
				n, afterLast.Seconds(), afterFirst.Seconds(), lastCreate.Sub(first).Seconds())}
			results = append(results, r)
			writeResult(b, "burst-1000-"+fs.name, fmt.Sprintf("%s\n  %s\n  %s\n", effective, r.detail, metallbBurstRef))
		})
	}
	compareFlagSets(b, "burst-1000",
		fmt.Sprintf("1,000 Services created at once (%d client goroutines), time from the last create until all have addresses:", workers),
		results, metallbBurstRef)
}

// BenchmarkBacklog1000 measures the CCM's own throughput: 1,000 Services
// are created while no CCM runs, then the CCM starts, and the time until
// all have addresses is measured, for each flag set but upstream's (whose
// 20 QPS limit BenchmarkBurst1000 already shows, at minutes per run).
func BenchmarkBacklog1000(b *testing.B) {
	const n, workers = 1000, 8
	reps := benchutil.Reps() // each flag set that many times, round-robin, for medians
	runs := map[string][]time.Duration{}
	rates := map[string][]float64{}
	effective := map[string]string{}
	var order []string
	for rep := 1; rep <= reps; rep++ {
		for _, fs := range burstFlagSets {
			if fs.name == "upstream-defaults" {
				continue
			}
			if rep == 1 {
				order = append(order, fs.name)
			}
			name := fs.name
			if reps > 1 {
				name = fmt.Sprintf("%s-rep%d", fs.name, rep)
			}
			b.Run(name, func(b *testing.B) {
				e, w := benchSetup(b)
				c := benchCCM(b, fs.flags...)
				names, _ := e.createMany(e.ns, "backlog", n, workers)
				b.ResetTimer()
				start := time.Now()
				if err := c.Start(); err != nil {
					b.Fatal(err)
				}
				healthy := time.Since(start)
				if err := w.waitFor(names, 10*time.Minute); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				done := w.lastSeen(names).Sub(start)
				rate := float64(n) / (done - healthy).Seconds()
				b.ReportMetric(done.Seconds(), "s-start-to-all-ips")
				b.ReportMetric(rate, "services/s")
				if d := duplicates(e.list(e.ns, "backlog-")); len(d) > 0 {
					b.Errorf("addresses held twice: %v", d)
				}
				effective[fs.name] = effectiveFlags(b, e.ctx, c)
				runs[fs.name] = append(runs[fs.name], done)
				rates[fs.name] = append(rates[fs.name], rate)
			})
		}
	}
	var results []flagResult
	for _, name := range order {
		ds := runs[name]
		if len(ds) == 0 {
			continue
		}
		var each []string
		for _, d := range ds {
			each = append(each, fmt.Sprintf("%.2f", d.Seconds()))
		}
		sorted := slices.Sorted(slices.Values(ds))
		med := sorted[(len(sorted)-1)/2]
		rs := slices.Sorted(slices.Values(rates[name]))
		results = append(results, flagResult{name: name, flags: effective[name], d: med, detail: fmt.Sprintf(
			"all %d pending Services have addresses %.2f s after the CCM started (median of %d: %s s; %.0f Services/s once healthy)",
			n, med.Seconds(), len(ds), strings.Join(each, ", "), rs[(len(rs)-1)/2])})
	}
	note := "(MetalLB publishes no such figure.)"
	if reps == 1 {
		note = "One run per flag set: set " + benchutil.RepsEnv + "=3 for medians before acting on a difference.\n" + note
	}
	compareFlagSets(b, "backlog-1000",
		"1,000 Services pending when the CCM starts, time from its start until all have addresses:",
		results, note)
}

// effectiveFlags reads the throughput settings the CCM really runs with
// from its /configz, so the shipped defaults are reported as provider/app
// sets them rather than as this file believes they are.
func effectiveFlags(b *testing.B, ctx context.Context, c *ccm.CCM) string {
	b.Helper()
	code, body, err := c.Get(ctx, cp.AdminConfig(), "/configz")
	if err != nil || code != 200 {
		b.Fatalf("GET /configz: %d %v: %.300s", code, err, body)
	}
	var cz struct {
		CCM struct {
			Generic struct {
				ClientConnection struct {
					QPS   float64
					Burst int
				}
			}
			ServiceController struct {
				ConcurrentServiceSyncs int
			}
		} `json:"cloudcontrollermanager.config.k8s.io"`
	}
	if err := json.Unmarshal([]byte(body), &cz); err != nil {
		b.Fatalf("GET /configz: %v: %.300s", err, body)
	}
	return fmt.Sprintf("--concurrent-service-syncs=%d --kube-api-qps=%g --kube-api-burst=%d",
		cz.CCM.ServiceController.ConcurrentServiceSyncs, cz.CCM.Generic.ClientConnection.QPS, cz.CCM.Generic.ClientConnection.Burst)
}

// BenchmarkRestartWith1000 kills the CCM (SIGKILL) while 1,000 Services
// hold addresses, starts it again, creates one new Service as soon as the
// CCM is healthy, and measures the time from the restart to that Service's
// address, and until every old Service has been synced again.
func BenchmarkRestartWith1000(b *testing.B) {
	const n = 1000
	e, c, w := benchEnv(b)
	names, _ := e.createMany(e.ns, "held", n, 8)
	if err := w.waitFor(names, 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	if err := c.Kill(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	restart := time.Now()
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	healthy := time.Since(restart)
	e.create(e.ns, lbService("after-restart"))
	created := time.Now()
	if err := w.waitFor([]string{"after-restart"}, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	at, _ := w.seen("after-restart")
	b.StopTimer()
	// +1 for the probe, +1 for the new Service.
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	drained, err := waitQueueDrained(ctx, c, n+2, 5*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	resynced := drained.Sub(restart)
	newIP := at.Sub(restart)
	b.ReportMetric(newIP.Seconds(), "s-restart-to-new-ip")
	b.ReportMetric(at.Sub(created).Seconds(), "s-create-to-new-ip")
	writeResult(b, "restart-1000", fmt.Sprintf(
		"restart (SIGKILL, start again) with %d Services holding addresses, shipped defaults:\n"+
			"  new Service has an address %.2f s after the restart (healthy after %.2f s; %.2f s after its create)\n"+
			"  every old Service synced again %.2f s after the restart (seen by polling /metrics every 50 ms)\n"+
			"  MetalLB v0.16.1: new IP ~%.0f s after a restart with 1,000 Services\n",
		n, newIP.Seconds(), healthy.Seconds(), at.Sub(created).Seconds(), resynced.Seconds(), metallbRestartNewIP.Seconds()))
}
