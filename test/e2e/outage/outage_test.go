package outage

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// cloudConfig has a layer-2 pool on the LAN and a BGP pool behind the
// router, with the lab router as the BGP peer over IPv4.
const cloudConfig = `peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 3s
  keepalive-time: 1s
address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.210
  - 2001:db8:1::200-2001:db8:1::20f
- name: routed
  protocol: bgp
  addresses:
  - ` + lab.BGPPoolV4 + `
`

// The Service's addresses: two layer-2 ones, answered by one owner each,
// and a BGP one, routed to all three nodes.
const (
	l2v4 = "203.0.113.200"
	l2v6 = "2001:db8:1::200"
	bgp4 = "198.51.100.10"
)

var nodes = []string{"node1", "node2", "node3"}

// Pacing and bounds. The client asks each VIP every requestEvery on a new
// connection, each request bounded by requestWait; afterAPI is how long
// traffic keeps being checked once the Nodes are Unknown: two of the
// announcers' resync periods, and the relist of every informer.
const (
	requestEvery  = 200 * time.Millisecond
	requestWait   = 2 * time.Second
	settleTimeout = 40 * time.Second
	pollEvery     = 50 * time.Millisecond
	afterAPI      = 25 * time.Second
	arpEvery      = time.Second
	arpWait       = 300 * time.Millisecond
)

// TestAPIServerHungFor60s: the apiserver stops answering (SIGSTOP) for
// 60 s, longer than the node-monitor grace period.
func TestAPIServerHungFor60s(t *testing.T) {
	outage(t, time.Minute, hang)
}

// TestAPIServerDownFor5Minutes: the apiserver is killed and comes back 5
// minutes later, a new process on the same port, certificates and etcd.
func TestAPIServerDownFor5Minutes(t *testing.T) {
	outage(t, 5*time.Minute, restart)
}

// stopMode is how the apiserver goes away: hang or restart.
type stopMode struct {
	name        string
	stop        func() error
	resume      func(context.Context) error
	description string
}

var (
	hang = stopMode{
		name:        "hang",
		description: "SIGSTOP, then SIGCONT",
		stop:        func() error { return e2e.ControlPlane().APIServer().Signal(syscall.SIGSTOP) },
		resume: func(context.Context) error {
			return e2e.ControlPlane().APIServer().Signal(syscall.SIGCONT)
		},
	}
	restart = stopMode{
		name:        "restart",
		description: "SIGKILL, then a new process on the same port, certificates and etcd",
		stop:        func() error { return e2e.ControlPlane().KillAPIServer() },
		resume:      func(ctx context.Context) error { return e2e.ControlPlane().StartAPIServer(ctx) },
	}
)

