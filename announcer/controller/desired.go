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

// decide computes, for every IP in a layer2 pool that a LoadBalancer
// Service has in its status, which node announces it, and returns the
// decisions with the announcements this node must make.
func decide(s snapshot) (map[netip.Addr]*ipDecision, map[netip.Addr]announcer.Announcement) {
	decisions := map[netip.Addr]*ipDecision{}
	for _, svc := range s.services {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
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
				// Only IPs from our layer2 pools are ever answered for:
				// any other address may belong to a gateway or a host.
				// BGP pools are announced by every eligible node, not by
				// an owner; their Announcer comes with the BGP support.
				if pool == nil || pool.Protocol != config.Layer2 {
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
		slices.SortFunc(d.services, func(a, b *corev1.Service) int {
			return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
		})
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
		an := announcer.Announcement{Pool: d.pool.Name, Interfaces: ifaces}
		for _, svc := range d.services {
			an.Services = append(an.Services, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
		}
		mine[ip] = an
	}
	return decisions, mine
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
