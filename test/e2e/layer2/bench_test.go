package layer2

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

// The benchmarks time what a user of a layer-2 IP waits for, in the lab,
// with the real announcer binaries and apiserver. Each runs its scenario
// once; run them with -benchtime=1x and without -race:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./test/e2e/layer2/
//
// Every benchmark reports its figures with b.ReportMetric, logs them next
// to MetalLB's published figures, and writes the same text to
// bench/results/<name>.txt. The figures depend on the machine and on
// whatever else runs on it; the load average at the start is recorded with
// them.
//
// For digging into a figure: L2BENCH_V=1 keeps the announcers' --v=2 logs,
// and L2BENCH_ONLY="SIGKILL" or "node crash" runs one kind of failover.

// MetalLB's published figures, for comparison.
const (
	metallbCrashP50 = 6300 * time.Millisecond // layer2, node crash
	metallbCrashMax = 7800 * time.Millisecond
	metallbRSSLowMB = 75 // speaker RSS
	metallbRSSHiMB  = 78
)

const (
	// trials of each kind of failover.
	trials = 10
	// benchWithin bounds one benchmark's whole scenario.
	benchWithin = 20 * time.Minute
	// probeEvery is how often the client starts a request while it waits
	// for the new owner. Requests overlap, so one stuck on a dead MAC
	// (up to requestWait) does not hide the ones after it.
	probeEvery = 10 * time.Millisecond
)

// shippedArgs make the announcers log as the shipped DaemonSet does (no
// -v), so that logging at V(2) does not weigh on the figures.
var shippedArgs = []string{"--v=0"}

// benchTestbed is a testbed whose announcers run as shipped, all started.
// It also notes the load average for writeResult.
func benchTestbed(b *testing.B, pool bool) *testbed {
	b.Helper()
	loadAtStart = benchutil.LoadAvg()
	tb := newTestbedWithin(b, benchWithin)
	if os.Getenv("L2BENCH_V") == "" {
		tb.ExtraArgs = shippedArgs
	}
	if pool {
		tb.useScalePool()
	}
	tb.startAll()
	return tb
}

