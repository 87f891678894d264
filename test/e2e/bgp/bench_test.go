package bgp

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// The benchmarks time what a user of BGP waits for, with the real
// announcers (logging as shipped, --v=0) against real FRR. Each runs its
// scenario once; run them with -benchtime=1x (bench/run.sh does):
//
//	go test -run '^$' -bench . -benchtime=1x -timeout 30m ./test/e2e/bgp/
//
// FRR's BGP table is read over bgpd's vty socket, a look taking about a
// millisecond (reported as the poll resolution). Each benchmark reports with b.ReportMetric and writes its
// text to bench/results/bgp-<name>.txt.

// scalePool is a large IPv6 pool for the scale benchmarks: the lab's IPv4
// BGP pool has 256 addresses.
const scalePool = "2001:db8:3::/112"

// benchConfig is the default config plus the scale pool.
const benchConfig = peersConfig + poolConfig + "- name: scale\n  protocol: bgp\n  addresses: [" + scalePool + "]\n"

// benchTestbed is a testbed of the given duration with every announcer
// running, logging as shipped.
func benchTestbed(b *testing.B, within time.Duration) *testbed {
	b.Helper()
	tb := newTestbed(b, options{cloudConfig: benchConfig, within: within})
	tb.ExtraArgs = []string{"--v=0"}
	tb.startAll()
	return tb
}

// BenchmarkStatusToFRR writes the status IP of 200 Services one after
// another, 0.3 s apart, and measures, for each, the time from the status write to the
// route being in FRR's BGP table: from the first node, and from all three
// (the full ECMP set).
func BenchmarkStatusToFRR(b *testing.B) {
	const n = 200
	tb := benchTestbed(b, 15*time.Minute)
	svcs := tb.createServices("lat", n)
	var first, all, looks []time.Duration
	for i, svc := range svcs {
		// A user's Service arrives at an idle announcer: let the passes
		// of the previous one (at most every 100 ms) finish first.
		time.Sleep(300 * time.Millisecond)
		ip := fmt.Sprintf("198.51.100.%d", 20+i)
		prefix := hostPrefix(ip)
		start := time.Now()
		if _, err := tb.SetStatus(svc, ip); err != nil {
			b.Fatal(err)
		}
		var gotFirst time.Duration
		deadline := start.Add(settleTimeout)
		for {
			lookStart := time.Now()
			paths, _ := tb.bgpPaths(prefix)
			looks = append(looks, time.Since(lookStart))
			if len(paths) > 0 && gotFirst == 0 {
				gotFirst = time.Since(start)
			}
			if len(paths) == 3 {
				all = append(all, time.Since(start))
				first = append(first, gotFirst)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d paths in FRR after %v", prefix, len(paths), settleTimeout)
			}
		}
	}
	f50, f99 := benchutil.Percentile(first, 50), benchutil.Percentile(first, 99)
	a50, a99 := benchutil.Percentile(all, 50), benchutil.Percentile(all, 99)
	b.ReportMetric(benchutil.Millis(f50), "first-p50-ms")
	b.ReportMetric(benchutil.Millis(f99), "first-p99-ms")
	b.ReportMetric(benchutil.Millis(a50), "all3-p50-ms")
	b.ReportMetric(benchutil.Millis(a99), "all3-p99-ms")
	writeBench(b, "status-to-frr", fmt.Sprintf(
		"status write -> route in FRR's BGP table, %d Services one after another (0.3 s apart), 3 announcers, eBGP:\n"+
			"  from the first node: p50 %.0f ms, p99 %.0f ms, min %.0f ms, max %.0f ms\n"+
			"  from all 3 nodes (full ECMP set): p50 %.0f ms, p99 %.0f ms, min %.0f ms, max %.0f ms\n"+
			"  poll resolution (one look at bgpd over its vty socket): p50 %.0f ms\n"+
			"  the announcer coalesces Kubernetes changes into passes at most every 100 ms (MinPassInterval)\n",
		n, benchutil.Millis(f50), benchutil.Millis(f99), benchutil.Millis(slices.Min(first)), benchutil.Millis(slices.Max(first)),
		benchutil.Millis(a50), benchutil.Millis(a99), benchutil.Millis(slices.Min(all)), benchutil.Millis(slices.Max(all)), benchutil.Millis(benchutil.Percentile(looks, 50))))
}

