package controller

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
)

// strip keeps only what the announcer reads of each object, so the
// informer caches stay small: a Node's image list alone can be tens of
// kilobytes, and managedFields double most objects. It mutates in place,
// which client-go allows for transforms, and is idempotent.
func strip(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		stripService(o)
	case *corev1.Node:
		stripNode(o)
	case *discoveryv1.EndpointSlice:
		stripEndpointSlice(o)
	case *corev1.Pod:
		stripPod(o)
	}
	return obj, nil
}

// stripPod keeps what the split-brain guard reads of an announcer Pod: its
// node, phase and Ready condition.
func stripPod(p *corev1.Pod) {
	keepMeta(&p.ObjectMeta, nil)
	p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName}
	var ready []corev1.PodCondition
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	p.Status = corev1.PodStatus{Phase: p.Status.Phase, Conditions: ready}
}

// keepMeta keeps the identity an event needs (name, namespace, UID,
// resourceVersion) and the labels if asked.
func keepMeta(m *metav1.ObjectMeta, labels map[string]string) {
	*m = metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            labels,
	}
}

func stripService(s *corev1.Service) {
	keepMeta(&s.ObjectMeta, nil)
	// The announcement condition stays, so that its writer writes only
	// what changed (status.go).
	var ours []metav1.Condition
	if c := servicestatus.Find(s.Status.Conditions); c != nil {
		ours = []metav1.Condition{*c}
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		s.Spec = corev1.ServiceSpec{Type: s.Spec.Type}
		s.Status = corev1.ServiceStatus{Conditions: ours}
		return
	}
	// The class says whose Service it is: only one without a class is
	// ours, and another implementation's IP must never be answered here,
	// even when it falls in one of our pools.
	s.Spec = corev1.ServiceSpec{
		Type:                  s.Spec.Type,
		ExternalTrafficPolicy: s.Spec.ExternalTrafficPolicy,
		LoadBalancerClass:     s.Spec.LoadBalancerClass,
	}
	ingress := s.Status.LoadBalancer.Ingress
	s.Status = corev1.ServiceStatus{Conditions: ours}
	for _, ing := range ingress {
		if ing.IP != "" {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ing.IP})
		}
	}
}

func stripNode(n *corev1.Node) {
	keepMeta(&n.ObjectMeta, n.Labels)
	n.Spec = corev1.NodeSpec{}
	var ready []corev1.NodeCondition
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			// Only the status and reason (eligibility tells a kubelet
			// that never reported by it): heartbeat times and messages
			// change on every kubelet update and are not read.
			ready = []corev1.NodeCondition{{Type: c.Type, Status: c.Status, Reason: c.Reason}}
		}
	}
	n.Status = corev1.NodeStatus{Conditions: ready, Addresses: n.Status.Addresses}
}

func stripEndpointSlice(s *discoveryv1.EndpointSlice) {
	var labels map[string]string
	if name, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
		labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	keepMeta(&s.ObjectMeta, labels)
	s.Ports = nil
	eps := s.Endpoints[:0]
	for _, ep := range s.Endpoints {
		eps = append(eps, discoveryv1.Endpoint{
			NodeName:   ep.NodeName,
			Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready},
		})
	}
	s.Endpoints = eps
}