// BenchmarkFailover measures, for an IPv4 and an IPv6 address, the time
// from the owner's failure to the first client request answered by the
// new owner, over 10 trials each: SIGKILL of the owner's announcer (the
// node itself stays up), and a node crash (the owner's switch port
// unplugged, so neither its announcer nor its HTTP server is reachable;
// it comes back as a rebooted node would, with a new announcer). Between
// trials the owner comes back and must serve again.
func BenchmarkFailover(b *testing.B) {
	tb := benchTestbed(b, false)
	// One Service per address, so that the trials' victims vary.
	v4 := []string{"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "203.0.113.205"}
	v6 := []string{"2001:db8:1::200", "2001:db8:1::201"}
	owners := tb.spread(append(slices.Clone(v4), v6...)...)

	kinds := []struct {
		name    string
		fail    func(victim string)
		recover func(victim string)
	}{
		{"SIGKILL",
			func(victim string) {
				if err := tb.Announcers[victim].Kill(); err != nil {
					b.Fatal(err)
				}
			},
			func(victim string) { tb.StartAnnouncer(tb.Lab.Host(victim)) },
		},
		{"node crash",
			func(victim string) {
				if err := tb.Lab.Unplug(tb.Lab.Host(victim)); err != nil {
					b.Fatal(err)
				}
			},
			// The crashed node reboots: its announcer starts afresh. (The
			// unplugged announcer itself must not come back: it took every
			// IP while alone, and a gratuitous ARP of those still due at
			// the instant of the Plug would pull clients to it.)
			func(victim string) {
				if err := tb.Announcers[victim].Kill(); err != nil {
					b.Fatal(err)
				}
				if err := tb.Lab.Plug(tb.Lab.Host(victim)); err != nil {
					b.Fatal(err)
				}
				tb.StartAnnouncer(tb.Lab.Host(victim))
			},
		},
	}
	type series struct {
		kind, family string
		took         []time.Duration
		stale        int
	}
	var all []series
	b.ResetTimer()
	for _, k := range kinds {
		if only := os.Getenv("L2BENCH_ONLY"); only != "" && only != k.name {
			continue
		}
		for _, fam := range []struct {
			name string
			ips  []string
		}{{"IPv4", v4}, {"IPv6", v6}} {
			s := series{kind: k.name, family: fam.name}
			staleBefore := len(tb.stale)
			for i := range trials {
				ip := fam.ips[i%len(fam.ips)]
				victim := owners[ip]
				next := expectedOwner(ip, without(allNodes, victim)...)
				tb.settle(ip, victim)
				start := time.Now()
				k.fail(victim)
				took := tb.firstAnswerFrom(ip, next, start)
				if testing.Verbose() { // the summary has every trial
					b.Logf("%s, %s trial %d: %s of %s, served by %s after %v", k.name, fam.name, i+1, ip, victim, next, took)
				}
				s.took = append(s.took, took)
				k.recover(victim)
				tb.settle(ip, victim)
			}
			s.stale = len(tb.stale) - staleBefore
			all = append(all, s)
		}
	}
	b.StopTimer()

	var text strings.Builder
	fmt.Fprintf(&text, "layer2 failover: time from the owner's failure to the first client request answered by the new owner,\n"+
		"%d trials per row (three nodes, memberlist probe 100 ms; the owner comes back between trials):\n\n", trials)
	fmt.Fprintf(&text, "  %-11s %-5s %8s %8s %8s %6s   %s\n", "failure", "addr", "p50", "max", "min", "stale", "all trials (ms)")
	for _, s := range all {
		sorted := slices.Sorted(slices.Values(s.took))
		p50, worst := benchutil.Percentile(sorted, 50), sorted[len(sorted)-1]
		tag := strings.ReplaceAll(strings.ToLower(s.kind), " ", "-") + "-" + strings.ToLower(s.family)
		b.ReportMetric(benchutil.Millis(p50), tag+"-p50-ms")
		b.ReportMetric(benchutil.Millis(worst), tag+"-max-ms")
		var each []string
		for _, d := range s.took {
			each = append(each, fmt.Sprintf("%.0f", benchutil.Millis(d)))
		}
		fmt.Fprintf(&text, "  %-11s %-5s %6.0f ms %5.0f ms %5.0f ms %6d   %s\n", s.kind, s.family, benchutil.Millis(p50), benchutil.Millis(worst), benchutil.Millis(sorted[0]), s.stale, strings.Join(each, " "))
	}
	b.ReportMetric(float64(len(tb.stale)), "stale-entries")
	fmt.Fprintf(&text, "\n  stale: times a client was left with the MAC of a node that no longer announced an IP (see settle)\n"+
		"  target: under 1 s\n  MetalLB (layer2, node crash): p50 %.1f s, max %.1f s\n", metallbCrashP50.Seconds(), metallbCrashMax.Seconds())
	writeResult(b, "layer2-failover", text.String())
}

// firstAnswerFrom starts a request from the client to ip every probeEvery,
// each bounded by requestWait, and returns how long after start the first
// answer from want arrived.
func (tb *testbed) firstAnswerFrom(ip, want string, start time.Time) time.Duration {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, settleTimeout)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below: no request outlives the call
	defer cancel()
	answered := make(chan time.Duration, 1)
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	// At most settleTimeout/probeEvery requests, and requestWait/probeEvery
	// in flight.
	for {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := tb.Lab.Client().HTTPGet(ctx, e2e.URL(ip), requestWait)
			if err == nil && strings.TrimSpace(body) == want {
				select {
				case answered <- time.Since(start):
				default:
				}
			}
		}()
		select {
		case d := <-answered:
			return d
		case <-ctx.Done():
			tb.T.Fatalf("%s not served by %s within %v", ip, want, settleTimeout)
		case <-tick.C:
		}
	}
}