// Benchmark1000Services writes the status IPs of 1,000 Services at once
// (16 writers) and measures when FRR holds all their routes from every
// node.
func Benchmark1000Services(b *testing.B) {
	const n = 1000
	tb := benchTestbed(b, 20*time.Minute)
	svcs := tb.createServices("burst", n)
	start := time.Now()
	lastWrite := tb.writeStatuses(svcs, scaleIP)
	allIn := tb.waitPrefixes("ipv6", n, 5*time.Minute)
	fromFirst, fromLast := allIn.Sub(start), allIn.Sub(lastWrite)
	b.ReportMetric(fromFirst.Seconds(), "all-after-first-write-s")
	b.ReportMetric(fromLast.Seconds(), "all-after-last-write-s")
	writeBench(b, "1000-services-to-frr", fmt.Sprintf(
		"%d Services' status IPs written at once (16 writers, %.2f s for all writes), IPv6 routes, 3 announcers:\n"+
			"  every route in FRR from all 3 nodes: %.2f s after the first write, %.2f s after the last\n",
		n, lastWrite.Sub(start).Seconds(), fromFirst.Seconds(), fromLast.Seconds()))
}

// BenchmarkSIGKILLToNexthopGone kills an announcer (SIGKILL) and measures
// the time until FRR's BGP table no longer has the node as a next hop of
// a route: the kernel resets the node's TCP sessions, and FRR drops them.
// Five kills, rotating over the nodes; each node is restarted and back in
// the ECMP set before the next.
func BenchmarkSIGKILLToNexthopGone(b *testing.B) {
	const kills = 5
	tb := benchTestbed(b, 15*time.Minute)
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10")
	prefix := hostPrefix("198.51.100.10")
	tb.waitRoute("198.51.100.10", "node1", "node2", "node3")
	var took, looks []time.Duration
	for i := range kills {
		h := tb.Lab.Nodes()[i%3]
		addr := h.IPv4().String()
		start := time.Now()
		if err := tb.Announcers[h.Name()].Kill(); err != nil {
			b.Fatal(err)
		}
		for {
			lookStart := time.Now()
			nh := tb.bgpNexthops(prefix)
			looks = append(looks, time.Since(lookStart))
			if !slices.Contains(nh, addr) {
				took = append(took, time.Since(start))
				break
			}
			if time.Since(start) > settleTimeout {
				b.Fatalf("%s still a next hop %v after SIGKILL", h.Name(), settleTimeout)
			}
		}
		tb.StartAnnouncer(h)
		tb.waitRoute("198.51.100.10", "node1", "node2", "node3")
	}
	slices.Sort(took)
	b.ReportMetric(benchutil.Millis(benchutil.Percentile(took, 50)), "median-ms")
	b.ReportMetric(benchutil.Millis(slices.Max(took)), "max-ms")
	writeBench(b, "sigkill-to-nexthop-gone", fmt.Sprintf(
		"SIGKILL of an announcer -> its next hop gone from FRR's BGP table, %d kills:\n"+
			"  median %.0f ms, min %.0f ms, max %.0f ms (each: %v)\n"+
			"  poll resolution (one look at bgpd over its vty socket): p50 %.0f ms\n"+
			"  a node that goes silent instead (power loss) is dropped after the hold time (3 s here, 90 s by default)\n",
		kills, benchutil.Millis(benchutil.Percentile(took, 50)), benchutil.Millis(took[0]), benchutil.Millis(slices.Max(took)), roundAll(took), benchutil.Millis(benchutil.Percentile(looks, 50))))
}

