package controller

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// This file keeps the answer to "who announces my IP?" on each Service:
// the condition of package servicestatus. Every pass works out, from the
// decisions it just made, the condition of each Service this node is the
// writer of; a workqueue applies those that differ from the informer's
// copy. Nothing is written when nothing changed, so a restart or a resync
// writes nothing, and a failover writes only the moved Services.

// StatusWorkers apply conditions concurrently; the client's QPS is the
// real limit.
const StatusWorkers = 2

// MinRewriteInterval spaces two writes of one Service's condition by this
// node. Two nodes whose views differ for a moment (membership converging)
// may both think they are the writer; each write wakes the other's pass,
// and this keeps that to one write a second until the views agree.
const MinRewriteInterval = time.Second

var statusWrites = metrics.NewCounterVec(&metrics.CounterOpts{
	Namespace:      "baremetal_announcer",
	Name:           "service_status_writes_total",
	Help:           "Writes of the announcement condition on Services by this node, by result (ok or error).",
	StabilityLevel: metrics.ALPHA,
}, []string{"result"})

// statusWriter applies the desired conditions.
type statusWriter struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	queue    workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu sync.Mutex
	// desired are the Services this node writes; a nil condition removes
	// ours.
	desired map[types.NamespacedName]*metav1.Condition
	// written is when this node last wrote each Service.
	written map[types.NamespacedName]time.Time
}

func newStatusWriter(client kubernetes.Interface, services corelisters.ServiceLister) *statusWriter {
	return &statusWriter{
		client:   client,
		services: services,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "service_status"}),
		desired: map[types.NamespacedName]*metav1.Condition{},
		written: map[types.NamespacedName]time.Time{},
	}
}

// set replaces the desired conditions and queues the Services whose
// condition differs from the cache. Services this node no longer writes
// are dropped: their new writer owns them.
func (w *statusWriter) set(desired map[types.NamespacedName]*metav1.Condition) {
	w.mu.Lock()
	w.desired = desired
	for key := range w.written {
		if _, ok := desired[key]; !ok {
			delete(w.written, key)
		}
	}
	w.mu.Unlock()
	for key, want := range desired {
		svc, err := w.services.Services(key.Namespace).Get(key.Name)
		if err == nil && !conditionMatches(svc, want) {
			w.queue.Add(key)
		}
	}
}

// run applies queued conditions until ctx ends.
func (w *statusWriter) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	var wg sync.WaitGroup
	for range StatusWorkers {
		wg.Go(func() {
			for w.next(ctx) {
			}
		})
	}
	wg.Wait()
}

func (w *statusWriter) next(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	logger := klog.FromContext(ctx).WithValues("service", key)
	w.mu.Lock()
	want, ok := w.desired[key]
	last := w.written[key]
	w.mu.Unlock()
	if !ok {
		w.queue.Forget(key)
		return true
	}
	svc, err := w.services.Services(key.Namespace).Get(key.Name)
	if err != nil || conditionMatches(svc, want) {
		// Gone (the condition went with it), or already as wanted.
		w.queue.Forget(key)
		return true
	}
	if wait := MinRewriteInterval - time.Since(last); wait > 0 {
		w.queue.AddAfter(key, wait)
		return true
	}
	if err := w.apply(ctx, svc, want); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Deleted, or deleted and created again (the UID
			// precondition): the cache brings the news.
			w.queue.Forget(key)
			return true
		}
		logger.Error(err, "Cannot write the announcement condition; retrying")
		statusWrites.WithLabelValues("error").Inc()
		w.queue.AddRateLimited(key)
		return true
	}
	statusWrites.WithLabelValues("ok").Inc()
	logger.V(2).Info("Wrote the announcement condition", "condition", want)
	w.mu.Lock()
	w.written[key] = time.Now()
	w.mu.Unlock()
	w.queue.Forget(key)
	return true
}

// apply writes want (or removes ours when nil) by server-side apply. The
// transition time stays while the status does not change.
func (w *statusWriter) apply(ctx context.Context, svc *corev1.Service, want *metav1.Condition) error {
	st := corev1ac.ServiceStatus()
	if want != nil {
		since := metav1.Now()
		if cur := servicestatus.Find(svc.Status.Conditions); cur != nil && cur.Status == want.Status {
			since = cur.LastTransitionTime
		}
		st.WithConditions(metav1ac.Condition().
			WithType(want.Type).WithStatus(want.Status).WithReason(want.Reason).
			WithMessage(want.Message).WithLastTransitionTime(since))
	}
	ac := corev1ac.Service(svc.Name, svc.Namespace).WithUID(svc.UID).WithStatus(st)
	_, err := w.client.CoreV1().Services(svc.Namespace).ApplyStatus(ctx, ac,
		metav1.ApplyOptions{FieldManager: servicestatus.FieldManager, Force: true})
	return err
}

// conditionMatches says whether svc carries want (nil: none of ours).
func conditionMatches(svc *corev1.Service, want *metav1.Condition) bool {
	cur := servicestatus.Find(svc.Status.Conditions)
	if want == nil || cur == nil {
		return want == nil && cur == nil
	}
	return cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message
}

