package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStrip(t *testing.T) {
	ready, node := true, "node2"
	bigMeta := metav1.ObjectMeta{
		Name: "x", Namespace: "ns", UID: "u", ResourceVersion: "7",
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
	tests := []struct {
		name string
		in   any
		want any
	}{
		{
			name: "LoadBalancer Service keeps type, policy and status IPs",
			in: &corev1.Service{ObjectMeta: bigMeta,
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
					Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "web"}, ClusterIP: "10.0.0.5"},
				Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.200", Hostname: "h"}, {Hostname: "only-hostname"}}}},
			},
			want: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "u", ResourceVersion: "7"},
				Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
				Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.200"}}}},
			},
		},
		{
			name: "a foreign class is kept, so the Service is never announced",
			in: &corev1.Service{ObjectMeta: bigMeta,
				Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr("example.com/other"), ClusterIP: "10.0.0.5"},
				Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.200"}}}}},
			want: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "u", ResourceVersion: "7"},
				Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr("example.com/other")},
				Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.200"}}}}},
		},
		{
			name: "other Services keep only their type",
			in: &corev1.Service{ObjectMeta: bigMeta, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.0.0.5"},
				Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.200"}}}}},
			want: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "u", ResourceVersion: "7"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
		},
		{
			name: "Node keeps labels, Ready status and addresses",
			in: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"rack": "a"}, ManagedFields: []metav1.ManagedFieldsEntry{{}}},
				Spec: corev1.NodeSpec{PodCIDR: "10.244.0.0/24"},
				Status: corev1.NodeStatus{
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: metav1.Now()}},
					Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "203.0.113.11"}},
					Images:     []corev1.ContainerImage{{Names: []string{"registry/big:1"}, SizeBytes: 1 << 30}},
				}},
			want: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"rack": "a"}},
				Status: corev1.NodeStatus{
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
					Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "203.0.113.11"}},
				}},
		},
		{
			name: "EndpointSlice keeps the service label, node names and readiness",
			in: &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web", "other": "x"}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.9"}, NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready}, TargetRef: &corev1.ObjectReference{Name: "pod"}}},
				Ports:       []discoveryv1.EndpointPort{{}}},
			want: &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}},
		},
		{name: "other objects untouched", in: "tombstone", want: "tombstone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := strip(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("strip =\n%#v\nwant\n%#v", got, tt.want)
			}
			// Idempotent, as client-go requires.
			again, _ := strip(got)
			if !equality.Semantic.DeepEqual(again, tt.want) {
				t.Errorf("strip is not idempotent: %#v", again)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
