package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The annotations the suite writes. Requested IPs use MetalLB's spelling,
// which the CCM reads unchanged (loadbalancer/annotations.go).
const (
	annPool  = "metallb.universe.tf/address-pool"
	annIPs   = "metallb.universe.tf/loadBalancerIPs"
	annShare = "metallb.universe.tf/allow-shared-ip"
	// annTouch changes nothing the allocator reads. Writing it makes the
	// service controller sync the Service again, which is how a latent
	// move (a config edit that left a held address invalid) surfaces
	// without the Service's spec asking for anything.
	annTouch = "chaos.test/touch"
)

// ourAnnotations are the keys the suite writes; a change to any other
// annotation was made by the CCM.
var ourAnnotations = map[string]bool{annPool: true, annIPs: true, annShare: true, annTouch: true}

// Every requested-IP spelling the CCM reads, for the move fingerprint.
var requestedIPKeys = []string{
	"metallb.universe.tf/loadBalancerIPs",
	"metallb.io/loadBalancerIPs",
	"cloud-provider-baremetal.io/loadBalancerIPs",
	"cloud-provider-baremetal.io/load-balancer-ips",
}

var (
	poolKeys  = []string{"metallb.universe.tf/address-pool", "metallb.io/address-pool", "cloud-provider-baremetal.io/address-pool"}
	shareKeys = []string{"metallb.universe.tf/allow-shared-ip", "metallb.io/allow-shared-ip", "cloud-provider-baremetal.io/allow-shared-ip"}
)

// cleanupFinalizer is the service controller's finalizer on every Service
// it has given a load balancer.
const cleanupFinalizer = "service.kubernetes.io/load-balancer-cleanup"

// firstOf returns the first of keys set in ann.
func firstOf(ann map[string]string, keys []string) string {
	for _, k := range keys {
		if v, ok := ann[k]; ok {
			return v
		}
	}
	return ""
}

// specView is what of a Service's spec decides which addresses it may
// hold. Contract C1: a Service's address may change only when one of these
// changes (or the Service is deleted).
type specView struct {
	WantsLB  bool // type LoadBalancer and no loadBalancerClass
	Deleting bool
	Pool     string
	IPs      []netip.Addr // requested, at most one per family
	BadIPs   bool         // the requested-IPs annotation does not parse
	Share    string
	Ports    string
	Families []corev1.IPFamily
	Policy   corev1.IPFamilyPolicy
}

func viewOf(s *corev1.Service) specView {
	v := specView{
		WantsLB:  s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil,
		Deleting: s.DeletionTimestamp != nil,
		Pool:     firstOf(s.Annotations, poolKeys),
		Share:    firstOf(s.Annotations, shareKeys),
		Families: slices.Clone(s.Spec.IPFamilies),
	}
	if s.Spec.IPFamilyPolicy != nil {
		v.Policy = *s.Spec.IPFamilyPolicy
	}
	req := firstOf(s.Annotations, requestedIPKeys)
	if s.Spec.LoadBalancerIP != "" {
		req = s.Spec.LoadBalancerIP
	}
	if req != "" {
		for _, part := range strings.Split(req, ",") {
			ip, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				v.BadIPs = true
				continue
			}
			v.IPs = append(v.IPs, ip.Unmap())
		}
	}
	var ports []string
	for _, p := range s.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	slices.Sort(ports)
	v.Ports = strings.Join(ports, ",")
	return v
}

// fingerprint is a string that changes whenever the view does.
func (v specView) fingerprint() string {
	return fmt.Sprintf("%v|%v|%s|%v|%v|%s|%s|%v|%s", v.WantsLB, v.Deleting, v.Pool, v.IPs, v.BadIPs, v.Share, v.Ports, v.Families, v.Policy)
}