// desiredStatus works out the condition of every Service this node
// writes, from the pass's snapshot, its layer2 decisions and this node's
// layer2 announcements.
//
// The writer of a Service is the layer2 owner of its lowest owned IP, else
// the first live node (by name) that advertises one of its IPs by BGP,
// else the first live node. Every node computes the same, so each Service
// has one writer. A node that may not claim (split-brain guard) writes
// nothing: it may be the cut-off one, and two sides writing would only
// fight. Nor is a Service written whose pool this node's definition does
// not decide (its writer is among the nodes that do), or one with an IP
// its owner holds back for the settle time.
func desiredStatus(s snapshot, l2 map[netip.Addr]*ipDecision, mine map[netip.Addr]announcer.Announcement) map[types.NamespacedName]*metav1.Condition {
	out := map[types.NamespacedName]*metav1.Condition{}
	if s.verdict != nil && !s.verdict.Claim {
		return out
	}
	firstLive := ""
	for n := range s.live {
		if firstLive == "" || n < firstLive {
			firstLive = n
		}
	}
	bgp := bgpStatus(s)
	for _, svc := range s.services {
		key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		hasOurs := servicestatus.Find(svc.Status.Conditions) != nil
		if !ours(svc) {
			// No longer a LoadBalancer of ours: take our condition away.
			if hasOurs && firstLive == s.self {
				out[key] = nil
			}
			continue
		}
		var entries []servicestatus.Entry
		writer, bgpWriter, unknown := "", "", false
		seen := map[netip.Addr]bool{}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil || seen[ip.Unmap()] {
				continue
			}
			ip = ip.Unmap()
			seen[ip] = true
			switch {
			case l2[ip] != nil:
				d := l2[ip]
				// An IP the owner holds back keeps what its
				// condition said: after a restart or a pool
				// change it is taken over within the settle
				// time, and writing "settling" in between would
				// double the writes.
				if d.disagree || d.held != "" {
					unknown = true
				}
				entries = append(entries, layer2Entry(s, ip, d, mine))
				if d.owner != "" && writer == "" {
					writer = d.owner
				}
			case bgp[ip] != nil:
				e := bgp[ip]
				entries = append(entries, *e)
				for _, n := range e.Nodes {
					if s.live[n] && bgpWriter == "" {
						bgpWriter = n
					}
				}
			default:
				entries = append(entries, servicestatus.Entry{IP: ip, Reason: servicestatus.ReasonNotInPool,
					Detail: "the address lies in no pool of the cloud-config or of the CCM's retained addresses"})
			}
		}
		if unknown {
			continue
		}
		if writer == "" {
			writer = bgpWriter
		}
		if writer == "" {
			writer = firstLive
		}
		if writer != s.self {
			continue
		}
		if len(entries) == 0 {
			// No IP (yet, or any more): the CCM's events say why.
			if hasOurs {
				out[key] = nil
			}
			continue
		}
		c := servicestatus.Condition(entries)
		out[key] = &c
	}
	return out
}

// layer2Entry says who announces ip, from its decision.
func layer2Entry(s snapshot, ip netip.Addr, d *ipDecision, mine map[netip.Addr]announcer.Announcement) servicestatus.Entry {
	e := servicestatus.Entry{IP: ip, Pool: d.pool.Name, Protocol: servicestatus.Layer2}
	switch {
	case d.owner == "":
		e.Reason = servicestatus.ReasonNoEligibleNode
		e.Detail = fmt.Sprintf("no live node is Ready, not excluded, matches pool %s and, for externalTrafficPolicy: Local, has a ready endpoint", d.pool.Name)
		return e
	case d.owner != s.self:
		// Only the owner knows its default interface's name.
		e.Nodes, e.Interfaces = []string{d.owner}, d.pool.Interfaces
		return e
	}
	e.Nodes = []string{d.owner}
	if an, ok := mine[ip]; ok {
		e.Interfaces = an.Interfaces
	} else {
		e.Reason = servicestatus.ReasonNoInterface
		e.Detail = "node " + s.self + " does not know which interface holds its IP, and pool " + d.pool.Name + " names none"
	}
	return e
}

// bgpStatus says, for every IP of a bgp pool, which nodes advertise it
// and to which peers: decideBGP's rule for every node, not only this one.
func bgpStatus(s snapshot) map[netip.Addr]*servicestatus.Entry {
	decisions := group(s, config.BGP)
	out := make(map[netip.Addr]*servicestatus.Entry, len(decisions))
	eligible := memo(s.eligibleNodes)
	peersOf := memo(func(node string) []string { return nodePeers(s, node) })
	for ip, d := range decisions {
		names := eligible(d.pool)
		e := &servicestatus.Entry{IP: ip, Pool: d.pool.Name, Protocol: servicestatus.BGP}
		e.Nodes = slices.Sorted(slices.Values(candidates(s, d, names)))
		e.Nodes = slices.Compact(e.Nodes)
		peers := map[string]bool{}
		for _, n := range e.Nodes {
			for _, a := range peersOf(n) {
				peers[a] = true
			}
		}
		e.Peers = slices.Sorted(maps.Keys(peers))
		switch {
		case len(e.Nodes) == 0:
			e.Reason = servicestatus.ReasonNoEligibleNode
			e.Detail = fmt.Sprintf("no node is Ready, not excluded, matches pool %s and, for externalTrafficPolicy: Local, has a ready endpoint", d.pool.Name)
		case len(e.Peers) == 0:
			e.Reason = servicestatus.ReasonNoPeers
			e.Detail = fmt.Sprintf("nodes %s may advertise it, but no BGP peer's node-selectors match them", strings.Join(e.Nodes, ", "))
		}
		if e.Reason != "" {
			e.Nodes, e.Peers = nil, nil
		}
		out[ip] = e
	}
	return out
}

// nodePeers are the addresses of the configured peers whose
// node-selectors match node name.
func nodePeers(s snapshot, name string) []string {
	var node *corev1.Node
	for _, n := range s.nodes {
		if n.Name == name {
			node = n
			break
		}
	}
	if node == nil {
		return nil
	}
	var out []string
	for _, p := range s.cloud.Peers {
		if eligibility.MatchesAny(p.NodeSelector, node.Labels) {
			out = append(out, p.Address.String())
		}
	}
	return out
}
