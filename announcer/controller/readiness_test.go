package controller

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
)

// TestReadinessAndLiveness: how the Nodes' Ready conditions and the live
// members combine (package eligibility's doc). After an API-server outage
// the node-lifecycle controller turns every Node Unknown at once; the
// owner, still a live member, must keep its IP through it. Ready=False
// from the kubelet still hands the IP over.
func TestReadinessAndLiveness(t *testing.T) {
	nodes := []string{"node1", "node2", "node3"}
	o := ownerAmong(ip, nodes...)
	next := ownerAmong(ip, without(o)...)
	tests := []struct {
		name string
		// self is the node whose announcer runs; change sets the Ready
		// condition of the named nodes (status, reason).
		self    string
		change  map[string][2]string
		members []string
		want    []string
	}{
		{
			name: "all Unknown after an outage: the owner keeps its IP", self: o,
			change:  map[string][2]string{"node1": unknown, "node2": unknown, "node3": unknown},
			members: nodes, want: []string{ip},
		},
		{
			name: "all Unknown after an outage: the others stay quiet", self: next,
			change:  map[string][2]string{"node1": unknown, "node2": unknown, "node3": unknown},
			members: nodes, want: []string{},
		},
		{
			name: "the owner's kubelet says NotReady: the next node takes over", self: next,
			change:  map[string][2]string{o: notReady},
			members: nodes, want: []string{ip},
		},
		{
			name: "the owner is Unknown and gone from the members: the next node takes over", self: next,
			change:  map[string][2]string{o: unknown},
			members: without(o), want: []string{ip},
		},
		{
			name: "never reported: not a candidate", self: next,
			change:  map[string][2]string{o: {string(corev1.ConditionUnknown), eligibility.NeverUpdated}},
			members: nodes, want: []string{ip},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := newFakeMembers(nodes...)
			objs := append(threeNodes(), lbService("ns", "web", corev1.ServiceExternalTrafficPolicyCluster, ip))
			h := run(t, tt.self, members, objs...)
			if tt.self == o {
				h.announces(ip)
			} else {
				h.announces()
			}
			for name, cond := range tt.change {
				setReady(t, h, name, corev1.ConditionStatus(cond[0]), cond[1])
			}
			members.set(tt.members...)
			h.announces(tt.want...)
			// And it stays so: no pass in the hold period changes it.
			before := h.layer2.everWithdrawn()
			h.hold()
			if got := h.layer2.ips(); !slices.Equal(got, tt.want) {
				t.Errorf("after the hold: announcing %v, want %v", got, tt.want)
			}
			if after := h.layer2.everWithdrawn(); !slices.Equal(before, after) {
				t.Errorf("withdrew %v during the hold (before it: %v)", after, before)
			}
		})
	}
}

// Ready conditions as the node-lifecycle controller and the kubelet write
// them.
var (
	unknown  = [2]string{string(corev1.ConditionUnknown), "NodeStatusUnknown"}
	notReady = [2]string{string(corev1.ConditionFalse), "KubeletNotReady"}
)

// setReady replaces the Ready condition of a Node.
func setReady(t *testing.T, h *harness, name string, status corev1.ConditionStatus, reason string) {
	t.Helper()
	ctx := context.Background()
	n, err := h.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: reason}}
	if _, err := h.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
