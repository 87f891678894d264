package eligibility

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

func node(name string, ready corev1.ConditionStatus, lbls map[string]string) *corev1.Node {
	return nodeWithReason(name, ready, "", lbls)
}

// nodeWithReason is node with the Ready condition's reason, as the kubelet
// ("KubeletReady") or the node-lifecycle controller ("NodeStatusUnknown",
// "NodeStatusNeverUpdated") writes it.
func nodeWithReason(name string, ready corev1.ConditionStatus, reason string, lbls map[string]string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready, Reason: reason},
		}
	}
	return n
}

func selector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestNodeReason(t *testing.T) {
	plain := &config.Pool{Name: "default"}
	rack := &config.Pool{Name: "rack-a", NodeSelector: []labels.Selector{
		selector(t, "rack=a"), selector(t, "role=edge"),
	}}
	tests := []struct {
		name string
		node *corev1.Node
		pool *config.Pool
		want string
	}{
		{name: "ready node", node: node("n", corev1.ConditionTrue, nil), pool: plain, want: ""},
		{name: "not ready", node: node("n", corev1.ConditionFalse, nil), pool: plain, want: "node is not Ready"},
		{name: "kubelet says not ready", node: nodeWithReason("n", corev1.ConditionFalse, "KubeletNotReady", nil), pool: plain, want: "node is not Ready"},
		// The node-lifecycle controller lost the kubelet (an API-server
		// outage, a kubelet restart): liveness decides, not the API.
		{name: "ready unknown", node: node("n", corev1.ConditionUnknown, nil), pool: plain, want: ""},
		{name: "kubelet stopped posting status", node: nodeWithReason("n", corev1.ConditionUnknown, "NodeStatusUnknown", nil), pool: plain, want: ""},
		{name: "kubelet never posted status", node: nodeWithReason("n", corev1.ConditionUnknown, NeverUpdated, nil), pool: plain, want: "the kubelet never reported the node's status"},
		{name: "no Ready condition yet", node: node("n", "", nil), pool: plain, want: "node has no Ready condition yet"},
		{name: "unknown still excluded by label", node: node("n", corev1.ConditionUnknown, map[string]string{ExcludeLabel: ""}), pool: plain, want: "node is labelled " + ExcludeLabel},
		{name: "unknown still needs the selector", node: node("n", corev1.ConditionUnknown, map[string]string{"rack": "b"}), pool: rack, want: "node does not match the node-selectors of pool rack-a"},
		{name: "excluded with empty value", node: node("n", corev1.ConditionTrue, map[string]string{ExcludeLabel: ""}), pool: plain, want: "node is labelled " + ExcludeLabel},
		{name: "excluded with any value", node: node("n", corev1.ConditionTrue, map[string]string{ExcludeLabel: "false"}), pool: plain, want: "node is labelled " + ExcludeLabel},
		{name: "matches first selector", node: node("n", corev1.ConditionTrue, map[string]string{"rack": "a"}), pool: rack, want: ""},
		{name: "matches second selector", node: node("n", corev1.ConditionTrue, map[string]string{"role": "edge"}), pool: rack, want: ""},
		{name: "matches no selector", node: node("n", corev1.ConditionTrue, map[string]string{"rack": "b"}), pool: rack, want: "node does not match the node-selectors of pool rack-a"},
		{name: "not ready wins over selector", node: node("n", corev1.ConditionFalse, map[string]string{"rack": "b"}), pool: rack, want: "node is not Ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nodeReason(tt.node, tt.pool); got != tt.want {
				t.Errorf("nodeReason = %q, want %q", got, tt.want)
			}
			if got := NodeEligible(tt.node, tt.pool); got != (tt.want == "") {
				t.Errorf("NodeEligible = %v, want %v", got, tt.want == "")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestReadyEndpointNodes(t *testing.T) {
	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []string
	}{
		{name: "no slices", want: nil},
		{
			name: "ready, not ready, unknown and no node",
			slices: []*discoveryv1.EndpointSlice{{Endpoints: []discoveryv1.Endpoint{
				{NodeName: ptr("node1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
				{NodeName: ptr("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
				{NodeName: ptr("node3")},
				{Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
				{NodeName: ptr(""), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			}}},
			want: []string{"node1", "node3"},
		},
		{
			name: "terminating endpoint is not ready",
			slices: []*discoveryv1.EndpointSlice{{Endpoints: []discoveryv1.Endpoint{
				{NodeName: ptr("node1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}},
			}}},
			want: nil,
		},
		{
			name: "across slices, one ready is enough",
			slices: []*discoveryv1.EndpointSlice{
				{Endpoints: []discoveryv1.Endpoint{{NodeName: ptr("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}}}},
				{Endpoints: []discoveryv1.Endpoint{{NodeName: ptr("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}}},
			},
			want: []string{"node2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReadyEndpointNodes(tt.slices)
			var names []string
			for n := range got {
				names = append(names, n)
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("ReadyEndpointNodes = %v, want %v", names, tt.want)
			}
		})
	}
}
