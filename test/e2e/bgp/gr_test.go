package bgp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// grPeersConfig is peersConfig with graceful restart offered to the
// router on both sessions.
var grPeersConfig = strings.ReplaceAll(peersConfig, "  keepalive-time: 1s\n", "  keepalive-time: 1s\n  graceful-restart: true\n")

// routeWatch is what a client behind the router saw while an announcer
// went away and came back.
type routeWatch struct {
	requests, failed int
	// changes counts the times the router's kernel route changed its set
	// of next hops; seen are the sets, in order, without repeats.
	changes int
	seen    [][]string
}

// watchRoute requests ip from the router every 50 ms and reads the
// router's kernel route for it, until stop is closed; both loops are
// bounded by the test's context as well.
func (tb *testbed) watchRoute(ctx context.Context, ip string) (stop func() routeWatch) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu sync.Mutex
		w  routeWatch
		wg sync.WaitGroup
	)
	prefix := hostPrefix(ip)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_, err := tb.get(ip)
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			w.requests++
			if err != nil {
				w.failed++
				tb.T.Logf("request %d to %s failed: %v", w.requests, ip, err)
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			hops := tb.kernelNexthops(prefix)
			mu.Lock()
			if n := len(w.seen); n == 0 || !slices.Equal(w.seen[n-1], hops) {
				if n > 0 {
					w.changes++
				}
				w.seen = append(w.seen, hops)
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() routeWatch {
		cancel()
		wg.Wait()
		return w
	}
}

// TestGracefulRestartKeepsRoutes: with graceful-restart, an announcer that
// is SIGKILLed and started again moves no flow. FRR keeps the node's
// routes as stale while it is away and takes the refreshed ones when it
// is back: a client behind the router sees no failed request and the
// router's kernel route never changes its next hops. A SIGTERM still
// withdraws first, and a node that goes silent is still dropped (at the
// hold time here, as no BFD runs).
func TestGracefulRestartKeepsRoutes(t *testing.T) {
	tb := newTestbed(t, options{cloudConfig: grPeersConfig + poolConfig})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	all := []string{"node1", "node2", "node3"}
	tb.waitRoute("198.51.100.10", all...)
	tb.waitRoute("2001:db8:2::10", all...)
	node1 := tb.Lab.Host("node1")
	if out, err := tb.show("bgpd", "show bgp neighbors "+node1.IPv4().String()); err != nil || !strings.Contains(out, "Graceful Restart Capability: advertised and received") {
		t.Fatalf("FRR does not see graceful restart negotiated with node1 (%v):\n%s", err, out)
	}

	stop := tb.watchRoute(tb.Ctx, "198.51.100.10")
	start := time.Now()
	if err := tb.Announcers["node1"].Kill(); err != nil {
		t.Fatal(err)
	}
	tb.waitSession(node1.IPv4(), false)
	tb.StartAnnouncer(node1)
	tb.waitSession(node1.IPv4(), true)
	tb.waitSession(node1.IPv6(), true)
	back := time.Since(start)
	// Watch on past the restarted speaker's End-of-RIB.
	time.Sleep(3 * time.Second)
	w := stop()
	t.Logf("node1 SIGKILLed and restarted, sessions back after %v: %d requests, %d failed; kernel next hops %v (%d changes)",
		back.Round(time.Millisecond), w.requests, w.failed, w.seen, w.changes)
	if w.failed > 0 || w.changes > 0 {
		t.Errorf("the restart cost %d failed requests and %d route changes; want none", w.failed, w.changes)
	}
	tb.waitRoute("198.51.100.10", all...)
	tb.waitRoute("2001:db8:2::10", all...)
	prefix := hostPrefix("198.51.100.10")
	tb.Eventually("node1's route no longer stale", func() bool {
		out, err := tb.show("bgpd", "show bgp ipv4 unicast "+prefix)
		return err == nil && !strings.Contains(out, "stale")
	})

	// A planned stop still drains first: the route goes while the
	// session is up.
	tb.drainsFirst("node2", prefix)
	tb.waitRoute("198.51.100.10", "node1", "node3")

	// A node that goes silent keeps no route: FRR drops it at the hold
	// time (3 s here), not after the 120 s restart time.
	tb.freeze("node3")
	took := tb.waitRoute("198.51.100.10", "node1")
	t.Logf("node3 silent (SIGSTOP): left the ECMP set %v later", took.Round(time.Millisecond))
}

// TestGracefulRestartWithBFD is the matrix of docs/bgp.md with both BFD
// (100 ms x 3) and graceful restart on: an announcer that crashes and
// restarts moves no flow, while a node that goes silent is dropped at
// BFD's speed, not after the restart time.
func TestGracefulRestartWithBFD(t *testing.T) {
	cfg := strings.ReplaceAll(bfdPeersConfig, "  bfd-profile: fast\n", "  bfd-profile: fast\n  graceful-restart: true\n")
	tb := newTestbed(t, options{cloudConfig: cfg + poolConfig, bgpd: bfdBGPD(), bfdd: bfdBFDD})
	tb.startAll()
	tb.waitBFDUp()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	all := []string{"node1", "node2", "node3"}
	tb.waitRoute("198.51.100.10", all...)
	tb.waitRoute("2001:db8:2::10", all...)
	n1, n2 := tb.Lab.Host("node1"), tb.Lab.Host("node2")

	// The announcer crashes and restarts: its TCP sessions close at once,
	// and its BFD sessions stop a little later.
	stop := tb.watchRoute(tb.Ctx, "198.51.100.10")
	start := time.Now()
	if err := tb.Announcers["node1"].Kill(); err != nil {
		t.Fatal(err)
	}
	tb.waitSession(n1.IPv4(), false)
	// Stay away past BFD's detection time, as a real restart does.
	time.Sleep(time.Second)
	tb.StartAnnouncer(n1)
	tb.waitSession(n1.IPv4(), true)
	back := time.Since(start)
	time.Sleep(3 * time.Second)
	w := stop()
	t.Logf("with BFD, node1 SIGKILLed and restarted, session back after %v: %d requests, %d failed; kernel next hops %v (%d changes)",
		back.Round(time.Millisecond), w.requests, w.failed, w.seen, w.changes)
	if w.failed > 0 || w.changes > 0 {
		t.Errorf("with BFD, the restart cost %d failed requests and %d route changes; want none", w.failed, w.changes)
	}
	tb.waitRoute("198.51.100.10", all...)
	tb.waitBFDUp()

	// The node goes silent: BFD drops it in well under the hold time.
	start = time.Now()
	tb.freeze("node2")
	rib, kernel := tb.nexthopGone(hostPrefix("198.51.100.10"), n2.IPv4().String(), start, bfdHoldTime*2/3)
	if rib == 0 || kernel == 0 {
		t.Fatalf("with graceful restart, silent node2 still a next hop %v later (RIB gone after %v, kernel after %v): kept as stale?", bfdHoldTime*2/3, rib, kernel)
	}
	t.Logf("with graceful restart, silent node2: next hop gone from FRR's RIB after %v, from the kernel after %v", rib.Round(time.Millisecond), kernel.Round(time.Millisecond))
}

// BenchmarkAnnouncerRestart SIGKILLs an announcer and starts it again, 5
// times, with graceful-restart and without, and counts what a client
// behind the router sees: failed requests (a request every 50 ms) and
// changes of the router's kernel route. It writes
// bench/results/bgp-announcer-restart.txt.
func BenchmarkAnnouncerRestart(b *testing.B) {
	const restarts = 5
	type row struct {
		mode                      string
		failed, changes, requests []int
		away                      []time.Duration
	}
	var rows []row
	for _, gr := range []bool{true, false} {
		r := row{mode: "graceful-restart: true"}
		cfg := grPeersConfig + poolConfig
		if !gr {
			r.mode, cfg = "without (default)", defaultCloudConfig
		}
		b.Run(r.mode, func(b *testing.B) {
			tb := newTestbed(b, options{cloudConfig: cfg, within: 10 * time.Minute})
			tb.ExtraArgs = []string{"--v=0"}
			tb.startAll()
			tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10")
			all := []string{"node1", "node2", "node3"}
			tb.waitRoute("198.51.100.10", all...)
			for i := range restarts {
				h := tb.Lab.Nodes()[i%3]
				stop := tb.watchRoute(tb.Ctx, "198.51.100.10")
				start := time.Now()
				if err := tb.Announcers[h.Name()].Kill(); err != nil {
					b.Fatal(err)
				}
				tb.waitSession(h.IPv4(), false)
				tb.StartAnnouncer(h)
				tb.waitSession(h.IPv4(), true)
				tb.waitRoute("198.51.100.10", all...)
				away := time.Since(start)
				time.Sleep(2 * time.Second)
				w := stop()
				b.Logf("%s, restart %d of %s: %d of %d requests failed, %d route changes, back after %v",
					r.mode, i+1, h.Name(), w.failed, w.requests, w.changes, away.Round(time.Millisecond))
				r.failed, r.changes, r.requests = append(r.failed, w.failed), append(r.changes, w.changes), append(r.requests, w.requests)
				r.away = append(r.away, away)
			}
		})
		rows = append(rows, r)
	}
	var text strings.Builder
	fmt.Fprintf(&text, "an announcer SIGKILLed and started again, %d times per row (three nodes, ECMP; a request every 50 ms from the router;\n"+
		"the router's kernel route read every 50 ms), from the kill until 2 s after the route has all three next hops again:\n\n", restarts)
	fmt.Fprintf(&text, "  %-24s  %12s  %13s   per restart: failed/requests/route changes, back after\n", "mode", "failed (sum)", "changes (sum)")
	for _, r := range rows {
		var per []string
		for i := range r.failed {
			per = append(per, fmt.Sprintf("%d/%d/%d %v", r.failed[i], r.requests[i], r.changes[i], r.away[i].Round(100*time.Millisecond)))
		}
		fmt.Fprintf(&text, "  %-24s  %12d  %13d   %s\n", r.mode, sum(r.failed), sum(r.changes), strings.Join(per, ", "))
	}
	text.WriteString("\n  target with graceful-restart: 0 failed requests, 0 route changes\n")
	writeBench(b, "announcer-restart", text.String())
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
