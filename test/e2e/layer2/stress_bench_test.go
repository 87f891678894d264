package layer2

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// stressDuration is how long BenchmarkFalseFailoversUnderStress keeps the
// machine under stress: $STRESS_DURATION (a Go duration; issue 11 §3 asks
// for at least 10m). Unset, the benchmark is skipped: bench/run.sh would
// run it within the package's 20-minute timeout, beside the others.
func stressDuration(b *testing.B) time.Duration {
	v := os.Getenv("STRESS_DURATION")
	if v == "" {
		b.Skip("set STRESS_DURATION=10m to run the stress soak")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("STRESS_DURATION=%q: want a positive Go duration", v)
	}
	return d
}

// BenchmarkFalseFailoversUnderStress runs the three-node lab with every
// announcer alive while stress-ng keeps every core busy (two CPU workers
// per core, at the same priority as the announcers), and counts false
// failovers: the failure detector firing on a live member, and IPs handed
// from one live node to another. A client requests one VIP every 100 ms
// throughout. It writes bench/results/layer2-stress-false-failovers.txt.
func BenchmarkFalseFailoversUnderStress(b *testing.B) {
	d := stressDuration(b)
	load := benchutil.LoadAvg()
	tb := newTestbedWithin(b, d+5*time.Minute)
	tb.ExtraArgs = []string{"--v=0"}
	tb.startAll()
	ips := vips[:6]
	tb.spread(ips...)
	if err := lab.EnsurePackages(tb.Ctx, "stress-ng"); err != nil {
		b.Fatal(err)
	}
	logStart := map[string]int{}
	for name, p := range tb.Announcers {
		logStart[name] = len(p.Log())
	}
	workers := 2 * runtime.NumCPU()
	// In the client's namespace, only so that the lab stops it: it uses no
	// network. Bounded by its own --timeout as well.
	stress, err := tb.Lab.Client().Start(tb.Ctx, process.Spec{Name: "stress-ng", Path: "/usr/bin/stress-ng",
		Args: []string{"--cpu", strconv.Itoa(workers), "--timeout", strconv.Itoa(int(d.Seconds())) + "s", "--quiet"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tb.Ctx, d)
	defer cancel()
	var (
		mu              sync.Mutex
		requests, fails int
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_, err := tb.get(ips[0])
			mu.Lock()
			requests++
			if err != nil && ctx.Err() == nil {
				fails++
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	<-ctx.Done()
	wg.Wait()
	_ = stress.Stop(5 * time.Second)
	endLoad := benchutil.LoadAvg()

	detector := regexp.MustCompile(`(Suspect \w+ has failed|Marking \w+ as failed|no contact with any other announcer)`)
	handed := regexp.MustCompile(`"Withdrawn: another node announces the IP`)
	left := regexp.MustCompile(`"Member left"[^\n]*onPurpose=false`)
	var text strings.Builder
	fmt.Fprintf(&text, "layer-2 false failovers: three nodes, every announcer alive, %d IPs announced, for %v under stress-ng --cpu %d\n"+
		"(two busy workers per core, same priority as the announcers); membership at shipped timings (probe every 100 ms,\n"+
		"timeout 50 ms, suspicion multiplier 2); load average at the end %s\n\n", len(ips), d, workers, endLoad)
	fmt.Fprintf(&text, "  %-7s %18s %20s %22s\n", "node", "detector events", "members declared dead", "IPs handed to another")
	total := map[string]int{}
	for _, name := range allNodes {
		p := tb.Announcers[name]
		log := p.Log()[logStart[name]:]
		e, l, h := len(detector.FindAllString(log, -1)), len(left.FindAllString(log, -1)), len(handed.FindAllString(log, -1))
		total["detector"] += e
		total["left"] += l
		total["handed"] += h
		fmt.Fprintf(&text, "  %-7s %18d %20d %22d\n", name, e, l, h)
	}
	fmt.Fprintf(&text, "\n  client: %d of %d requests to %s failed\n  target: 0 false failovers (no member declared dead, no IP handed over)\n", fails, requests, ips[0])
	b.ReportMetric(float64(total["left"]), "false-deaths")
	b.ReportMetric(float64(total["handed"]), "handovers")
	fmt.Print(benchutil.WriteResult(b, "layer2-stress-false-failovers", "at start "+load, "announcer built from this tree, lab of three network-namespace nodes", text.String()))
}
