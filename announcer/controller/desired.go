package controller

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/agreement"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/coverage"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/quorum"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// snapshot is everything one pass decides from.
type snapshot struct {
	cloud *config.Config
	// self is this node's name.
	self string
	// defaultInterface is the interface holding the node's IP, or "" when
	// it is not known (then only pools with interfaces can be announced).
	defaultInterface string
	services         []*corev1.Service
	nodes            []*corev1.Node
	// endpointNodes returns the nodes with a ready endpoint of a Service.
	endpointNodes func(*corev1.Service) map[string]bool
	// live are the names of the live announcers.
	live map[string]bool

	// What the split-brain guard adds. Each may be nil, which means: no
	// guard (every pool agreed, every member can serve, this node may
	// claim everything at once), as for a lone announcer in tests.

	// covered is the pool of every status IP that has one (package
	// coverage); nil means the cloud-config's pools only.
	covered map[netip.Addr]coverage.Covered
	// view is the live members' pool definitions (package agreement).
	view agreement.View
	// verdict says whether this node may claim at all (package quorum).
	verdict *quorum.Verdict
	// announced are the IPs this node announced after the last pass: it
	// keeps those while it may claim; others it takes over only in a
	// settled pool.
	announced map[netip.Addr]announcer.Announcement
	// held are the IPs this node held without announcing them after the
	// last pass (sticky.go).
	held map[netip.Addr]bool
	// settled says whether this node may take over IPs of the pool
	// definition fp now (see Controller.settle).
	settled func(fp uint32) bool
	// claims are the other nodes' claim records (package owner); nil
	// means owners are not sticky: plain rendezvous.
	claims owner.Claims
	// rebalance says this pass may give up one IP to even out the load
	// (sticky.go).
	rebalance bool
}

// ipDecision is the outcome for one IP.
type ipDecision struct {
	pool     *config.Pool
	services []*corev1.Service
	// owner is the node that announces the IP, "" if none can.
	owner string
	// disagree means the live members that share this node's definition
	// of the pool do not decide (package agreement): another definition
	// does, or none, and this node neither knows nor announces the owner.
	disagree bool
	// held says why this node, the owner, does not announce the IP.
	held string
	// holdsClaim: this node, the owner, holds the IP back but keeps its
	// claim, which it had at the last pass (package owner, "Held claims").
	holdsClaim bool
	// candidates are the nodes the owner was chosen from.
	candidates []string
}

// Why an owner holds an IP back.
const (
	heldNoQuorum  = "this node may not claim IPs (split-brain guard)"
	heldSettling  = "the pool has just changed for this node; taking over after the settle time"
	heldClaims    = "this node does not hold every candidate's claim record yet; taking over once it does"
	heldRebalance = "given up to a less loaded node (rebalance, one IP per interval)"
)

// group collects, for every IP of a pool of the given protocol that a
// LoadBalancer Service has in its status, the pool and the Services.
// Only IPs from our own pools are ever announced: any other address may
// belong to a gateway or a host.
func group(s snapshot, protocol config.Protocol) map[netip.Addr]*ipDecision {
	decisions := map[netip.Addr]*ipDecision{}
	for _, svc := range s.services {
		if !ours(svc) {
			continue
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			d := decisions[ip]
			if d == nil {
				pool := s.poolOf(ip)
				if pool == nil || pool.Protocol != protocol {
					continue
				}
				d = &ipDecision{pool: pool}
				decisions[ip] = d
			}
			if !slices.Contains(d.services, svc) {
				d.services = append(d.services, svc)
			}
		}
	}
	for _, d := range decisions {
		slices.SortFunc(d.services, func(a, b *corev1.Service) int {
			return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
		})
	}
	return decisions
}

// ours says whether svc is a LoadBalancer Service of this implementation:
// one without a loadBalancerClass, as the cloud-controller-manager's
// service controller handles. A Service of another class has an IP that
// another implementation announces, even when it lies in one of our pools.
func ours(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
}

// serviceNames lists the names of d's Services.
func serviceNames(d *ipDecision) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(d.services))
	for _, svc := range d.services {
		out = append(out, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
	}
	return out
}

// poolOf returns the pool ip is announced under, or nil.
func (s snapshot) poolOf(ip netip.Addr) *config.Pool {
	if s.covered != nil {
		return s.covered[ip].Pool
	}
	return poolOf(s.cloud, ip)
}

// poolCandidates are the nodes that may own a pool's IPs before any
// Service's endpoints are looked at, and what the guard says of the pool.
type poolCandidates struct {
	names    []string
	disagree bool
	fp       uint32
}

