package controller

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/coverage"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Event reasons recorded on Services.
const (
	// ReasonNodeAssigned says which node announces an IP; a new one is
	// recorded whenever that changes.
	ReasonNodeAssigned = "nodeAssigned"
	// ReasonNoEligibleNode says an IP this node announced has no node
	// left that may announce it.
	ReasonNoEligibleNode = "noEligibleNode"
)

// DefaultResyncPeriod is how often a pass runs with no change at all. It
// retries what failed (a socket, an interface that appeared late) and
// repairs anything a missed notification left behind.
const DefaultResyncPeriod = 10 * time.Second

// MinPassInterval spaces passes caused by Kubernetes changes. A pass over
// 5,000 Services costs a few milliseconds; during a bulk change (a
// namespace of Services created, EndpointSlices churning in a rollout)
// back-to-back passes would keep a core busy on every node. Changes that
// arrive meanwhile are coalesced into the next pass. Membership changes are
// not held back: they are what failover waits for.
const MinPassInterval = 100 * time.Millisecond

// endpointIndex indexes EndpointSlices by "namespace/service".
const endpointIndex = "service"

// Members is the live announcer set, from package membership.
type Members interface {
	// Members returns the names of the live announcers.
	Members() []string
	// Changes delivers a value after the member set changed.
	Changes() <-chan struct{}
	// SetPeers sets the node IPs that should be members.
	SetPeers([]netip.Addr)
}

// Config says what a Controller works with.
type Config struct {
	// NodeName is the node this announcer runs on.
	NodeName string
	// NodeIP overrides the node's InternalIP (--node-ip); it decides the
	// address family of the peers. Invalid means the Node's InternalIP.
	NodeIP netip.Addr
	// Cloud is the parsed cloud-config.
	Cloud *config.Config
	// Client reads Services, EndpointSlices and Nodes.
	Client kubernetes.Interface
	// Announcers put this node's announcements on the wire, one per
	// protocol: config.Layer2's gets the IPs of layer2 pools that this
	// node owns, config.BGP's those of bgp pools this node is eligible
	// for. A protocol without one leaves its pools unannounced.
	Announcers map[config.Protocol]announcer.Announcer
	// Recorder records events on Services.
	Recorder record.EventRecorder
	// DefaultInterface returns the interface that holds the node's IP; it
	// is asked again until it succeeds.
	DefaultInterface func() (string, error)
	// ResyncPeriod is DefaultResyncPeriod when zero.
	ResyncPeriod time.Duration

	// Namespace is the announcer's own namespace, where its Pods and the
	// CCM's ConfigMap of retained addresses (package coverage) are read.
	// Empty reads neither: no retained addresses, and every Node is taken
	// to run an announcer.
	Namespace string
	// AnnouncerSelector is a label selector of the announcer Pods in
	// Namespace. The nodes that have one are the voters of the
	// split-brain guard (package quorum). Empty, or matching no Pod,
	// means every Node.
	AnnouncerSelector string
	// Health says which interfaces the layer2 announcer can use; a node
	// that can use none of a pool's tells the others, which pass it over
	// for that pool. Nil means every interface is usable.
	Health Health
	// WriteStatus keeps the announcement condition on the Services this
	// node is the writer of (status.go); it needs services/status patch.
	WriteStatus bool
}

// everything selects every object of a lister.
var everything = labels.Everything()

// Controller computes and applies this node's announcements.
type Controller struct {
	cfg     Config
	factory informers.SharedInformerFactory
	// factories are factory and those of the namespaced informers.
	factories []informers.SharedInformerFactory

	services  corelisters.ServiceLister
	nodes     corelisters.NodeLister
	endpoints cache.Indexer
	synced    []cache.InformerSynced

	// pods lists the announcer Pods; nil without AnnouncerSelector.
	pods corelisters.PodLister

	trigger chan struct{}
	// cloud is the cloud-config in effect: Config.Cloud, then each
	// version given to SetCloud.
	cloud atomic.Pointer[config.Config]
	// retained are the pools of the CCM's retained addresses, nil until
	// read.
	retained atomic.Pointer[config.Config]

	// State of the reconcile goroutine only.
	defaultInterface string
	announced        map[netip.Addr]announcer.Announcement
	// held are the IPs this node held without announcing them after the
	// last pass, with sticky owners (package owner, "Held claims").
	held   map[netip.Addr]bool
	owners map[netip.Addr]string
	// counts are how many IPs each announcer announced after the last
	// pass.
	counts   map[config.Protocol]int
	live     map[string]bool // members at the last pass
	coverage *coverage.Coverage
	guard    *guard
	// wakeAt is when a pool settles and a pass is due, or zero.
	wakeAt time.Time
	// status writes the announcement condition; nil without
	// Config.WriteStatus.
	status *statusWriter
}