// outage runs the story: a Service is served; the apiserver goes away for
// d while the client and the router keep requesting; it returns; every
// Node turns Ready=Unknown with the unreachable taints; traffic is checked
// for afterAPI more. Every request must succeed, every layer-2 request
// must reach the IP's owner, and no announcer may withdraw anything.
func outage(t *testing.T, d time.Duration, mode stopMode) {
	c := e2e.New(t, e2e.Options{
		Lab:             lab.Options{Router: true, Client: true, IPv6: true},
		CloudConfig:     cloudConfig,
		VIPs:            []string{l2v4, l2v6, bgp4},
		NamespacePrefix: "e2e-outage-",
		Within:          d + 4*time.Minute,
		SettleTimeout:   settleTimeout,
		PollEvery:       pollEvery,
		LogTail:         6000,
	})
	if _, err := c.Lab.StartFRR(c.Ctx, lab.DefaultBGPDConf("")); err != nil {
		t.Fatal(err)
	}
	for _, h := range c.Lab.Nodes() {
		c.StartAnnouncer(h)
	}
	for _, h := range c.Lab.Nodes() {
		c.Eventually(h.Name()+" sees 3 members", func() bool {
			m, err := c.Scrape(h, "/metrics", time.Second)
			return err == nil && strings.Contains(m, "baremetal_announcer_membership_members 3")
		})
	}
	c.CreateService(e2e.LoadBalancer("web", corev1.ServiceExternalTrafficPolicyCluster), l2v4, l2v6, bgp4)
	owners := map[string]string{
		l2v4: owner.Pick(netip.MustParseAddr(l2v4), nodes),
		l2v6: owner.Pick(netip.MustParseAddr(l2v6), nodes),
	}
	for ip, o := range owners {
		c.Eventually(ip+" served by "+o, func() bool {
			got, err := c.Lab.Client().HTTPGet(c.Ctx, e2e.URL(ip), requestWait)
			return err == nil && strings.TrimSpace(got) == o
		})
	}
	// ECMP over three next hops: new connections reach every node.
	seen := map[string]bool{}
	c.Eventually(bgp4+" routed to all three nodes", func() bool {
		if got, err := c.Lab.Router().HTTPGet(c.Ctx, e2e.URL(bgp4), requestWait); err == nil {
			seen[strings.TrimSpace(got)] = true
		}
		return len(seen) == 3
	})

	logStart := map[string]int{}
	for name, p := range c.Announcers {
		logStart[name] = len(p.Log())
	}
	announced := announcedIPs(c)
	tr := startTraffic(c, owners)

	// The outage.
	start := time.Now()
	if err := mode.stop(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			// Leave a working control plane to the next test.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := mode.resume(ctx); err != nil {
				t.Errorf("resuming the apiserver: %v", err)
			}
		}
	})
	t.Logf("apiserver stopped (%s) for %v", mode.description, d)
	// Halfway and at the end: the announcers still serve their endpoint
	// without the API server, probes without credentials and scrapes
	// with the admin's certificate, and they still announce everything.
	for _, at := range []time.Duration{d / 2, d} {
		sleepCtx(c.Ctx, time.Until(start.Add(at)))
		checkEndpoints(c, fmt.Sprintf("%v into the outage", at))
		if got := announcedIPs(c); got != announced {
			t.Errorf("%v into the outage: announcing %s, before it %s", at, got, announced)
		}
	}
	ctx, cancel := context.WithTimeout(c.Ctx, 2*time.Minute)
	defer cancel()
	if err := mode.resume(ctx); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Logf("apiserver back after %v", time.Since(start).Round(time.Millisecond))

	// What the node-lifecycle controller does once the kubelets'
	// heartbeats are overdue. No kubelet runs here to set them back.
	for _, n := range nodes {
		markUnknown(c, n)
	}
	t.Logf("every Node is Ready=Unknown with the unreachable taints; checking traffic for %v more", afterAPI)
	sleepCtx(c.Ctx, afterAPI)
	stats := tr.stop()

	if got := announcedIPs(c); got != announced {
		t.Errorf("after the outage: announcing %s, before it %s", got, announced)
	}
	// The failure detector is not under test here. On this shared 2-core
	// machine a starved announcer acks late, memberlist suspects a live
	// member (or the split-brain guard sees a contact gap) and an IP moves
	// for a moment, with or without an API server. That is issue 11's false
	// failover, logged below with its evidence, and it may cost the
	// requests of that one move. What the API server's absence must never
	// cause is checked strictly: a withdrawal for any other reason (a Node
	// gone Unknown, nothing eligible), an announcer that exits, fewer IPs
	// announced, or failures with no detector event to explain them.
	detector := regexp.MustCompile(`[^\n]*(Suspect \w+ has failed|no contact with any other announcer)[^\n]*`)
	moved := regexp.MustCompile(`"Withdrawn: (another node announces the IP|` + regexp.QuoteMeta(guardReason) + `)"`)
	withdrawn := regexp.MustCompile(`"Withdrawn[^"]*"[^\n]*`)
	detectorEvents := 0
	for name, p := range c.Announcers {
		if !p.Running() {
			t.Errorf("announcer of %s exited: %v", name, p.Err())
		}
		log := p.Log()[logStart[name]:]
		if lines := detector.FindAllString(log, 5); len(lines) > 0 {
			detectorEvents += len(detector.FindAllString(log, -1))
			t.Logf("announcer of %s: the failure detector fired on a live member (a false failover, not the outage):\n%s", name, strings.Join(lines, "\n"))
		}
		for _, line := range withdrawn.FindAllString(log, -1) {
			if moved.MatchString(line) {
				t.Logf("announcer of %s handed an IP over after a membership change: %s", name, line)
				continue
			}
			t.Errorf("announcer of %s withdrew during or after the outage: %s", name, line)
		}
	}
	for _, s := range stats {
		t.Logf("%s: %d requests, %d failed%s", s.vip, s.sent, s.failed, s.firstFailure)
		switch {
		case s.sent == 0:
			t.Errorf("%s: no request was sent", s.vip)
		case s.failed > 0 && detectorEvents == 0:
			t.Errorf("%s: %d of %d requests failed with no failure-detector event to explain them%s", s.vip, s.failed, s.sent, s.firstFailure)
		case s.failed > maxFailedPerFalseFailover*detectorEvents:
			t.Errorf("%s: %d of %d requests failed, more than %d per failure-detector event (%d events)%s", s.vip, s.failed, s.sent, maxFailedPerFalseFailover, detectorEvents, s.firstFailure)
		case s.failed > 0:
			t.Logf("%s: %d of %d requests failed during false failovers (see above), none from the outage", s.vip, s.failed, s.sent)
		}
	}
	// Nothing in the handed-over lines above may be a withdrawal wave: a
	// false failover moves an IP, it does not stop announcing it.
	if detectorEvents > 0 {
		t.Logf("%d failure-detector events on live members during the test; see issue 11 (faster detection without false alarms)", detectorEvents)
	}
}

