package loadbalancer

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/loadbalancer/ipam"
)

// The ConfigMap through which the CCM leader tells the announcers which
// retained addresses to keep announcing, and under which pool settings
// (contract C2).
const (
	// RetainedConfigMap is its name, in the CCM's own namespace.
	RetainedConfigMap = "baremetal-retained-addresses"
	// RetainedConfigMapKey is the data key holding a cloud-config document
	// with only address-pools.
	RetainedConfigMapKey = "address-pools.yaml"
	// NamespaceEnv names the CCM's namespace (from the downward API);
	// DefaultNamespace applies when it is unset.
	NamespaceEnv     = "POD_NAMESPACE"
	DefaultNamespace = "baremetal-system"
)

// EventAddressRetained is the reason of the Warning event on a Service
// whose address is retained.
const EventAddressRetained = "AddressRetained"

// retention flags retained addresses (event, metric, log line) and keeps
// the ConfigMap of them current. Only the leader runs it: the provider is
// initialised only once this replica leads.
type retention struct {
	mu sync.Mutex
	// gen is the allocator's retained generation last looked at.
	gen     uint64
	current []ipam.RetainedAddress
	// flagged holds "address service" for each retained address and holder
	// already flagged, so each is flagged once.
	flagged map[string]bool
	// pools are the settings of the pool that last contained each retained
	// address: from the config while this process ran, else from the
	// ConfigMap as the previous leader left it.
	pools map[netip.Addr]config.Pool

	namespace string
	// published is the ConfigMap's data as last read or written; exists is
	// whether the ConfigMap exists.
	published string
	exists    bool
	// unknownLogged is the last list of addresses logged as unpublishable.
	unknownLogged string
	kicks         chan struct{}
}

func newRetention() *retention {
	ns := os.Getenv(NamespaceEnv)
	if ns == "" {
		ns = DefaultNamespace
	}
	return &retention{
		flagged:   map[string]bool{},
		pools:     map[netip.Addr]config.Pool{},
		namespace: ns,
		kicks:     make(chan struct{}, 1),
	}
}

func (r *retention) kick() {
	select {
	case r.kicks <- struct{}{}:
	default:
	}
}

// noteRetained looks at the retained addresses if they changed since the
// last look: it flags new ones, updates the gauge and asks for the
// ConfigMap to be written. It is cheap when nothing changed, so it follows
// every change of the allocator.
func (lb *LoadBalancer) noteRetained(ctx context.Context) {
	r := lb.retention
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := lb.alloc.RetainedGeneration()
	if gen == r.gen {
		return
	}
	r.gen = gen
	r.current = lb.alloc.Retained()
	retainedAddresses.Set(float64(len(r.current)))

	logger := klog.FromContext(ctx)
	flagged := make(map[string]bool, len(r.flagged))
	keep := make(map[netip.Addr]bool, len(r.current))
	for _, ra := range r.current {
		keep[ra.IP] = true
		if ra.Last != nil && !ra.Contained {
			r.pools[ra.IP] = *ra.Last
		}
		for _, key := range ra.Holders {
			id := ra.IP.String() + " " + key
			flagged[id] = true
			if r.flagged[id] {
				continue
			}
			logger.Info("Address retained: the Service keeps it although the cloud-config in effect would not give it now",
				"address", ra.IP, "service", key, "reason", ra.Reason)
			lb.event(key, v1.EventTypeWarning, EventAddressRetained,
				"Keeping %s for this Service although the cloud-config in effect would not give it now: %s. No other Service gets it; it is freed when this Service releases it.",
				ra.IP, ra.Reason)
		}
	}
	r.flagged = flagged
	for a := range r.pools {
		if !keep[a] {
			delete(r.pools, a)
		}
	}
	r.kick()
}