// reannouncer is an Announcer that can repeat its announcements (layer2's
// gratuitous ARP and unsolicited NA).
type reannouncer interface{ Reannounce() }

// New builds a Controller and its informers. Call Start, then Run.
func New(cfg Config) *Controller {
	if cfg.ResyncPeriod == 0 {
		cfg.ResyncPeriod = DefaultResyncPeriod
	}
	c := &Controller{
		cfg:       cfg,
		factory:   informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(strip)),
		trigger:   make(chan struct{}, 1),
		announced: map[netip.Addr]announcer.Announcement{},
		owners:    map[netip.Addr]string{},
		counts:    map[config.Protocol]int{},
		coverage:  coverage.New(),
		guard:     newGuard(),
	}
	c.cloud.Store(cfg.Cloud)
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.Trigger() },
		UpdateFunc: func(any, any) { c.Trigger() },
		DeleteFunc: func(any) { c.Trigger() },
	}
	svc := c.factory.Core().V1().Services()
	node := c.factory.Core().V1().Nodes()
	eps := c.factory.Discovery().V1().EndpointSlices()
	// AddIndexers only fails once the informer has started.
	_ = eps.Informer().AddIndexers(cache.Indexers{endpointIndex: indexByService})
	for _, inf := range []cache.SharedIndexInformer{svc.Informer(), node.Informer(), eps.Informer()} {
		// Fails only on a stopped informer.
		_, _ = inf.AddEventHandler(handler)
		c.synced = append(c.synced, inf.HasSynced)
	}
	c.services = svc.Lister()
	c.nodes = node.Lister()
	c.endpoints = eps.Informer().GetIndexer()
	c.factories = []informers.SharedInformerFactory{c.factory}
	if cfg.WriteStatus {
		c.status = newStatusWriter(cfg.Client, c.services)
	}

	if cfg.Namespace != "" && cfg.AnnouncerSelector != "" {
		f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace),
			informers.WithTransform(strip),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = cfg.AnnouncerSelector }))
		pods := f.Core().V1().Pods()
		_, _ = pods.Informer().AddEventHandler(handler)
		c.synced = append(c.synced, pods.Informer().HasSynced)
		c.pods = pods.Lister()
		c.factories = append(c.factories, f)
	}
	if cfg.Namespace != "" {
		f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", coverage.RetainedConfigMap).String()
			}))
		cms := f.Core().V1().ConfigMaps().Informer()
		_, _ = cms.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.setRetained(obj) },
			UpdateFunc: func(_, obj any) { c.setRetained(obj) },
			DeleteFunc: func(any) { c.retained.Store(nil); c.Trigger() },
		})
		c.synced = append(c.synced, cms.HasSynced)
		c.factories = append(c.factories, f)
	}
	return c
}

// setRetained reads the CCM's ConfigMap of retained addresses. An invalid
// one changes nothing: the addresses stay announced under the pools this
// node remembers.
func (c *Controller) setRetained(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	cfg, err := coverage.ParseRetained(cm.Data)
	if err != nil {
		klog.Background().Error(err, "The CCM's retained addresses are invalid; keeping the previous ones")
		return
	}
	c.retained.Store(cfg)
	c.Trigger()
}

func indexByService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

// Start starts the informers and waits until their caches are filled, or
// ctx ends. The informers run until ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	for _, f := range c.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("waiting for the Service, Node, EndpointSlice, announcer Pod and retained-address caches: %w", context.Cause(ctx))
	}
	return nil
}

// Shutdown waits for the informers to stop after ctx of Start ended.
func (c *Controller) Shutdown() {
	for _, f := range c.factories {
		f.Shutdown()
	}
}

// SetCloud puts a new version of the cloud-config in effect from the next
// pass, which it asks for: IPs of pools that are gone or changed protocol
// are withdrawn, and BGP peers and advertisements follow the new version.
func (c *Controller) SetCloud(cfg *config.Config) {
	c.cloud.Store(cfg)
	c.Trigger()
}