// maxFailedPerFalseFailover bounds the requests one false failover may
// cost: a client every ~180 ms sees at most a few during one move.
const maxFailedPerFalseFailover = 3

// guardReason is how the announcer logs a withdrawal by the split-brain
// guard, which a contact gap on a starved machine triggers.
const guardReason = "this node may not claim IPs (split-brain guard)"

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// checkEndpoints checks that every announcer answers /healthz to anyone
// and /metrics to the admin's client certificate: neither may need the
// API server, or a liveness probe would restart announcers during an
// outage and scrapes would go blind.
func checkEndpoints(c *e2e.Cluster, when string) {
	c.T.Helper()
	for _, h := range c.Lab.Nodes() {
		if body, err := c.ScrapeAs(nil, h, "/healthz", 5*time.Second); err != nil || strings.TrimSpace(body) != "ok" {
			c.T.Errorf("%s: %s /healthz: %q, %v", when, h.Name(), body, err)
		}
		if _, err := c.Scrape(h, "/metrics", 5*time.Second); err != nil {
			c.T.Errorf("%s: %s /metrics as admin: %v", when, h.Name(), err)
		}
	}
}

var announcedGauge = regexp.MustCompile(`baremetal_announcer_announced_ips\{protocol="(\w+)"\} (\d+)`)

// announcedIPs sums, per protocol, what the announcers say they announce:
// "bgp=3 layer2=2" when every node routes the BGP IP and the layer-2
// owners answer for theirs.
func announcedIPs(c *e2e.Cluster) string {
	c.T.Helper()
	sum := map[string]int{}
	for _, h := range c.Lab.Nodes() {
		m, err := c.Scrape(h, "/metrics", 5*time.Second)
		if err != nil {
			c.T.Errorf("%s /metrics: %v", h.Name(), err)
			continue
		}
		for _, g := range announcedGauge.FindAllStringSubmatch(m, -1) {
			n, _ := strconv.Atoi(g[2])
			sum[g[1]] += n
		}
	}
	return fmt.Sprintf("bgp=%d layer2=%d", sum["bgp"], sum["layer2"])
}