// decide computes, for every IP in a layer2 pool that a LoadBalancer
// Service has in its status, which node announces it, and returns the
// decisions with the announcements this node must make.
//
// The candidates for a pool's IPs are the live members that are eligible
// (package eligibility), share this node's definition of the pool and can
// serve it (package agreement); none when the members sharing it do not
// decide. The owner is chosen among them (package owner): by rendezvous,
// or, with sticky owners, the candidate that claims the IP first. This node
// announces the IPs it owns while it may claim (package quorum): those it
// announced already at once, others once the pool is settled.
func decide(s snapshot) (map[netip.Addr]*ipDecision, map[netip.Addr]announcer.Announcement) {
	decisions := group(s, config.Layer2)
	candidatesOf := memo(s.candidatesOf)
	mine := map[netip.Addr]announcer.Announcement{}
	for ip, d := range decisions {
		pc := candidatesOf(d.pool)
		d.disagree = pc.disagree
		_, before := s.announced[ip]
		d.candidates = candidates(s, d, pc.names)
		o := owner.Decide(owner.Input{IP: ip, Self: s.self, Candidates: d.candidates, Announced: before, Held: s.held[ip], Others: s.claims})
		d.owner = o.Owner
		if d.owner != s.self {
			continue
		}
		switch {
		case s.verdict != nil && !s.verdict.Claim:
			d.held = heldNoQuorum
		case !before && s.settled != nil && !s.settled(pc.fp):
			d.held = heldSettling
		case o.Wait:
			d.held = heldClaims
		}
		if d.held != "" {
			d.holdsClaim = before || s.held[ip]
			continue
		}
		ifaces := d.pool.Interfaces
		if len(ifaces) == 0 {
			if s.defaultInterface == "" {
				continue
			}
			ifaces = []string{s.defaultInterface}
		}
		mine[ip] = announcer.Announcement{Pool: d.pool.Name, Interfaces: ifaces, Services: serviceNames(d)}
	}
	if s.rebalance {
		rebalance(s, decisions, mine)
	}
	return decisions, mine
}

// candidatesOf works out poolCandidates for pool.
func (s snapshot) candidatesOf(pool *config.Pool) poolCandidates {
	var pc poolCandidates
	servable := func(string) bool { return true }
	if s.view != nil {
		pc.fp = agreement.Fingerprint(pool)
		g := s.view.Group(pc.fp)
		if !g.Decides {
			pc.disagree = true
			return pc
		}
		servable = func(n string) bool { return g.Servable[n] }
	}
	for _, n := range s.eligibleNodes(pool) {
		if s.live[n] && servable(n) {
			pc.names = append(pc.names, n)
		}
	}
	return pc
}

// eligibleNodes are the names of the nodes that may announce pool's IPs
// before any Service's endpoints are looked at, live or not (package
// eligibility), in the order of s.nodes.
func (s snapshot) eligibleNodes(pool *config.Pool) []string {
	var names []string
	for _, n := range s.nodes {
		if eligibility.NodeEligible(n, pool) {
			names = append(names, n.Name)
		}
	}
	return names
}

// memo returns f remembering its answers. Which nodes may announce a
// pool's IPs does not depend on the Service, so a pass works it out once
// per pool, not once per IP.
func memo[K comparable, V any](f func(K) V) func(K) V {
	seen := map[K]V{}
	return func(k K) V {
		v, ok := seen[k]
		if !ok {
			v = f(k)
			seen[k] = v
		}
		return v
	}
}

// decideBGP returns the IPs of bgp pools this node announces: every IP
// whose pool it is eligible for (Ready, not excluded, matching the pool's
// node-selectors) and, for externalTrafficPolicy: Local, where it has a
// ready endpoint, by the same rule for shared IPs as layer2's candidates.
// There is no owner and no liveness: every eligible node announces, the
// routers spread traffic over them by ECMP, and a dead node's routes go
// with its BGP sessions.
func decideBGP(s snapshot) map[netip.Addr]announcer.Announcement {
	decisions := group(s, config.BGP)
	eligible := memo(s.eligibleNodes)
	mine := map[netip.Addr]announcer.Announcement{}
	for ip, d := range decisions {
		names := eligible(d.pool)
		if !slices.Contains(names, s.self) || !slices.Contains(candidates(s, d, names), s.self) {
			continue
		}
		mine[ip] = announcer.Announcement{Pool: d.pool.Name, Services: serviceNames(d), Advertisements: d.pool.BGPAdvertisements}
	}
	return mine
}

// candidates are the live nodes eligible for every Service that shares
// the IP, given the live nodes eligible for its pool. If no node suits
// them all (two Local Services with endpoints on different nodes), the
// nodes that suit any of them are taken instead: one node can then serve
// only part of the traffic, which beats none, and every announcer still
// computes the same set.
func candidates(s snapshot, d *ipDecision, poolNodes []string) []string {
	var all, any []string
	for i, svc := range d.services {
		names := poolNodes
		if eligibility.LocalTraffic(svc) {
			eps := s.endpointNodes(svc)
			names = slices.DeleteFunc(slices.Clone(poolNodes), func(n string) bool { return !eps[n] })
		}
		if i == 0 {
			all = slices.Clone(names)
		} else {
			all = slices.DeleteFunc(all, func(n string) bool { return !slices.Contains(names, n) })
		}
		if len(d.services) > 1 {
			any = append(any, names...)
		}
	}
	if len(all) > 0 || len(d.services) == 1 {
		return all
	}
	return any
}

// poolOf returns the pool that contains ip, or nil. Pools never overlap
// (config validation refuses it), so there is at most one.
func poolOf(cfg *config.Config, ip netip.Addr) *config.Pool {
	for i := range cfg.Pools {
		if cfg.Pools[i].Contains(ip) {
			return &cfg.Pools[i]
		}
	}
	return nil
}
