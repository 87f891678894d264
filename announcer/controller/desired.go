package controller

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
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
}

// ipDecision is the outcome for one IP.
type ipDecision struct {
	pool     *config.Pool
	services []*corev1.Service
	// owner is the node that announces the IP, "" if none can.
	owner string
}

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
				pool := poolOf(s.cloud, ip)
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

// decide computes, for every IP in a layer2 pool that a LoadBalancer
// Service has in its status, which node announces it, and returns the
// decisions with the announcements this node must make.
func decide(s snapshot) (map[netip.Addr]*ipDecision, map[netip.Addr]announcer.Announcement) {
	decisions := group(s, config.Layer2)

	// Which nodes may announce a pool's IPs does not depend on the
	// Service, so it is worked out once per pool and pass.
	poolNodes := map[*config.Pool][]string{}
	mine := map[netip.Addr]announcer.Announcement{}
	for ip, d := range decisions {
		if _, ok := poolNodes[d.pool]; !ok {
			var names []string
			for _, n := range s.nodes {
				if s.live[n.Name] && eligibility.NodeEligible(n, d.pool) {
					names = append(names, n.Name)
				}
			}
			poolNodes[d.pool] = names
		}
		d.owner = owner.Pick(ip, candidates(s, d, poolNodes[d.pool]))
		if d.owner != s.self {
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
	return decisions, mine
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
	poolNodes := map[*config.Pool][]string{}
	mine := map[netip.Addr]announcer.Announcement{}
	for ip, d := range decisions {
		names, ok := poolNodes[d.pool]
		if !ok {
			for _, n := range s.nodes {
				if eligibility.NodeEligible(n, d.pool) {
					names = append(names, n.Name)
				}
			}
			poolNodes[d.pool] = names
		}
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
