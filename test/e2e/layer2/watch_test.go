package layer2

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// Pace of a watch: per IP, an ARP/NDP who-has every arpEvery, each
// collecting answers for arpWait, and an HTTP request every httpEvery,
// each allowed httpWait. A request fails only when no node answers it
// within httpWait: a VIP without an answerer (a black hole) fails every
// request, while on this loaded two-core machine a single slow one is
// the scheduler's doing.
const (
	arpEvery  = 60 * time.Millisecond
	arpWait   = 150 * time.Millisecond
	httpEvery = 60 * time.Millisecond
	httpWait  = time.Second
)

// probe is one who-has from the client and the nodes that answered it.
type probe struct {
	at        time.Duration
	answerers []string
}

// request is one HTTP request from the client.
type request struct {
	at   time.Duration
	node string
	err  error
}

// watch asks the LAN about IPs from the client, continuously, as a user
// of the VIPs would see them: who answers ARP/NDP, and whether requests
// succeed and which node serves them. It is what the split-brain tests
// judge by.
type watch struct {
	tb    *testbed
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	probes   map[string][]probe
	requests map[string][]request
}

// watchIPs starts watching ips; call done to stop. Every loop is bounded
// by the stop channel and the test's context.
func (tb *testbed) watchIPs(ips ...string) *watch {
	w := &watch{tb: tb, start: time.Now(), stop: make(chan struct{}), probes: map[string][]probe{}, requests: map[string][]request{}}
	for _, ip := range ips {
		w.wg.Add(2)
		go w.loop(arpEvery, func() {
			macs, err := tb.Lab.Client().Arping(tb.Ctx, ip, arpWait)
			if err != nil {
				return
			}
			p := probe{at: time.Since(w.start), answerers: tb.names(macs)}
			w.mu.Lock()
			w.probes[ip] = append(w.probes[ip], p)
			w.mu.Unlock()
		})
		go w.loop(httpEvery, func() {
			body, err := tb.Lab.Client().HTTPGet(tb.Ctx, e2e.URL(ip), httpWait)
			r := request{at: time.Since(w.start), node: strings.TrimSpace(body), err: err}
			w.mu.Lock()
			w.requests[ip] = append(w.requests[ip], r)
			w.mu.Unlock()
		})
	}
	return w
}

func (w *watch) loop(every time.Duration, f func()) {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case <-w.tb.Ctx.Done():
			return
		default:
		}
		f()
		select {
		case <-w.stop:
			return
		case <-time.After(every):
		}
	}
}

// done stops the watch and waits for its last probes.
func (w *watch) done() {
	close(w.stop)
	w.wg.Wait()
}

// since is the time elapsed since the watch started, to mark moments.
func (w *watch) since() time.Duration { return time.Since(w.start) }

// doubles returns the probes of ip that two nodes or more answered.
func (w *watch) doubles(ip string) []probe {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []probe
	for _, p := range w.probes[ip] {
		if len(p.answerers) > 1 {
			out = append(out, p)
		}
	}
	return out
}

// answeredBy returns the probes of ip in [from, to) that node answered.
func (w *watch) answeredBy(ip, node string, from, to time.Duration) []probe {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []probe
	for _, p := range w.probes[ip] {
		if p.at >= from && p.at < to && slices.Contains(p.answerers, node) {
			out = append(out, p)
		}
	}
	return out
}

// failed returns the requests to ip in [from, to) that failed or were
// served by another node than want ("" accepts any node).
func (w *watch) failed(ip, want string, from, to time.Duration) (bad []request, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.requests[ip] {
		if r.at < from || r.at >= to {
			continue
		}
		total++
		if r.err != nil || want != "" && r.node != want {
			bad = append(bad, r)
		}
	}
	return bad, total
}

// counts sums the probes and requests made.
func (w *watch) counts() (probes, requests int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ps := range w.probes {
		probes += len(ps)
	}
	for _, rs := range w.requests {
		requests += len(rs)
	}
	return probes, requests
}

// conflicts sums baremetal_announcer_address_conflicts_total of the
// announcer of h.
func (tb *testbed) conflicts(h *lab.Host) int {
	tb.T.Helper()
	sum := 0
	sc := bufio.NewScanner(strings.NewReader(tb.Metrics(h)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "baremetal_announcer_address_conflicts_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += int(v)
		}
	}
	return sum
}

// noConflicts fails the test if an announcer counted a conflict.
func (tb *testbed) noConflicts(hosts ...*lab.Host) {
	tb.T.Helper()
	for _, h := range hosts {
		if n := tb.conflicts(h); n != 0 {
			tb.T.Errorf("%s counted %d address conflicts, want 0", h.Name(), n)
		}
	}
}

// describe lists probes for a failure message.
func describe(ps []probe) string {
	var b strings.Builder
	for i, p := range ps {
		if i == 5 {
			fmt.Fprintf(&b, " ... (%d in all)", len(ps))
			break
		}
		fmt.Fprintf(&b, " %v:%v", p.at.Round(time.Millisecond), p.answerers)
	}
	return b.String()
}

// describeRequests lists requests for a failure message.
func describeRequests(rs []request) string {
	var b strings.Builder
	for i, r := range rs {
		if i == 5 {
			fmt.Fprintf(&b, " ... (%d in all)", len(rs))
			break
		}
		fmt.Fprintf(&b, " %v:%q/%v", r.at.Round(time.Millisecond), r.node, r.err)
	}
	return b.String()
}
