// Package eligibility decides which nodes may announce a load-balancer IP.
//
// A node is eligible for an IP of a Service when its Ready condition allows
// it (see below), it is not labelled
// node.kubernetes.io/exclude-from-external-load-balancers, it matches the
// pool's node-selectors (if any) and, when the Service has
// externalTrafficPolicy: Local, it has a ready endpoint of that Service. The
// last rule matters because kube-proxy drops Local traffic on nodes without
// a local endpoint: announcing from such a node would black-hole the IP.
//
// # Readiness and liveness
//
// Liveness is not decided here: Node conditions take 40 s or more to notice
// a dead node, so for a layer2 pool the controller intersects the eligible
// set with the live members from the membership package, and for a bgp pool
// a route lives only as long as its node's BGP sessions. The Ready condition therefore only says
// whether the kubelet has vetoed the node:
//
//   - Ready=True: eligible.
//   - Ready=False: not eligible. The kubelet itself, which sees the node,
//     reports it unhealthy (a network plugin that is not ready, say), so
//     traffic sent there would likely fail, however alive its announcer is.
//   - Ready=Unknown: eligible, unless the kubelet never reported at all.
//     The node-lifecycle controller sets Unknown when the kubelet's status
//     stops arriving at the API server, which says that the control plane
//     lost the kubelet, not that the node's data path is dead. It happens
//     to every node at once after an API-server outage longer than the
//     node-monitor grace period (40 s by default), and treating it as
//     NotReady would withdraw every IP of the cluster right after the API
//     returns. A node that is really gone has left the membership within a
//     second and lost its BGP sessions, so liveness still removes it.
//     (kubectl shows Unknown as NotReady; only the condition's status
//     tells them apart.)
//   - No Ready condition, or Unknown with reason NodeStatusNeverUpdated: not
//     eligible; the kubelet has never said the node works.
//
// The node-lifecycle controller overwrites the condition, so a node whose
// kubelet reported False and then went silent turns Unknown and eligible
// again while its announcer is a live member: this package prefers keeping
// IPs served over the kubelet's last word from before it went silent.
package eligibility

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// ExcludeLabel marks nodes that must not receive load-balancer traffic. Its
// presence counts, whatever its value, as for the Kubernetes service
// controller.
const ExcludeLabel = corev1.LabelNodeExcludeBalancers

// NeverUpdated is the reason the node-lifecycle controller gives to a
// Ready=Unknown condition when the kubelet has never posted the node's
// status.
const NeverUpdated = "NodeStatusNeverUpdated"

// nodeReason says why a node may not announce a pool's IPs; empty means it
// may.
func nodeReason(node *corev1.Node, pool *config.Pool) string {
	if r := readyReason(node); r != "" {
		return r
	}
	if _, ok := node.Labels[ExcludeLabel]; ok {
		return "node is labelled " + ExcludeLabel
	}
	if !MatchesAny(pool.NodeSelector, node.Labels) {
		return "node does not match the node-selectors of pool " + pool.Name
	}
	return ""
}

// NodeEligible says whether node may announce IPs of pool, before looking
// at any Service's endpoints.
func NodeEligible(node *corev1.Node, pool *config.Pool) bool {
	return nodeReason(node, pool) == ""
}

// readyReason says why the node's Ready condition keeps it from
// announcing, as the package doc explains; empty means it does not.
func readyReason(node *corev1.Node) string {
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		switch {
		case c.Status == corev1.ConditionTrue:
			return ""
		case c.Status == corev1.ConditionUnknown && c.Reason != NeverUpdated:
			return ""
		case c.Status == corev1.ConditionUnknown:
			return "the kubelet never reported the node's status"
		default:
			return "node is not Ready"
		}
	}
	return "node has no Ready condition yet"
}

// MatchesAny says whether set matches one of sels. No selectors means every
// node, as config.Pool.NodeSelector documents.
func MatchesAny(sels []labels.Selector, set map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}

// LocalTraffic says whether the Service sends external traffic only to
// endpoints on the node that received it.
func LocalTraffic(svc *corev1.Service) bool {
	return svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// ReadyEndpointNodes returns the names of nodes that have at least one ready
// endpoint in slices, which must all belong to one Service. A nil Ready
// condition counts as ready, as the EndpointSlice API asks consumers to
// treat unknown readiness.
func ReadyEndpointNodes(slices []*discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil || *ep.NodeName == "" {
				continue
			}
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			out[*ep.NodeName] = true
		}
	}
	return out
}
