package loadbalancer

import (
	"fmt"
	"net/netip"
	"strings"
)

// The annotation prefixes we read. MetalLB's two are accepted so that
// Services written for MetalLB keep working unchanged; ours is listed last.
var annotationPrefixes = []string{
	"metallb.universe.tf/",
	"metallb.io/",
	AnnotationPrefix,
}

// AnnotationPrefix is the prefix of this project's own annotations.
const AnnotationPrefix = "cloud-provider-baremetal.io/"

// The annotation names, without prefix.
const (
	annotationPool     = "address-pool"
	annotationIPs      = "loadBalancerIPs"
	annotationOurIPs   = "load-balancer-ips"
	annotationShare    = "allow-shared-ip"
	annotationRetryKey = "allocation-retry"
)

// RetryAnnotation is written on a pending Service when an address is freed,
// only to make the service controller sync it again at once instead of after
// its back-off. Its value is meaningless.
const RetryAnnotation = AnnotationPrefix + annotationRetryKey

// Annotations is what a Service's annotations ask of the allocator.
type Annotations struct {
	Pool       string
	IPs        []netip.Addr
	SharingKey string
}

// ParseAnnotations reads the pool, requested-IPs and sharing annotations.
// The same setting given under two prefixes must agree. Errors name the
// annotation and its value.
func ParseAnnotations(ann map[string]string) (Annotations, error) {
	var out Annotations
	pool, err := lookup(ann, annotationPool)
	if err != nil {
		return out, err
	}
	out.Pool = pool.value
	if out.Pool != "" && strings.TrimSpace(out.Pool) != out.Pool {
		return out, fmt.Errorf("annotation %s: %q has leading or trailing spaces", pool.key, out.Pool)
	}

	share, err := lookup(ann, annotationShare)
	if err != nil {
		return out, err
	}
	out.SharingKey = share.value

	ips, err := lookup(ann, annotationIPs, annotationOurIPs)
	if err != nil {
		return out, err
	}
	if ips.value != "" {
		out.IPs, err = parseIPList(ips.value)
		if err != nil {
			return out, fmt.Errorf("annotation %s: %q: %w", ips.key, ips.value, err)
		}
	}
	return out, nil
}

type found struct{ key, value string }

// lookup finds a setting under every prefix and name, and insists that all
// the places it is given agree.
func lookup(ann map[string]string, names ...string) (found, error) {
	var f found
	for _, prefix := range annotationPrefixes {
		for _, name := range names {
			k := prefix + name
			v, ok := ann[k]
			if !ok {
				continue
			}
			if f.key != "" && v != f.value {
				return f, fmt.Errorf("annotations %s=%q and %s=%q disagree", f.key, f.value, k, v)
			}
			if f.key == "" {
				f = found{key: k, value: v}
			}
		}
	}
	return f, nil
}

// parseIPList parses "ip[,ip]" with at most one address per family.
func parseIPList(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("empty entry")
		}
		ip, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", part)
		}
		if ip.Zone() != "" {
			return nil, fmt.Errorf("%q has a zone", part)
		}
		ip = ip.Unmap()
		for _, prev := range out {
			if prev.Is4() == ip.Is4() {
				return nil, fmt.Errorf("%s and %s are of the same family; give at most one IPv4 and one IPv6 address", prev, ip)
			}
		}
		out = append(out, ip)
	}
	return out, nil
}
