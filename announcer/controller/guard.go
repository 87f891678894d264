package controller

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/agreement"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/coverage"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/membership"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/nodemeta"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/quorum"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// SettleTime is how long this node waits before taking over IPs of a pool
// whose standing changed for it: it may claim again after members came or
// went while it was silent (the split-brain guard let go), its definition of the pool just won the majority (package
// agreement), it can serve the pool again, or it just started. The nodes
// that held those IPs hear of the change within a gossip round or two and
// withdraw first, so the move leaves a short gap in ARP answers (clients
// with the old MAC cached are still served by the old node) instead of two
// answers. Failovers change none of these and are not delayed.
const SettleTime = 500 * time.Millisecond

// Health is the layer2 announcer's view of its interfaces.
type Health interface {
	// Usable returns why the interface cannot carry announcements now,
	// or nil.
	Usable(name string) error
	// HealthChanges delivers a value when Usable may have changed.
	HealthChanges() <-chan struct{}
}

// viewer is a Members that tells what the guard needs (membership.View).
// Without it, every member is taken to share every pool definition and
// this node to be in contact.
type viewer interface {
	View() membership.View
}

// metaPublisher is a Members that publishes this node's metadata.
type metaPublisher interface {
	SetMeta([]byte)
}

// guard is the split-brain guard's state between passes, kept by the
// reconcile goroutine.
type guard struct {
	started time.Time
	// claim is the last verdict; claimSince when it last turned true
	// after the member set had changed meanwhile.
	claim      bool
	claimSince time.Time
	reason     string
	// silentLive is the live set when this node last fell silent, and
	// silentChanged whether it changed before it could claim again.
	silentLive    string
	silentChanged bool
	// For each pool definition this node announces by: whether its group
	// decided, whether this node could serve it, and since when it is
	// settling.
	decides  map[uint32]bool
	servable map[uint32]bool
	since    map[uint32]time.Time
	// dropped is the number of pools left out of the metadata, logged
	// when it changes.
	dropped int
	// byPod says whether the voters came from announcer Pods at the last
	// pass (see expectedAnnouncers); it starts true so that the fallback
	// is logged.
	byPod bool
	// sticky says whether owners keep their IPs by claim (sticky.go), and
	// rebalancedAt when this node last had the chance to give one up.
	sticky       bool
	rebalancedAt time.Time
}

func newGuard() *guard {
	return &guard{
		byPod:    true,
		decides:  map[uint32]bool{},
		servable: map[uint32]bool{},
		since:    map[uint32]time.Time{},
	}
}

// guardPass is what one pass of the guard adds to a snapshot, and when
// the next pass is due for a pool to settle (zero: none).
type guardPass struct {
	covered map[netip.Addr]coverage.Covered
	view    agreement.View
	verdict quorum.Verdict
	settled func(fp uint32) bool
	wakeAt  time.Time
	// claims are the other nodes' claim records when owners are sticky,
	// nil otherwise (plain rendezvous).
	claims owner.Claims
	// rebalance says this pass may give up one IP (sticky.go).
	rebalance bool
}

