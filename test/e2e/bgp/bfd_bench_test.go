package bgp

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
)

// BenchmarkSilentNodeToNexthopGone freezes an announcer (SIGSTOP: its TCP
// sessions stay open, nothing more is sent, as when a node's kernel hangs
// or a switch in the path fails) and measures the time until the router
// no longer routes through the node: its next hop gone from FRR's RIB
// (zebra) and from the router's kernel. Ten trials rotating over the
// nodes, with BFD (100 ms x 3, hold time 30 s) and, for contrast, without
// BFD (the lab's hold time of 3 s; 90 s by default). Each node is thawed
// and back in the ECMP set before the next trial. Written to
// bench/results/bgp-bfd.txt.
func BenchmarkSilentNodeToNexthopGone(b *testing.B) {
	const trials = 10
	type result struct {
		rib, kernel []time.Duration
	}
	run := func(opts options, limit time.Duration) result {
		tb := newTestbed(b, opts)
		tb.ExtraArgs = []string{"--v=0"}
		tb.startAll()
		if opts.bfdd != "" {
			tb.waitBFDUp()
		}
		ip := "198.51.100.10"
		prefix := hostPrefix(ip)
		all := []string{"node1", "node2", "node3"}
		tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, ip)
		tb.waitRoute(ip, all...)
		var r result
		for i := range trials {
			h := tb.Lab.Nodes()[i%3]
			start := time.Now()
			tb.freeze(h.Name())
			rib, kernel := tb.nexthopGone(prefix, h.IPv4().String(), start, limit)
			tb.thaw(h.Name())
			if rib == 0 || kernel == 0 {
				b.Fatalf("trial %d: %s still a next hop %v after it went silent (RIB %v, kernel %v)", i, h.Name(), limit, rib, kernel)
			}
			r.rib = append(r.rib, rib)
			r.kernel = append(r.kernel, kernel)
			tb.waitRoute(ip, all...)
			if opts.bfdd != "" {
				tb.waitBFDUp()
			}
		}
		return r
	}
	withBFD := run(options{cloudConfig: bfdPeersConfig + poolConfig, bgpd: bfdBGPD(), bfdd: bfdBFDD, within: 15 * time.Minute}, bfdHoldTime*2/3)
	without := run(options{within: 15 * time.Minute}, 20*time.Second)

	b.ReportMetric(benchutil.Millis(benchutil.Percentile(withBFD.kernel, 50)), "bfd-kernel-p50-ms")
	b.ReportMetric(benchutil.Millis(slices.Max(withBFD.kernel)), "bfd-kernel-max-ms")
	b.ReportMetric(benchutil.Millis(benchutil.Percentile(without.kernel, 50)), "holdtime-kernel-p50-ms")
	line := func(name string, ds []time.Duration) string {
		return fmt.Sprintf("    %-24s p50 %4.0f ms, max %4.0f ms, min %4.0f ms  %v\n", name, benchutil.Millis(benchutil.Percentile(ds, 50)), benchutil.Millis(slices.Max(ds)), benchutil.Millis(slices.Min(ds)), roundAll(ds))
	}
	writeBench(b, "bfd", fmt.Sprintf(
		"silent node (announcer SIGSTOPped, TCP sessions left open) -> its next hop gone at the router, %d trials each:\n"+
			"  with BFD, profile 100 ms x 3 on both ends (detection time 300 ms), BGP hold time 30 s:\n%s%s"+
			"  without BFD, BGP hold time 3 s (the lab router's timers 1 3; 90 s by default):\n%s%s"+
			"  router: FRR %s with bfdd, `neighbor NODES bfd` + `bfd profile` on the listen-range peer group\n"+
			"  poll: FRR's RIB over zebra's vty socket and `ip -j route` in the router namespace, one after the other, in a loop\n",
		trials,
		line("FRR's RIB:", withBFD.rib), line("router kernel:", withBFD.kernel),
		line("FRR's RIB:", without.rib), line("router kernel:", without.kernel),
		frrVersion()))
}

// frrVersion is the installed FRR package's version, for the results.
func frrVersion() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "frr").Output()
	if err != nil {
		return "(version unknown)"
	}
	return string(out)
}