// settle waits until every announcer sees three members again and ip is
// answered by owner alone, and the client's neighbour entry holds its
// MAC: the state each trial starts from.
//
// A client can be left with another node's MAC although only the owner
// answers ARP/NDP: a node that briefly took the IP (a peer wrongly thought
// dead for a moment) sent gratuitous ARP, then gave the IP back, and the
// owner, whose own view never changed, sent none. The client keeps that
// entry for as long as the other node's kube-proxy (here: its HTTP server)
// keeps answering. settle counts such a stale entry in tb.stale, after
// stuckAfter, and deletes it so that the trials can go on.
func (tb *testbed) settle(ip, owner string) {
	tb.T.Helper()
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, len(tb.Lab.Nodes()))
	}
	const stuckAfter = 8 * time.Second // the gratuitous schedule is over after 3 s
	start := time.Now()
	mac := tb.Lab.Host(owner).MAC().String()
	repaired := false
	for {
		got, err := tb.get(ip)
		m, state, nerr := tb.Lab.Client().Neighbor(ip)
		if err == nil && got == owner && nerr == nil && m == mac {
			break
		}
		if !repaired && time.Since(start) > stuckAfter && m != "" && m != mac && slices.Equal(tb.answerers(ip), []string{owner}) {
			tb.T.Logf("STALE: %s is answered by %s alone, but the client still sends to %s (%s, %s) after %v; deleting the entry",
				ip, owner, tb.names([]net.HardwareAddr{mustMAC(m)}), m, state, time.Since(start).Round(time.Millisecond))
			tb.stale = append(tb.stale, ip)
			if err := tb.Lab.Client().DelNeighbor(ip); err != nil {
				tb.T.Fatal(err)
			}
			repaired = true
		}
		if time.Since(start) > settleTimeout {
			tb.T.Fatalf("%s not served by %s (%s) within %v: answered by %q (%v), client's neighbour entry %s %s (%v), ARP/NDP answered by %v",
				ip, owner, mac, settleTimeout, got, err, m, state, nerr, tb.answerers(ip))
		}
		time.Sleep(pollEvery)
	}
	tb.Eventually(ip+" answered by "+owner+" alone", func() bool {
		return slices.Equal(tb.answerers(ip), []string{owner})
	})
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// BenchmarkHandover stops the owner's announcer with SIGTERM, 10 times per
// address family, while the client sends a request every 20 ms for 3 s.
// It reports the time to the first request answered by the new owner and
// counts the requests that failed. A request whose connection was open at
// the instant the client's neighbour entry flipped meets a node that never
// saw its SYN and is reset; that one is counted apart, as
// TestSIGTERMHandsOverWithoutAGap does.
func BenchmarkHandover(b *testing.B) {
	tb := benchTestbed(b, false)
	families := []struct{ name, ip string }{{"IPv4", "203.0.113.200"}, {"IPv6", "2001:db8:1::200"}}
	owners := tb.spread(families[0].ip, families[1].ip)

	var text strings.Builder
	fmt.Fprintf(&text, "layer2 graceful handover (SIGTERM of the owner's announcer): time to the first request answered by the\n"+
		"new owner, and requests that failed, the client asking every 20 ms for 3 s; %d trials per row:\n\n", trials)
	fmt.Fprintf(&text, "  %-5s %8s %8s %9s %9s %9s %6s   %s\n", "addr", "p50", "max", "requests", "failed", "reset", "stale", "all trials (ms)")
	b.ResetTimer()
	for _, fam := range families {
		victim := owners[fam.ip]
		next := expectedOwner(fam.ip, without(allNodes, victim)...)
		var took []time.Duration
		var requests, failures, resets int
		staleBefore := len(tb.stale)
		for i := range trials {
			h := tb.handover(fam.ip, victim, next)
			if testing.Verbose() {
				b.Logf("SIGTERM, %s trial %d: %s of %s, served by %s after %v; %d of %d requests failed, %d reset in flight",
					fam.name, i+1, fam.ip, victim, next, h.switched, h.failures, h.requests, h.resets)
			}
			took = append(took, h.switched)
			requests += h.requests
			failures += h.failures
			resets += h.resets
			tb.StartAnnouncer(tb.Lab.Host(victim))
			tb.settle(fam.ip, victim)
		}
		sorted := slices.Sorted(slices.Values(took))
		p50, worst := benchutil.Percentile(sorted, 50), sorted[len(sorted)-1]
		tag := strings.ToLower(fam.name)
		b.ReportMetric(benchutil.Millis(p50), "sigterm-"+tag+"-p50-ms")
		b.ReportMetric(benchutil.Millis(worst), "sigterm-"+tag+"-max-ms")
		b.ReportMetric(float64(failures), "sigterm-"+tag+"-failed")
		b.ReportMetric(float64(resets), "sigterm-"+tag+"-reset")
		var each []string
		for _, d := range took {
			each = append(each, fmt.Sprintf("%.0f", benchutil.Millis(d)))
		}
		fmt.Fprintf(&text, "  %-5s %5.0f ms %5.0f ms %9d %9d %9d %6d   %s\n", fam.name, benchutil.Millis(p50), benchutil.Millis(worst), requests, failures, resets, len(tb.stale)-staleBefore, strings.Join(each, " "))
	}
	b.StopTimer()
	b.ReportMetric(float64(len(tb.stale)), "stale-entries")
	text.WriteString("\n  failed: no connection or no answer (target 0); reset: the one connection open at the switch;\n" +
		"  stale: times a client was left with the MAC of a node that no longer announced the IP (see settle)\n")
	writeResult(b, "layer2-handover", text.String())
}