// runGuard resolves the pools of the addresses in use, publishes this
// node's metadata, and decides whether it may claim.
func (c *Controller) runGuard(logger klog.Logger, now time.Time, members Members, live map[string]bool, services []*corev1.Service, nodes []*corev1.Node) guardPass {
	g := c.guard
	if g.started.IsZero() {
		g.started = now
	}
	inUse := map[netip.Addr]bool{}
	for _, svc := range services {
		if !ours(svc) {
			continue
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(ing.IP); err == nil {
				inUse[ip.Unmap()] = true
			}
		}
	}
	var p guardPass
	p.covered = c.coverage.Resolve(c.cloud.Load(), c.retained.Load(), inUse)
	if cl, ok := members.(claimer); ok && g.sticky {
		// One snapshot for the whole pass, so that all its decisions see
		// the same records.
		p.claims = cl.Claims()
		if g.rebalancedAt.IsZero() {
			g.rebalancedAt = now
		}
		if now.Sub(g.rebalancedAt) >= RebalanceInterval {
			p.rebalance, g.rebalancedAt = true, now
		}
	}

	// The layer2 pool definitions this node announces by, and whether it
	// can serve each.
	own := map[uint32]*config.Pool{}
	addPool := func(pool *config.Pool) {
		if pool != nil && pool.Protocol == config.Layer2 {
			own[agreement.Fingerprint(pool)] = pool
		}
	}
	for i := range c.cloud.Load().Pools {
		addPool(&c.cloud.Load().Pools[i])
	}
	if r := c.retained.Load(); r != nil {
		for i := range r.Pools {
			addPool(&r.Pools[i])
		}
	}
	for _, cov := range p.covered {
		addPool(cov.Pool)
	}
	usable := map[string]bool{}
	unservable := map[uint32]bool{}
	for fp, pool := range own {
		unservable[fp] = !c.canServe(pool, usable)
	}
	meta, dropped := nodemeta.New(unservable)
	if dropped != g.dropped {
		if dropped > 0 {
			logger.Error(nil, "More layer2 pools than node metadata can carry; the IPs of the pools left out are not announced by this node", "pools", len(own), "max", nodemeta.MaxPools)
		}
		g.dropped = dropped
	}
	if pub, ok := members.(metaPublisher); ok {
		pub.SetMeta(meta.Encode())
	}

	// Who is live, with what metadata, and who left on purpose.
	var left map[string]bool
	contact := true
	p.view = agreement.View{}
	if v, ok := members.(viewer); ok {
		mv := v.View()
		left, contact = mv.Left, mv.Contact
		for name, b := range mv.Members {
			m, err := nodemeta.Decode(b)
			if err != nil {
				// Agrees with nothing: a future format we cannot read.
				m = &nodemeta.Meta{}
			}
			p.view[name] = m
		}
	} else {
		for name := range live {
			p.view[name] = nil
		}
	}
	if _, ok := p.view[c.cfg.NodeName]; ok || live[c.cfg.NodeName] {
		p.view[c.cfg.NodeName] = &meta
	}

	liveNames := slices.Sorted(maps.Keys(live))
	liveKey := strings.Join(liveNames, ",")
	expected, byPod := c.expectedAnnouncers(nodes)
	if c.pods != nil && byPod != g.byPod {
		if !byPod {
			logger.Error(nil, "No announcer Pod matches --announcer-pod-selector; every Node counts as an announcer for the split-brain guard", "selector", c.cfg.AnnouncerSelector)
		}
		g.byPod = byPod
	}
	p.verdict = quorum.Decide(quorum.Input{
		Self:     c.cfg.NodeName,
		Expected: expected,
		Members:  live,
		Gone:     c.goneFunc(nodes, left, byPod),
		Contact:  contact,
	})
	if p.verdict.Claim != g.claim || p.verdict.Reason != g.reason {
		if p.verdict.Claim {
			logger.Info("Split-brain guard: this node may claim IPs", "voters", p.verdict.Voters, "live", p.verdict.Live)
		} else {
			logger.Info("Split-brain guard: this node claims no IP", "reason", p.verdict.Reason, "voters", p.verdict.Voters, "live", p.verdict.Live)
		}
		switch {
		case p.verdict.Claim && !g.claim && g.silentChanged:
			// Back after members came and went: others may have taken
			// this node's IPs and must hear that it is back first.
			g.claimSince = now
		case !p.verdict.Claim && g.claim:
			g.silentLive, g.silentChanged = liveKey, false
		}
		g.claim, g.reason = p.verdict.Claim, p.verdict.Reason
	}
	if !g.claim && liveKey != g.silentLive {
		// A member change while silent. A silence without one (a
		// contact gap from a stall of this process under load) took
		// nothing away: this node claims its IPs back at once.
		g.silentChanged = true
	}
	if p.verdict.Claim {
		quorumClaims.Set(1)
	} else {
		quorumClaims.Set(0)
	}

	// Settle bookkeeping, per pool definition.
	for fp := range g.since {
		if _, ok := own[fp]; !ok {
			delete(g.since, fp)
			delete(g.decides, fp)
			delete(g.servable, fp)
		}
	}
	for fp := range own {
		decides := p.view.Group(fp).Decides
		servable := !unservable[fp]
		if _, seen := g.since[fp]; !seen || decides && !g.decides[fp] || servable && !g.servable[fp] {
			g.since[fp] = now
		}
		g.decides[fp], g.servable[fp] = decides, servable
	}
	settledAt := func(fp uint32) time.Time {
		t := g.started
		for _, x := range []time.Time{g.claimSince, g.since[fp]} {
			if x.After(t) {
				t = x
			}
		}
		return t.Add(SettleTime)
	}
	p.settled = func(fp uint32) bool { return !now.Before(settledAt(fp)) }
	for fp := range own {
		if at := settledAt(fp); now.Before(at) && (p.wakeAt.IsZero() || at.Before(p.wakeAt)) {
			p.wakeAt = at
		}
	}
	return p
}