// requested returns the requested address of ip's family, if any.
func (v specView) requested(v4 bool) (netip.Addr, bool) {
	for _, ip := range v.IPs {
		if ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func (v specView) hasFamily(v4 bool) bool {
	want := corev1.IPv6Protocol
	if v4 {
		want = corev1.IPv4Protocol
	}
	return slices.Contains(v.Families, want)
}

// statusIPs returns the addresses in a Service's status, sorted.
func statusIPs(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range s.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// holdsAddress says whether the allocator counts s's status addresses
// (contract C3): it wants a load balancer from us, or it still carries the
// cleanup finalizer.
func holdsAddress(s *corev1.Service) bool {
	return (s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil) ||
		slices.Contains(s.Finalizers, cleanupFinalizer)
}

// portSets are the port lists Services get; overlapping sets make sharing
// an address impossible, which is one way a spec asks for a move.
var portSets = [][]int32{{80}, {443}, {80, 443}, {8080}, {53}}

func servicePorts(set []int32) []corev1.ServicePort {
	var out []corev1.ServicePort
	for _, p := range set {
		proto := corev1.ProtocolTCP
		if p == 53 {
			proto = corev1.ProtocolUDP
		}
		out = append(out, corev1.ServicePort{
			Name: fmt.Sprintf("p%d", p), Port: p, TargetPort: intstr.FromInt32(p), Protocol: proto,
		})
	}
	return out
}

var shareValues = []string{"", "", "", "k1", "k2"}

// familyChoice is an ipFamilyPolicy with the families to ask for.
type familyChoice struct {
	Policy   corev1.IPFamilyPolicy
	Families []corev1.IPFamily
}

var (
	v4Only    = familyChoice{corev1.IPFamilyPolicySingleStack, []corev1.IPFamily{corev1.IPv4Protocol}}
	v6Only    = familyChoice{corev1.IPFamilyPolicySingleStack, []corev1.IPFamily{corev1.IPv6Protocol}}
	preferV4  = familyChoice{corev1.IPFamilyPolicyPreferDualStack, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}}
	requireV4 = familyChoice{corev1.IPFamilyPolicyRequireDualStack, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}}
)

// newService draws a Service. Load-balancer node ports are off: the suite
// has thousands of Services and no kube-proxy, and the apiserver has only
// 2,768 node ports.
func newService(r *rand.Rand, p *profile, name string, cfg *cloudConfig) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    servicePorts(portSets[r.IntN(len(portSets))]),
		},
	}
	if r.IntN(100) < p.ClusterIPPercent {
		s.Spec.Type = corev1.ServiceTypeClusterIP
	} else {
		s.Spec.AllocateLoadBalancerNodePorts = new(bool)
	}
	fc := p.drawFamilies(r)
	s.Spec.IPFamilyPolicy = &fc.Policy
	s.Spec.IPFamilies = slices.Clone(fc.Families)
	if r.IntN(100) < p.PinnedPercent {
		s.Annotations[annPool] = drawPoolName(r, cfg)
	}
	if k := shareValues[r.IntN(len(shareValues))]; k != "" {
		s.Annotations[annShare] = k
	}
	if r.IntN(100) < p.RequestPercent {
		if ip, ok := drawIP(r, cfg, fc.Families[0] == corev1.IPv4Protocol); ok {
			s.Annotations[annIPs] = ip.String()
		}
	}
	return s
}

// drawIP picks an address to ask for: mostly one in a pool of cfg, at
// times one outside every pool (the Service then waits).
func drawIP(r *rand.Rand, cfg *cloudConfig, v4 bool) (netip.Addr, bool) {
	var blocks []int
	if r.IntN(8) == 0 {
		blocks = cfg.freeBlocks(v4)
	} else {
		for _, p := range cfg.Pools {
			for _, b := range p.Blocks {
				if cfg.bt.blocks[b].Addr().Is4() == v4 {
					blocks = append(blocks, b)
				}
			}
		}
	}
	if len(blocks) == 0 {
		return netip.Addr{}, false
	}
	pfx := cfg.bt.blocks[blocks[r.IntN(len(blocks))]]
	a := pfx.Addr()
	for n := r.IntN(1 << min(pfx.Addr().BitLen()-pfx.Bits(), 16)); n > 0; n-- {
		a = a.Next()
	}
	return a, true
}

// drawPoolName picks a pool name to ask for: mostly one the config has, at
// times any name, so that some Services wait for a pool that may come.
func drawPoolName(r *rand.Rand, cfg *cloudConfig) string {
	if r.IntN(4) == 0 || len(cfg.Pools) == 0 {
		return poolNames[r.IntN(len(poolNames))]
	}
	return cfg.Pools[r.IntN(len(cfg.Pools))].Name
}
