package overview

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Where deploy/ and the Helm chart put the cloud-config.
const (
	DefaultNamespace = "baremetal-system"
	DefaultConfigMap = "baremetal-cloud-config"
	DefaultKey       = "cloud-config.yaml"
)

// Source says where the cloud-config is.
type Source struct {
	Namespace, ConfigMap, Key string
}

// PoolUsage is one pool's line.
type PoolUsage struct {
	Name     string
	Protocol config.Protocol
	// Size is how many addresses the pool can assign.
	Size *big.Int
	// Used counts the distinct IPs of our Services in the pool.
	Used int
}

// Free is Size less Used, never negative.
func (p PoolUsage) Free() *big.Int {
	f := new(big.Int).Sub(p.Size, big.NewInt(int64(p.Used)))
	if f.Sign() < 0 {
		return new(big.Int)
	}
	return f
}

// ServiceIP is one IP of one Service.
type ServiceIP struct {
	Service string // namespace/name
	// IP is invalid while the Service has none.
	IP netip.Addr
	// Entry is what the announcers' condition says of IP; when there is
	// no condition (yet), Entry has only the pool and protocol from the
	// cloud-config, and Note says so.
	Entry servicestatus.Entry
	Note  string
}

// NodePeers is one node's configured BGP peers.
type NodePeers struct {
	Node  string
	Peers []string
}

// Overview is everything the screen shows.
type Overview struct {
	Pools    []PoolUsage
	Services []ServiceIP
	// Nodes are set only when the cloud-config has BGP peers.
	Nodes []NodePeers
	// Problems are what could not be read, each naming the object.
	Problems []string
}

// Gather reads the cloud-config, the Services and the Nodes. Only a
// failure to list Services is an error: without the rest the screen is
// still useful, and Problems says what is missing.
func Gather(ctx context.Context, client kubernetes.Interface, src Source) (*Overview, error) {
	o := &Overview{}
	cfg := readConfig(ctx, client, src, o)
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	used := map[string]map[netip.Addr]bool{}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil {
			continue
		}
		rows := serviceIPs(svc, cfg)
		for _, r := range rows {
			if r.IP.IsValid() && r.Entry.Pool != "" {
				if used[r.Entry.Pool] == nil {
					used[r.Entry.Pool] = map[netip.Addr]bool{}
				}
				used[r.Entry.Pool][r.IP] = true
			}
		}
		o.Services = append(o.Services, rows...)
	}
	slices.SortFunc(o.Services, func(a, b ServiceIP) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	if cfg != nil {
		for i := range cfg.Pools {
			p := &cfg.Pools[i]
			o.Pools = append(o.Pools, PoolUsage{Name: p.Name, Protocol: p.Protocol, Size: p.Size(), Used: len(used[p.Name])})
		}
		if len(cfg.Peers) > 0 {
			o.Nodes = nodePeers(ctx, client, cfg, o)
		}
	}
	return o, nil
}

// readConfig reads and parses the cloud-config, or notes why it cannot.
func readConfig(ctx context.Context, client kubernetes.Interface, src Source, o *Overview) *config.Config {
	where := fmt.Sprintf("ConfigMap %s/%s", src.Namespace, src.ConfigMap)
	cm, err := client.CoreV1().ConfigMaps(src.Namespace).Get(ctx, src.ConfigMap, metav1.GetOptions{})
	if err != nil {
		o.Problems = append(o.Problems, fmt.Sprintf("cannot read the cloud-config (%s): %v; pools are not shown", where, err))
		return nil
	}
	data, ok := cm.Data[src.Key]
	if !ok {
		o.Problems = append(o.Problems, fmt.Sprintf("%s has no key %q; pools are not shown", where, src.Key))
		return nil
	}
	cfg, err := config.Parse([]byte(data))
	if err != nil {
		o.Problems = append(o.Problems, fmt.Sprintf("%s key %q: %v", where, src.Key, err))
		return nil
	}
	return cfg
}

// serviceIPs are svc's rows: one per IP, or one pending row.
func serviceIPs(svc *corev1.Service, cfg *config.Config) []ServiceIP {
	name := svc.Namespace + "/" + svc.Name
	byIP := map[netip.Addr]servicestatus.Entry{}
	note := "no condition yet: the announcers have not written one"
	if c := servicestatus.Find(svc.Status.Conditions); c != nil {
		entries, err := servicestatus.Parse(c.Message)
		if err != nil {
			note = "unreadable condition: " + err.Error()
		}
		for _, e := range entries {
			byIP[e.IP] = e
		}
	}
	var out []ServiceIP
	seen := map[netip.Addr]bool{}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil || seen[ip.Unmap()] {
			continue
		}
		ip = ip.Unmap()
		seen[ip] = true
		if e, ok := byIP[ip]; ok {
			out = append(out, ServiceIP{Service: name, IP: ip, Entry: e})
			continue
		}
		r := ServiceIP{Service: name, IP: ip, Entry: servicestatus.Entry{IP: ip}, Note: note}
		if cfg != nil {
			for i := range cfg.Pools {
				if cfg.Pools[i].Contains(ip) {
					r.Entry.Pool, r.Entry.Protocol = cfg.Pools[i].Name, string(cfg.Pools[i].Protocol)
				}
			}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		out = append(out, ServiceIP{Service: name, Note: "no IP yet: see `kubectl describe service` for the CCM's events"})
	}
	return out
}

// nodePeers lists, per node, the configured peers whose node-selectors
// match it.
func nodePeers(ctx context.Context, client kubernetes.Interface, cfg *config.Config, o *Overview) []NodePeers {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		o.Problems = append(o.Problems, fmt.Sprintf("cannot list Nodes: %v; BGP peers per node are not shown", err))
		return nil
	}
	var out []NodePeers
	for _, n := range nodes.Items {
		np := NodePeers{Node: n.Name}
		for _, p := range cfg.Peers {
			if eligibility.MatchesAny(p.NodeSelector, n.Labels) {
				np.Peers = append(np.Peers, fmt.Sprintf("%s (AS %d)", p.Address, p.PeerASN))
			}
		}
		out = append(out, np)
	}
	slices.SortFunc(out, func(a, b NodePeers) int { return strings.Compare(a.Node, b.Node) })
	return out
}