// canServe says whether this node can answer for pool's IPs: at least one
// of its interfaces (the default one when it names none) is usable.
// usable caches the answers of one pass.
func (c *Controller) canServe(pool *config.Pool, usable map[string]bool) bool {
	ifaces := pool.Interfaces
	if len(ifaces) == 0 {
		if c.defaultInterface == "" {
			return false
		}
		ifaces = []string{c.defaultInterface}
	}
	for _, name := range ifaces {
		ok, known := usable[name]
		if !known {
			ok = c.cfg.Health == nil || c.cfg.Health.Usable(name) == nil
			usable[name] = ok
		}
		if ok {
			return true
		}
	}
	return false
}

// expectedAnnouncers are the nodes the API expects to run an announcer:
// those with an announcer Pod, or every Node without a Pod selector. When
// the selector matches no Pod at all, the announcers do not run as the
// DaemonSet (a demo, a test, a selector that does not fit the Pods'
// labels), and every Node counts too; this node is one of the selected
// Pods whenever it runs as the DaemonSet, so that never happens there.
func (c *Controller) expectedAnnouncers(nodes []*corev1.Node) (names []string, byPod bool) {
	if c.pods != nil {
		pods, _ := c.pods.List(everything)
		for _, p := range pods {
			if p.Spec.NodeName != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				names = append(names, p.Spec.NodeName)
			}
		}
		if len(names) > 0 {
			return names, true
		}
	}
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return names, false
}

// goneFunc says why an expected announcer that is not a live member is
// known not to be answering: it left on purpose, its Node is not Ready
// (Unknown included: for a member that is also missing from gossip, the
// kubelet's silence confirms the death), or its announcer Pod is not
// Ready or is being deleted.
func (c *Controller) goneFunc(nodes []*corev1.Node, left map[string]bool, byPod bool) func(string) string {
	byName := make(map[string]*corev1.Node, len(nodes))
	for _, n := range nodes {
		byName[n.Name] = n
	}
	return func(name string) string {
		if left[name] {
			return "left the memberlist cluster on purpose"
		}
		n := byName[name]
		if n == nil {
			return "no Node object"
		}
		if !readyTrue(n) {
			return "Node is not Ready"
		}
		if byPod {
			pods, _ := c.pods.List(everything)
			var ready bool
			for _, p := range pods {
				if p.Spec.NodeName == name && p.DeletionTimestamp == nil && podReady(p) {
					ready = true
				}
			}
			if !ready {
				return "announcer Pod is not Ready"
			}
		}
		return ""
	}
}

func readyTrue(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ReasonAddressConflict is the event reason for another host announcing
// an IP this node announces.
const ReasonAddressConflict = "AddressConflict"

// RecordConflict records a Warning event on every Service that holds ip:
// another host (mac) announced it while this node did, which is split
// brain or a host configured with a Service's IP. The layer2 announcer
// calls it (SetConflictHandler).
func (c *Controller) RecordConflict(ip netip.Addr, mac net.HardwareAddr) {
	services, _ := c.services.List(everything)
	for _, svc := range services {
		if !ours(svc) || !slices.ContainsFunc(svc.Status.LoadBalancer.Ingress, func(ing corev1.LoadBalancerIngress) bool {
			a, err := netip.ParseAddr(ing.IP)
			return err == nil && a.Unmap() == ip
		}) {
			continue
		}
		c.cfg.Recorder.Event(svc, corev1.EventTypeWarning, ReasonAddressConflict,
			fmt.Sprintf("another host (MAC %s) also announces %s, which node %s announces: two nodes answer for it (split brain) or a host uses the address", mac, ip, c.cfg.NodeName))
	}
}
