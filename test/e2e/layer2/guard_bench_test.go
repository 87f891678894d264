package layer2

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
)

// rotations is how many complete key rotations BenchmarkKeyRotation runs.
const rotations = 3

// BenchmarkKeyRotation rotates the memberlist key three times across the
// three nodes, each of the three steps rolled out node by node with a
// second between nodes, while the client watches six IPs: who answers
// them (ARP/NDP every ~200 ms) and whether requests succeed (every
// ~100 ms). It reports the failed requests and the who-has probes that
// two nodes answered; both must be 0.
func BenchmarkKeyRotation(b *testing.B) {
	loadAtStart = benchutil.LoadAvg()
	tb := newTestbedWithin(b, benchWithin)
	if os.Getenv("L2BENCH_V") == "" {
		tb.ExtraArgs = shippedArgs
	}
	tb.startRotating()
	owners := tb.spread(guardIPs...)
	b.ResetTimer()
	w := tb.watchIPs(guardIPs...)
	for r := range rotations {
		// Each rotation goes from key r to key r+1, by the three steps.
		old, next := fmt.Sprintf("key-%d", r), fmt.Sprintf("key-%d", r+1)
		steps := []map[string][]byte{
			{"secretkey": []byte(old), "accepted-key-next": []byte(next)},
			{"secretkey": []byte(next), "accepted-key-old": []byte(old)},
			{"secretkey": []byte(next)},
		}
		if r == 0 {
			// startRotating's Secrets hold "old-key".
			steps[0]["secretkey"] = []byte("old-key")
			steps[1]["accepted-key-old"] = []byte("old-key")
		}
		for _, step := range steps {
			for _, h := range tb.Lab.Nodes() {
				tb.updateSecret("rotate-"+h.Name(), step)
				time.Sleep(rotationPause)
			}
		}
	}
	w.done()
	b.StopTimer()
	var failed, doubles, moved int
	for ip, o := range owners {
		bad, _ := w.failed(ip, "", 0, w.since())
		failed += len(bad)
		doubles += len(w.doubles(ip))
		elsewhere, _ := w.failed(ip, o, 0, w.since())
		moved += len(elsewhere) - len(bad)
	}
	conflicts := 0
	for _, h := range tb.Lab.Nodes() {
		conflicts += tb.conflicts(h)
	}
	probes, requests := w.counts()
	b.ReportMetric(float64(failed), "failed-requests")
	b.ReportMetric(float64(doubles), "two-answerer-probes")
	var text strings.Builder
	fmt.Fprintf(&text, "layer2 memberlist key rotation: %d rotations of the key across three nodes, each of the three steps\n"+
		"(accept the new key, make it primary, drop the old one) applied node by node, %v apart, while the client\n"+
		"watches %d IPs (IPv4 and IPv6):\n\n", rotations, rotationPause, len(guardIPs))
	fmt.Fprintf(&text, "  duration                 %8.1f s\n", w.since().Seconds())
	fmt.Fprintf(&text, "  requests                 %8d\n", requests)
	fmt.Fprintf(&text, "  failed requests          %8d   (target 0)\n", failed)
	fmt.Fprintf(&text, "  served by another node   %8d   (an IP that moved; target 0)\n", moved)
	fmt.Fprintf(&text, "  who-has probes           %8d\n", probes)
	fmt.Fprintf(&text, "  answered by two nodes    %8d   (target 0)\n", doubles)
	fmt.Fprintf(&text, "  address conflicts        %8d   (baremetal_announcer_address_conflicts_total, all nodes; target 0)\n", conflicts)
	writeResult(b, "layer2-key-rotation", text.String())
}

// BenchmarkUnservableTakeover takes the owner's data interface down
// while its announcer stays a live member, 10 times, and measures the
// time from the link going down to the first client request answered by
// the next owner. Between trials the link comes back and the owner
// takes its IP back.
func BenchmarkUnservableTakeover(b *testing.B) {
	loadAtStart = benchutil.LoadAvg()
	tb := newTestbedWithin(b, benchWithin)
	if os.Getenv("L2BENCH_V") == "" {
		tb.ExtraArgs = shippedArgs
	}
	macs := tb.useDataPorts()
	tb.startAll()
	tb.createService("data", cluster, dataVIP)
	o := expectedOwner(dataVIP, allNodes...)
	next := expectedOwner(dataVIP, without(allNodes, o)...)
	tb.waitServedVia(dataVIP, o, macs[o])
	var took, back []time.Duration
	b.ResetTimer()
	for i := range trials {
		start := time.Now()
		tb.setLink(o, "data0", false)
		d := tb.firstAnswerFrom(dataVIP, next, start)
		took = append(took, d)
		if testing.Verbose() {
			b.Logf("trial %d: data0 of %s down, %s served by %s after %v", i+1, o, dataVIP, next, d)
		}
		tb.waitServedVia(dataVIP, next, macs[next])
		tb.setLink(o, "data0", true)
		back = append(back, tb.waitServedVia(dataVIP, o, macs[o]))
		for _, h := range tb.Lab.Nodes() {
			tb.waitMembers(h, 3)
		}
	}
	b.StopTimer()
	sorted := slices.Sorted(slices.Values(took))
	p50, worst := benchutil.Percentile(sorted, 50), sorted[len(sorted)-1]
	b.ReportMetric(benchutil.Millis(p50), "takeover-p50-ms")
	b.ReportMetric(benchutil.Millis(worst), "takeover-max-ms")
	var each []string
	for _, d := range took {
		each = append(each, fmt.Sprintf("%.0f", benchutil.Millis(d)))
	}
	sortedBack := slices.Sorted(slices.Values(back))
	var text strings.Builder
	fmt.Fprintf(&text, "layer2 takeover from an owner that cannot announce: the owner's data interface (the pool's\n"+
		"interfaces: [data0]) goes down while its announcer stays a live member on eth0; time from the link going\n"+
		"down to the first client request answered by the next owner, %d trials (IPv4, three nodes):\n\n", trials)
	fmt.Fprintf(&text, "  %8s %8s %8s   %s\n", "p50", "max", "min", "all trials (ms)")
	fmt.Fprintf(&text, "  %5.0f ms %5.0f ms %5.0f ms   %s\n", benchutil.Millis(p50), benchutil.Millis(worst), benchutil.Millis(sorted[0]), strings.Join(each, " "))
	fmt.Fprintf(&text, "\n  back to the owner once the link is up (settle time %v included): p50 %.0f ms, max %.0f ms\n",
		500*time.Millisecond, benchutil.Millis(benchutil.Percentile(sortedBack, 50)), benchutil.Millis(sortedBack[len(sortedBack)-1]))
	fmt.Fprintf(&text, "  target: within the failover time (crash p50 396 ms, bench/results/layer2-failover.txt)\n")
	writeResult(b, "layer2-unservable-takeover", text.String())
}