// BenchmarkMemory5000 measures an announcer's memory with 5,000 bgp
// Services, all announced, against its memory with none: without BFD, and
// with BFD (100 ms x 3) on both sessions, side by side.
func BenchmarkMemory5000(b *testing.B) {
	const n = 5000
	type row struct {
		mode          string
		before, after memUsage
		allIn         time.Duration
		// gobgp is pprof's share of the heap in GoBGP's frames; top its
		// largest holders.
		gobgp, top string
	}
	var rows []row
	for _, withBFD := range []bool{false, true} {
		r := row{mode: "without BFD"}
		opts := options{cloudConfig: benchConfig, within: 25 * time.Minute}
		if withBFD {
			r.mode = "with BFD 100 ms x 3"
			opts.cloudConfig = bfdPeersConfig + poolConfig + "- name: scale\n  protocol: bgp\n  addresses: [" + scalePool + "]\n"
			opts.bgpd, opts.bfdd = bfdBGPD(), bfdBFDD
		}
		b.Run(r.mode, func(b *testing.B) {
			tb := newTestbed(b, opts)
			tb.ExtraArgs = []string{"--v=0", "--profiling"}
			tb.startAll()
			if withBFD {
				tb.waitBFDUp()
			}
			h := tb.Lab.Node(1)
			time.Sleep(2 * time.Second) // settle after start
			r.before = tb.memory(h)
			svcs := tb.createServices("mem", n)
			start := time.Now()
			tb.writeStatuses(svcs, scaleIP)
			tb.waitPrefixes("ipv6", n, 10*time.Minute)
			r.allIn = time.Since(start)
			time.Sleep(12 * time.Second) // a resync pass and a GC cycle
			r.after = tb.memory(h)
			r.gobgp, r.top = tb.heapProfile(h)
			b.ReportMetric(float64(r.after.rss)/(1<<20), "rss-MiB")
		})
		rows = append(rows, r)
	}
	var text strings.Builder
	fmt.Fprintf(&text, "announcer memory (node1), %d bgp Services with one IPv6 each, all announced to FRR over 2 sessions (IPv4, IPv6);\n"+
		"RSS = anon + file (the mapped binary); heap is go_memstats_heap_inuse_bytes; \"none\" is before the first Service:\n\n", n)
	fmt.Fprintf(&text, "  %-22s %12s %12s %12s %14s %16s  %s\n", "", "RSS MiB", "anon MiB", "file MiB", "heap MiB", "B per Service", "all in")
	for _, r := range rows {
		fmt.Fprintf(&text, "  %-22s %5.1f (%4.1f) %5.1f (%4.1f) %5.1f (%4.1f) %6.1f (%5.1f) %16.0f  %.1f s\n", r.mode,
			mibOf(r.after.rss), mibOf(r.before.rss), mibOf(r.after.anon), mibOf(r.before.anon), mibOf(r.after.file), mibOf(r.before.file),
			r.after.heap/(1<<20), r.before.heap/(1<<20), float64(r.after.rss-r.before.rss)/n, r.allIn.Seconds())
	}
	text.WriteString("  (in parentheses: with no Service)\n\nwhere the heap goes, from the announcer's /debug/pprof/heap (inuse_space, after a GC):\n")
	for _, r := range rows {
		fmt.Fprintf(&text, "\n  %s: in GoBGP's frames (github.com/osrg/gobgp): %s\n%s", r.mode, r.gobgp, r.top)
	}
	writeBench(b, "memory-5000-services", text.String())
}