// markUnknown does to a Node what the node-lifecycle controller does when
// its kubelet's status is overdue: every condition Unknown, reason
// NodeStatusUnknown, and the unreachable taints.
func markUnknown(c *e2e.Cluster, name string) {
	c.T.Helper()
	n, err := c.CS.CoreV1().Nodes().Get(c.Ctx, name, metav1.GetOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	now := metav1.Now()
	for i := range n.Status.Conditions {
		cond := &n.Status.Conditions[i]
		cond.Status, cond.Reason, cond.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
		cond.LastTransitionTime = now
	}
	n, err = c.CS.CoreV1().Nodes().UpdateStatus(c.Ctx, n, metav1.UpdateOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	n.Spec.Taints = append(n.Spec.Taints,
		corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule},
		corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &now})
	if _, err := c.CS.CoreV1().Nodes().Update(c.Ctx, n, metav1.UpdateOptions{}); err != nil {
		c.T.Fatal(err)
	}
}

// traffic requests every VIP, each on a new connection, until stopped.
type traffic struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	stats  []*vipStats
}

// vipStats counts one VIP's requests.
type vipStats struct {
	vip          string
	sent, failed int
	firstFailure string
}

// startTraffic makes the client request each layer-2 VIP, which must be
// answered by its owner, and ask who has it, which only the owner's MAC
// may answer; and the router request the BGP VIP, which any node may
// answer.
func startTraffic(c *e2e.Cluster, owners map[string]string) *traffic {
	ctx, cancel := context.WithCancel(c.Ctx)
	tr := &traffic{cancel: cancel}
	run := func(from *lab.Host, vip, want string) {
		s := &vipStats{vip: vip}
		tr.stats = append(tr.stats, s)
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tick := time.NewTicker(requestEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				got, err := from.HTTPGet(ctx, e2e.URL(vip), requestWait)
				if ctx.Err() != nil {
					return
				}
				got = strings.TrimSpace(got)
				tr.mu.Lock()
				s.sent++
				if err != nil || (want != "" && got != want) {
					s.failed++
					if s.firstFailure == "" {
						s.firstFailure = fmt.Sprintf(" (first failure at %s: answered by %q, %v)", time.Now().Format("15:04:05.000"), got, err)
					}
				}
				tr.mu.Unlock()
			}
		}()
	}
	run(c.Lab.Client(), l2v4, owners[l2v4])
	run(c.Lab.Client(), l2v6, owners[l2v6])
	run(c.Lab.Router(), bgp4, "")
	// The client's neighbour cache hides a withdrawn layer-2 IP for up to
	// half a minute; asking who answers shows it at once, and shows a
	// second answerer too.
	for _, vip := range []string{l2v4, l2v6} {
		s := &vipStats{vip: "who-has " + vip}
		tr.stats = append(tr.stats, s)
		want := c.Lab.Host(owners[vip]).MAC().String()
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tick := time.NewTicker(arpEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				macs, err := c.Lab.Client().Arping(ctx, vip, arpWait)
				if ctx.Err() != nil {
					return
				}
				tr.mu.Lock()
				s.sent++
				if err != nil || len(macs) != 1 || macs[0].String() != want {
					s.failed++
					if s.firstFailure == "" {
						s.firstFailure = fmt.Sprintf(" (first failure at %s: answered by %v, want only %s; %v)", time.Now().Format("15:04:05.000"), macs, want, err)
					}
				}
				tr.mu.Unlock()
			}
		}()
	}
	return tr
}

// stop ends the traffic and returns the counts.
func (tr *traffic) stop() []vipStats {
	tr.cancel()
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []vipStats
	for _, s := range tr.stats {
		out = append(out, *s)
	}
	return out
}