// Trigger asks for a pass. Calls coalesce.
func (c *Controller) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends: at once, then after every change of the
// caches (at most once per MinPassInterval) or of members (at once), and
// every ResyncPeriod. When Run returns the announcements stay as they
// were; the caller decides when to withdraw them (see the app's shutdown).
func (c *Controller) Run(ctx context.Context, members Members) {
	logger := klog.FromContext(ctx)
	t := time.NewTicker(c.cfg.ResyncPeriod)
	defer t.Stop()
	hold := time.NewTimer(0)
	defer hold.Stop()
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
	// Interface changes are as urgent as member changes: an owner that
	// lost its interface hands over at once.
	var health <-chan struct{}
	if c.cfg.Health != nil {
		health = c.cfg.Health.HealthChanges()
	}
	if c.status != nil {
		statusDone := make(chan struct{})
		defer func() { <-statusDone }()
		go func() { defer close(statusDone); c.status.run(ctx) }()
	}
	for {
		c.reconcile(logger, members)
		earliest := time.Now().Add(MinPassInterval)
		if !c.wakeAt.IsZero() {
			settle.Reset(time.Until(c.wakeAt))
		} else {
			settle.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return
		case <-members.Changes():
			continue
		case <-health:
			continue
		case <-settle.C:
			continue
		case <-t.C:
			continue
		case <-c.trigger:
		}
		// A Kubernetes change: wait out the interval, unless membership
		// changes meanwhile.
		hold.Reset(time.Until(earliest))
		select {
		case <-ctx.Done():
			return
		case <-members.Changes():
		case <-health:
		case <-hold.C:
		}
	}
}

// reconcile runs one pass.
func (c *Controller) reconcile(logger klog.Logger, members Members) {
	start := time.Now()
	defer func() { reconcileDuration.Observe(time.Since(start).Seconds()) }()

	if c.defaultInterface == "" && c.cfg.DefaultInterface != nil {
		name, err := c.cfg.DefaultInterface()
		if err != nil {
			logger.Error(err, "Cannot find the interface holding the node's IP; only pools with interfaces set are announced")
		} else {
			logger.Info("Default interface", "interface", name)
			c.defaultInterface = name
		}
	}

	live := map[string]bool{}
	for _, m := range members.Members() {
		live[m] = true
	}
	services, _ := c.services.List(labels.Everything())
	nodes, _ := c.nodes.List(labels.Everything())
	if self := c.selfIP(); self.IsValid() {
		members.SetPeers(c.PeerIPs(self))
	}

	g := c.runGuard(logger, start, members, live, services, nodes)
	c.wakeAt = g.wakeAt
	snap := snapshot{
		cloud:            c.cloud.Load(),
		self:             c.cfg.NodeName,
		defaultInterface: c.defaultInterface,
		services:         services,
		nodes:            nodes,
		endpointNodes:    c.endpointNodes,
		live:             live,
		covered:          g.covered,
		view:             g.view,
		verdict:          &g.verdict,
		announced:        c.announced,
		held:             c.held,
		settled:          g.settled,
		claims:           g.claims,
		rebalance:        g.rebalance,
	}
	decisions, mine := decide(snap)
	c.held = publishHeld(c.cfg.Announcers[config.Layer2], decisions)
	want := map[config.Protocol]map[netip.Addr]announcer.Announcement{config.Layer2: mine}
	if c.cfg.Announcers[config.BGP] != nil {
		want[config.BGP] = decideBGP(snap)
	}
	c.announce(logger, snap.cloud, want, live)
	c.live = live

	c.recordChanges(logger, decisions, mine)
	if c.status != nil {
		c.status.set(desiredStatus(snap, decisions, mine))
	}
	c.announced = mine
	owners := make(map[netip.Addr]string, len(decisions))
	for ip, d := range decisions {
		// An owner that holds the IP back does not announce it yet:
		// whoever did before still counts as the one it takes over from.
		if d.held != "" {
			owners[ip] = c.owners[ip]
			continue
		}
		owners[ip] = d.owner
	}
	c.owners = owners
}

// protocols are the protocols in the order a pass hands them to their
// announcers.
var protocols = []config.Protocol{config.Layer2, config.BGP}