// readRetainedConfigMap loads the previous leader's ConfigMap, so that
// retained addresses restored from status keep their old pool's settings.
func (lb *LoadBalancer) readRetainedConfigMap(ctx context.Context) error {
	r := lb.retention
	cm, err := lb.client.CoreV1().ConfigMaps(r.namespace).Get(ctx, RetainedConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exists = true
	r.published = cm.Data[RetainedConfigMapKey]
	if r.published == "" {
		return nil
	}
	cfg, err := config.Parse([]byte(r.published))
	if err != nil {
		return fmt.Errorf("ConfigMap %s/%s, key %s: %w", r.namespace, RetainedConfigMap, RetainedConfigMapKey, err)
	}
	for _, p := range cfg.Pools {
		for _, rg := range p.Ranges {
			// Each entry is one address, but adjacent ones are merged into
			// a range; stop at a bound in case someone wrote a wide one.
			n := 0
			for a := rg.From(); a.IsValid() && a.Compare(rg.To()) <= 0 && n < 1<<16; a = a.Next() {
				r.pools[a] = p
				n++
			}
		}
	}
	return nil
}

// retainedVerifyInterval is how often the leader reads the ConfigMap back
// and corrects it: a deposed leader, paused past its lease, may have written
// a stale list after this one's last write.
const retainedVerifyInterval = 30 * time.Second

// runRetainedPublisher writes the ConfigMap when the retained addresses
// change, retrying with a back-off on failure, until ctx ends.
func (lb *LoadBalancer) runRetainedPublisher(ctx context.Context) {
	r := lb.retention
	logger := klog.FromContext(ctx)
	backoff := time.Second
	var retry <-chan time.Time
	verify := time.NewTicker(retainedVerifyInterval)
	defer verify.Stop()
	for {
		check := false
		select {
		case <-ctx.Done():
			return
		case <-r.kicks:
		case <-retry:
		case <-verify.C:
			check = true
		}
		retry = nil
		if err := lb.publishRetained(ctx, check); err != nil {
			logger.Error(err, "Writing the retained-addresses ConfigMap; will retry", "configMap", klog.KRef(r.namespace, RetainedConfigMap), "retryIn", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

// publishRetained writes the ConfigMap if its content would change; with
// check, it reads the ConfigMap even if this process wrote that content.
func (lb *LoadBalancer) publishRetained(ctx context.Context, check bool) error {
	r := lb.retention
	logger := klog.FromContext(ctx)
	r.mu.Lock()
	data, unknown := renderRetained(r.current, r.pools)
	same := data == r.published
	n := len(r.current)
	exists := r.exists
	if u := fmt.Sprint(unknown); len(unknown) > 0 && u != r.unknownLogged {
		logger.Info("Retained addresses whose old pool settings are unknown are not published for the announcers", "addresses", unknown)
		r.unknownLogged = u
	}
	r.mu.Unlock()
	if !check && (same || (n == 0 && !exists)) {
		return nil
	}
	cms := lb.client.CoreV1().ConfigMaps(r.namespace)
	cm, err := cms.Get(ctx, RetainedConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		exists = false
		if n == 0 {
			break // nothing to publish, and nothing published
		}
		cm = &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: RetainedConfigMap, Namespace: r.namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "baremetal-cloud-controller-manager"},
			},
			Data: map[string]string{RetainedConfigMapKey: data},
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return err
		}
		exists = true
		logger.V(2).Info("Published the retained addresses", "configMap", klog.KRef(r.namespace, RetainedConfigMap), "retained", n)
	case err != nil:
		return err
	default:
		exists = true
		if cm.Data[RetainedConfigMapKey] == data {
			break
		}
		cm = cm.DeepCopy()
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[RetainedConfigMapKey] = data
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return err
		}
		logger.V(2).Info("Published the retained addresses", "configMap", klog.KRef(r.namespace, RetainedConfigMap), "retained", n)
	}
	r.mu.Lock()
	r.published, r.exists = data, exists
	r.mu.Unlock()
	return nil
}

// publishedPool is one pool of the ConfigMap: the announcer-facing settings
// of the pool that last contained the addresses. Allocation settings
// (priority, namespaces, service-selectors, avoid-buggy-ips) are left out:
// these addresses are allocated already, and auto-assign is false so that
// nothing reading the document as a cloud-config hands them out.
// Aggregation lengths are left at /32 and /128: an old pool's aggregate
// would now cover addresses that are no longer ours. Communities are
// written as values, because their names lived in the old file.
type publishedPool struct {
	Name              string                   `json:"name"`
	Protocol          config.Protocol          `json:"protocol"`
	Addresses         []string                 `json:"addresses"`
	AutoAssign        bool                     `json:"auto-assign"`
	BGPAdvertisements []publishedAdvertisement `json:"bgp-advertisements,omitempty"`
	NodeSelectors     []config.NodeSelector    `json:"node-selectors,omitempty"`
	Interfaces        []string                 `json:"interfaces,omitempty"`
}

type publishedAdvertisement struct {
	LocalPref        *uint32  `json:"localpref,omitempty"`
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large-communities,omitempty"`
}

// renderRetained is the ConfigMap's data for the retained addresses that no
// pool of the config in effect contains, grouped by their old pool, and the
// addresses left out because their old pool is unknown.
func renderRetained(current []ipam.RetainedAddress, pools map[netip.Addr]config.Pool) (string, []netip.Addr) {
	byName := map[string]*publishedPool{}
	var unknown []netip.Addr
	for _, ra := range current {
		if ra.Contained {
			continue // the announcers' own config covers it
		}
		p, ok := pools[ra.IP]
		if !ok {
			unknown = append(unknown, ra.IP)
			continue
		}
		pp := byName[p.Name]
		if pp == nil {
			pp = &publishedPool{Name: p.Name, Protocol: p.Protocol, NodeSelectors: p.NodeSelectors, Interfaces: p.Interfaces}
			for _, adv := range p.BGPAdvertisements {
				pa := publishedAdvertisement{LocalPref: adv.LocalPref}
				for _, c := range adv.ParsedCommunities {
					pa.Communities = append(pa.Communities, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
				}
				for _, c := range adv.ParsedLargeCommunities {
					pa.LargeCommunities = append(pa.LargeCommunities, fmt.Sprintf("%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2))
				}
				pp.BGPAdvertisements = append(pp.BGPAdvertisements, pa)
			}
			byName[p.Name] = pp
		}
		pp.Addresses = append(pp.Addresses, netip.PrefixFrom(ra.IP, ra.IP.BitLen()).String())
	}
	doc := struct {
		AddressPools []publishedPool `json:"address-pools"`
	}{AddressPools: []publishedPool{}}
	for _, name := range sortedKeys(byName) {
		doc.AddressPools = append(doc.AddressPools, *byName[name])
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		// Plain strings, numbers and lists: this cannot fail.
		panic(fmt.Sprintf("rendering retained addresses: %v", err))
	}
	return string(out), unknown
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
