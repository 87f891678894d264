package loadbalancer

import (
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/loadbalancer/ipam"
)

// serviceKey is the allocator's name for a Service.
func serviceKey(svc *v1.Service) string { return svc.Namespace + "/" + svc.Name }

// allocatorService is what the allocator needs to know of svc.
func allocatorService(svc *v1.Service, ann Annotations) ipam.Service {
	out := ipam.Service{
		Key:          serviceKey(svc),
		Namespace:    svc.Namespace,
		Labels:       svc.Labels,
		SharingKey:   ann.SharingKey,
		LocalTraffic: svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
		Selector:     labels.Set(svc.Spec.Selector).String(),
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		out.Ports = append(out.Ports, ipam.Port{Protocol: string(proto), Port: p.Port})
	}
	return out
}

// buildRequest turns a Service into an allocation request. Errors name the
// field or annotation and the value at fault.
func buildRequest(svc *v1.Service) (ipam.Request, error) {
	ann, err := ParseAnnotations(svc.Annotations)
	if err != nil {
		return ipam.Request{}, err
	}
	req := ipam.Request{
		Service: allocatorService(svc, ann),
		Pool:    ann.Pool,
		IPs:     ann.IPs,
	}

	if s := svc.Spec.LoadBalancerIP; s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return req, fmt.Errorf("spec.loadBalancerIP: %q is not an IP address", s)
		}
		if len(ann.IPs) > 0 {
			return req, fmt.Errorf("spec.loadBalancerIP %q and the loadBalancerIPs annotation are both set; use only the annotation", s)
		}
		req.IPs = []netip.Addr{ip.Unmap()}
	}

	// The apiserver fills spec.ipFamilies for every Service with a cluster
	// IP; without it (headless, or a hand-made object) fall back to the
	// families of the requested addresses, else IPv4.
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case v1.IPv4Protocol:
			req.Families = append(req.Families, ipam.IPv4)
		case v1.IPv6Protocol:
			req.Families = append(req.Families, ipam.IPv6)
		default:
			return req, fmt.Errorf("spec.ipFamilies: unknown family %q", f)
		}
	}
	if len(req.Families) == 0 {
		for _, ip := range req.IPs {
			req.Families = append(req.Families, ipam.FamilyOf(ip))
		}
		if len(req.Families) == 0 {
			req.Families = []ipam.Family{ipam.IPv4}
		}
	}
	policy := v1.IPFamilyPolicySingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		policy = *svc.Spec.IPFamilyPolicy
	}
	switch policy {
	case v1.IPFamilyPolicySingleStack:
		req.Families = req.Families[:1]
		req.RequireAll = true
	case v1.IPFamilyPolicyRequireDualStack:
		req.RequireAll = true
	case v1.IPFamilyPolicyPreferDualStack:
	default:
		return req, fmt.Errorf("spec.ipFamilyPolicy: unknown policy %q", policy)
	}
	for _, ip := range req.IPs {
		if !slices.Contains(req.Families, ipam.FamilyOf(ip)) {
			return req, fmt.Errorf("requested IP %s is %s but the service's IP families are %v", ip, ipam.FamilyOf(ip), svc.Spec.IPFamilies)
		}
	}
	return req, nil
}

// statusAddrs reads the addresses a Service's status says it holds.
func statusAddrs(svc *v1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// ingressStatus is the status for the given assignments. ipMode VIP tells
// kube-proxy to route the address locally, as the address really is served
// by the nodes themselves.
func ingressStatus(as []ipam.Assignment) *v1.LoadBalancerStatus {
	st := &v1.LoadBalancerStatus{}
	for _, a := range as {
		mode := v1.LoadBalancerIPModeVIP
		st.Ingress = append(st.Ingress, v1.LoadBalancerIngress{IP: a.IP.String(), IPMode: &mode})
	}
	return st
}