// announce hands every announcer its protocol's share of this node's
// announcements, want. How an announcer puts them on the wire, and what
// else it needs to know of this node (the BGP speaker picks its peers by
// this node's labels), is its own business: package announcer is the seam.
func (c *Controller) announce(logger klog.Logger, cloud *config.Config, want map[config.Protocol]map[netip.Addr]announcer.Announcement, live map[string]bool) {
	for _, proto := range protocols {
		a := c.cfg.Announcers[proto]
		if a == nil {
			continue
		}
		if f, ok := a.(announcer.NodeFollower); ok {
			// Without its Node object the node is not eligible for
			// anything, and its peers cannot be selected: keep what the
			// announcer has, and announce nothing.
			if self, err := c.Node(); err == nil {
				if err := f.SetNode(cloud, self.Labels); err != nil {
					logger.Error(err, "The announcer could not be set up for this node in full; retrying on the next pass", "protocol", proto)
				}
			}
		}
		mine := want[proto]
		err := a.SetAnnouncements(mine)
		if err != nil {
			logger.Error(err, "Some announcements could not be set up; retrying on the next pass", "protocol", proto)
			reconciles.WithLabelValues("error").Inc()
		}
		// Every pass makes layer2 announcements: the pass is ok when they
		// were all set up. Another announcer's failure only adds an error.
		if proto == config.Layer2 && err == nil {
			reconciles.WithLabelValues("ok").Inc()
		}
		announcedIPs.WithLabelValues(string(proto)).Set(float64(len(mine)))
		if before := c.counts[proto]; len(mine) != before {
			logger.V(2).Info("Announcements", "protocol", proto, "ips", len(mine), "before", before)
		}
		c.counts[proto] = len(mine)
		// A node that joined may have announced some of this node's IPs
		// while it was cut off or starting up, and clients that followed
		// it stay with it until this node announces again.
		if r, ok := a.(reannouncer); ok && c.live != nil && joined(c.live, live) && len(mine) > 0 {
			logger.V(2).Info("A node joined; announcing again", "protocol", proto, "ips", len(mine))
			r.Reannounce()
		}
	}
}

// joined says whether now has a member that before has not.
func joined(before, now map[string]bool) bool {
	for m := range now {
		if !before[m] {
			return true
		}
	}
	return false
}

// endpointNodes returns the nodes with a ready endpoint of svc.
func (c *Controller) endpointNodes(svc *corev1.Service) map[string]bool {
	objs, _ := c.endpoints.ByIndex(endpointIndex, svc.Namespace+"/"+svc.Name)
	list := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			list = append(list, s)
		}
	}
	return eligibility.ReadyEndpointNodes(list)
}

// recordChanges logs and records events for what changed since the last
// pass: IPs this node started announcing (with the node it took over from,
// when there was one) and IPs it stopped announcing because no node may
// announce them any more. An IP that moved to another live node gets its
// event from that node.
func (c *Controller) recordChanges(logger klog.Logger, decisions map[netip.Addr]*ipDecision, mine map[netip.Addr]announcer.Announcement) {
	for ip, an := range mine {
		if _, ok := c.announced[ip]; ok {
			continue
		}
		d := decisions[ip]
		msg := fmt.Sprintf("announcing %s from node %s via layer2", ip, c.cfg.NodeName)
		if prev := c.owners[ip]; prev != "" && prev != c.cfg.NodeName {
			msg += fmt.Sprintf(" (taking over from node %s)", prev)
		}
		logger.Info("Announcing", "ip", ip, "pool", an.Pool, "interfaces", an.Interfaces, "services", an.Services, "previousOwner", c.owners[ip])
		for _, svc := range d.services {
			c.cfg.Recorder.Event(svc, corev1.EventTypeNormal, ReasonNodeAssigned, msg)
		}
	}
	for ip := range c.announced {
		if _, ok := mine[ip]; ok {
			continue
		}
		d := decisions[ip]
		switch {
		case d == nil:
			logger.Info("Withdrawn: no Service has the IP any more", "ip", ip)
		case d.held != "":
			logger.Info("Withdrawn: "+d.held, "ip", ip)
		case d.disagree:
			logger.Info("Withdrawn: the live announcers that share this node's definition of the pool are not a majority; another definition is being rolled out", "ip", ip, "pool", d.pool.Name)
		case d.owner == "":
			logger.Info("Withdrawn: no node may announce the IP", "ip", ip)
			for _, svc := range d.services {
				c.cfg.Recorder.Eventf(svc, corev1.EventTypeWarning, ReasonNoEligibleNode,
					"no node may announce %s any more (node %s stopped): no live node is Ready, not excluded, matches pool %s and, for externalTrafficPolicy: Local, has a ready endpoint",
					ip, c.cfg.NodeName, d.pool.Name)
			}
		default:
			logger.Info("Withdrawn: another node announces the IP", "ip", ip, "owner", d.owner)
		}
	}
}