// handoverTrial is what the client saw during one SIGTERM handover.
type handoverTrial struct {
	switched                   time.Duration
	requests, failures, resets int
}

// handover sends SIGTERM to victim's announcer, watches ip from the client
// for 3 s and waits for the announcer to exit.
func (tb *testbed) handover(ip, victim, next string) handoverTrial {
	tb.T.Helper()
	p := tb.Announcers[victim]
	var h handoverTrial
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		tb.T.Fatal(err)
	}
	lastReset := false
	for time.Since(start) < 3*time.Second {
		got, err := tb.get(ip)
		h.requests++
		switch {
		case err != nil && strings.Contains(err.Error(), "connection reset by peer") && !lastReset:
			h.resets++
			lastReset = true
		case err != nil:
			h.failures++
			tb.T.Logf("request %d at %v failed: %v", h.requests, time.Since(start), err)
		default:
			lastReset = false
			if got == next && h.switched == 0 {
				h.switched = time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h.switched == 0 {
		tb.T.Fatalf("SIGTERM of %s: %s not served by %s within 3 s", victim, ip, next)
	}
	if err := p.Wait(tb.Ctx); err != nil {
		tb.T.Fatalf("announcer of %s exited with %v after SIGTERM, want 0", victim, err)
	}
	return h
}

// BenchmarkScale5000 runs the three announcers with 5,000 layer2 Services
// (IPv6, from the scale pool) and reports their memory and CPU: idle before
// the first Service, once all are announced, and after a quiet 30 s; and
// the time from the first create until every IP is announced.
func BenchmarkScale5000(b *testing.B) {
	const n = 5000
	tb := benchTestbed(b, true)
	// Let start-up work (informer lists, memberlist join) finish.
	time.Sleep(10 * time.Second)
	idle := tb.usages(b)
	ips := scaleIPs(n)

	b.ResetTimer()
	start := time.Now()
	tb.createScale(ips)
	created := time.Since(start)
	tb.waitAnnounced(n, 5*time.Minute)
	announced := time.Since(start)
	b.StopTimer()
	loaded := tb.usages(b)
	const quiet = 30 * time.Second
	time.Sleep(quiet)
	after := tb.usages(b)

	var text strings.Builder
	fmt.Fprintf(&text, "layer2 announcer at scale: %d Services with one IPv6 address each, three announcers (shipped flags, --v=0)\n\n", n)
	fmt.Fprintf(&text, "  Services created (with status IPs) in %.1f s by 16 writers; all %d IPs announced %.1f s after the first create,\n"+
		"  %.2f s after the last\n\n", created.Seconds(), n, announced.Seconds(), (announced - created).Seconds())
	fmt.Fprintf(&text, "  %-6s %10s %12s %10s %12s %10s %14s %14s\n", "node", "idle RSS", "loaded RSS", "(anon)", "RSS +30 s", "peak HWM", "CPU to load", "CPU quiet 30 s")
	var worst struct {
		idle, loaded, after, hwm int
		cpuLoad, cpuQuiet        time.Duration
	}
	for _, h := range tb.Lab.Nodes() {
		name := h.Name()
		i, l, a := idle[name], loaded[name], after[name]
		cpuLoad, cpuQuiet := l.cpu-i.cpu, a.cpu-l.cpu
		fmt.Fprintf(&text, "  %-6s %6.1f MiB %8.1f MiB %6.1f MiB %8.1f MiB %6.1f MiB %12.2f s %12.2f s\n",
			name, mib(i.rssKB), mib(l.rssKB), mib(l.anonKB), mib(a.rssKB), mib(a.hwmKB), cpuLoad.Seconds(), cpuQuiet.Seconds())
		worst.idle, worst.loaded, worst.after = max(worst.idle, i.rssKB), max(worst.loaded, l.rssKB), max(worst.after, a.rssKB)
		worst.hwm = max(worst.hwm, a.hwmKB)
		worst.cpuLoad, worst.cpuQuiet = max(worst.cpuLoad, cpuLoad), max(worst.cpuQuiet, cpuQuiet)
		b.Logf("%s: idle VmRSS %d kB; loaded VmRSS %d kB (anon %d, file %d), VmHWM %d kB; CPU %v to load, %v in a quiet 30 s",
			name, i.rssKB, l.rssKB, l.anonKB, l.fileKB, a.hwmKB, cpuLoad, cpuQuiet)
	}
	fmt.Fprintf(&text, "\n  RSS is VmRSS, anon its RssAnon (the rest is the binary's mapped pages), peak is VmHWM\n"+
		"  (/proc/<pid>/status); CPU is utime+stime (/proc/<pid>/stat). CPU to load is spent while the Services\n"+
		"  arrive: a full pass, at most every 100 ms, over every Service. CPU quiet is mostly memberlist's\n"+
		"  100 ms probes and 50 ms gossip, the price of sub-second failure detection.\n"+
		"  MetalLB speaker RSS: %d-%d MB\n", metallbRSSLowMB, metallbRSSHiMB)
	b.ReportMetric(announced.Seconds(), "announce-all-s")
	b.ReportMetric((announced - created).Seconds(), "announce-after-last-s")
	b.ReportMetric(mib(worst.idle), "rss-idle-MiB")
	b.ReportMetric(mib(worst.loaded), "rss-loaded-MiB")
	b.ReportMetric(mib(worst.hwm), "hwm-MiB")
	b.ReportMetric(worst.cpuLoad.Seconds(), "cpu-load-s")
	b.ReportMetric(worst.cpuQuiet.Seconds(), "cpu-quiet30s-s")
	writeResult(b, "layer2-scale-5000", text.String())
}

// usages reads every announcer's memory and CPU time.
func (tb *testbed) usages(b *testing.B) map[string]usage {
	b.Helper()
	out := map[string]usage{}
	for _, h := range tb.Lab.Nodes() {
		u, err := readUsage(tb.Announcers[h.Name()].Pid())
		if err != nil {
			b.Fatal(err)
		}
		out[h.Name()] = u
	}
	return out
}

func mib(kB int) float64 { return float64(kB) / 1024 }

// writeResult stores text in bench/results (see benchutil.WriteResult) and
// prints it (to stdout: b.Log would cut it to ten lines without -v).
func writeResult(b *testing.B, name, text string) {
	b.Helper()
	fmt.Print(benchutil.WriteResult(b, name, "at start "+loadAtStart, "announcer built from this tree, lab of three network-namespace nodes", text))
}

// loadAtStart is the load average when the running benchmark started.
var loadAtStart string