// heapProfile reads the announcer's heap profile and returns pprof's
// summary of the part held in GoBGP's frames, and its top holders by
// cumulative size.
func (tb *testbed) heapProfile(h *lab.Host) (gobgp, top string) {
	tb.T.Helper()
	body, err := tb.Scrape(h, "/debug/pprof/heap?gc=1", 30*time.Second)
	if err != nil {
		return "not read: " + err.Error(), ""
	}
	f := filepath.Join(tb.T.TempDir(), "heap.pb.gz")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		tb.T.Fatal(err)
	}
	pprof := func(args ...string) string {
		out, err := exec.CommandContext(tb.Ctx, "go", append([]string{"tool", "pprof", "-sample_index=inuse_space"}, append(args, f)...)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("pprof %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	for _, l := range strings.Split(pprof("-top", "-nodecount=1", "-focus=osrg/gobgp"), "\n") {
		if strings.HasPrefix(l, "Showing nodes accounting for") {
			gobgp = strings.TrimPrefix(l, "Showing nodes accounting for ")
		}
	}
	var lines []string
	for _, l := range strings.Split(pprof("-top", "-cum", "-nodecount=12"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "File:") && !strings.HasPrefix(l, "Type:") && !strings.HasPrefix(l, "Time:") {
			lines = append(lines, "    "+l)
		}
	}
	return gobgp, strings.Join(lines, "\n") + "\n"
}

func mibOf(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// scaleIP is the i-th address of scalePool, skipping ::0.
func scaleIP(i int) string {
	p := netip.MustParsePrefix(scalePool)
	a := p.Addr().As16()
	v := i + 1
	a[14], a[15] = byte(v>>8), byte(v)
	return netip.AddrFrom16(a).String()
}

// createServices creates n LoadBalancer Services without status, 16 at a
// time.
func (tb *testbed) createServices(prefix string, n int) []*corev1.Service {
	tb.T.Helper()
	out := make([]*corev1.Service, n)
	tb.parallel(n, func(i int) error {
		s, err := tb.CS.CoreV1().Services(tb.NS).Create(tb.Ctx, lbService(fmt.Sprintf("%s-%d", prefix, i), corev1.ServiceExternalTrafficPolicyCluster), metav1.CreateOptions{})
		out[i] = s
		return err
	})
	return out
}

// writeStatuses gives Service i the status IP ip(i), 16 writes at a time,
// and returns when the last write returned.
func (tb *testbed) writeStatuses(svcs []*corev1.Service, ip func(int) string) time.Time {
	tb.T.Helper()
	tb.parallel(len(svcs), func(i int) error {
		_, err := tb.SetStatus(svcs[i], ip(i))
		return err
	})
	return time.Now()
}

// parallel runs f(0..n-1) on 16 workers and fails the test on the first
// error.
func (tb *testbed) parallel(n int, f func(int) error) {
	tb.T.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		tb.T.Fatal(first)
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// waitPrefixes waits until FRR has received n prefixes of family af
// ("ipv4" or "ipv6") from each of the three nodes, and returns when.
func (tb *testbed) waitPrefixes(af string, n int, within time.Duration) time.Time {
	tb.T.Helper()
	deadline := time.Now().Add(within)
	var got map[string]int
	for time.Now().Before(deadline) {
		var sum struct {
			Peers map[string]struct {
				PfxRcd int `json:"pfxRcd"`
			} `json:"peers"`
		}
		if err := tb.showJSON("bgpd", "show bgp "+af+" unicast summary json", &sum); err == nil {
			got = map[string]int{}
			done := 0
			for addr, p := range sum.Peers {
				got[addr] = p.PfxRcd
				if p.PfxRcd >= n {
					done++
				}
			}
			if done >= 3 {
				return time.Now()
			}
		}
		time.Sleep(pollEvery)
	}
	tb.T.Fatalf("FRR did not get %d %s prefixes from 3 nodes within %v: %v", n, af, within, got)
	return time.Time{}
}

type memUsage struct {
	rss, anon, file int64
	heap            float64
}

// memory reads the announcer's resident set size and Go heap in use.
func (tb *testbed) memory(h *lab.Host) memUsage {
	tb.T.Helper()
	p := tb.Announcers[h.Name()]
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "status"))
	if err != nil {
		tb.T.Fatal(err)
	}
	var m memUsage
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		case "RssFile:":
			m.file = kb << 10
		}
	}
	body, err := tb.Scrape(h, "/metrics", 2*time.Second)
	if err != nil {
		tb.T.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			m.heap, _ = strconv.ParseFloat(v, 64)
		}
	}
	return m
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// writeBench stores text as bench/results/bgp-<name>.txt, with when, where
// and under which load it was measured, and logs it.
func writeBench(b *testing.B, name, text string) {
	b.Helper()
	b.Log("\n" + text)
	setup := fmt.Sprintf("%d CPUs shared; FRR in the router namespace, 3 announcers (bin built from this tree)", numCPU())
	benchutil.WriteResult(b, "bgp-"+name, "at start "+benchutil.LoadAvg(), setup, text)
}
