package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// nodesConfig gives zones by label and by subnet, and names one machine as
// gone for good. %[1]s is the removed node's name.
const nodesConfig = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.30/32
node-topology:
- region: lab
  zone: rack-a
  node-selector:
    matchLabels:
      rack: a
- region: lab
  zone: rack-b
  subnets:
  - 203.0.113.0/25
removed-nodes:
- %[1]s
`

// The taint a kubelet started with --cloud-provider=external (as
// deploy/kubeadm configures it) puts on its Node until the CCM initializes
// it, and the annotation with the kubelet's --node-ip.
const (
	uninitializedTaint = "node.cloudprovider.kubernetes.io/uninitialized"
	providedIPAnn      = "alpha.kubernetes.io/provided-node-ip"
	regionLabel        = "topology.kubernetes.io/region"
	zoneLabel          = "topology.kubernetes.io/zone"
)

// kubeletNode is the Node a kubeadm-joined kubelet registers: the
// uninitialized taint, the provided node IP, maybe labels, no status yet.
func kubeletNode(name, ip string, labels map[string]string, uninitialized bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      labels,
		Annotations: map[string]string{providedIPAnn: ip},
	}}
	if uninitialized {
		n.Spec.Taints = []corev1.Taint{{Key: uninitializedTaint, Value: "true", Effect: corev1.TaintEffectNoSchedule}}
	}
	return n
}

// TestKubeadmNodesAreInitialized registers Nodes as kubeadm's kubelets do
// and checks that the CCM initializes them from the Node alone: taint gone,
// providerID, addresses with the provided IP, region and zone from the
// node-topology rules.
func TestKubeadmNodesAreInitialized(t *testing.T) {
	e := newEnv(t)
	prefix := "n" + apitest.RandHex(3)
	gone := prefix + "-gone"
	// A short monitor period so the lifecycle controller looks at Nodes
	// every second rather than every 5.
	ccm.Start(t, cp, ccm.Options{CloudConfig: fmt.Sprintf(nodesConfig, gone), Args: []string{"--node-monitor-period=1s"}})

	tests := []struct {
		name         string
		ip           string
		labels       map[string]string
		wantAddrs    []corev1.NodeAddress
		region, zone string
	}{
		{
			name: "worker-1", ip: "203.0.113.11", labels: map[string]string{"rack": "a"},
			region: "lab", zone: "rack-a",
		},
		{
			name: "worker-2", ip: "203.0.113.12",
			region: "lab", zone: "rack-b",
		},
		{
			name: "worker-3", ip: "203.0.113.200,2001:db8::13",
			wantAddrs: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "2001:db8::13"}},
		},
	}
	for _, tt := range tests {
		name := prefix + "-" + tt.name
		if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, kubeletNode(name, tt.ip, tt.labels, true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.trackNode(name)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			name := prefix + "-" + tt.name
			var node *corev1.Node
			err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
				n, err := e.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				node = n
				tainted := slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == uninitializedTaint })
				return !tainted && n.Spec.ProviderID != "" && len(n.Status.Addresses) > 0, nil
			})
			if err != nil {
				t.Fatalf("node %s not initialized: %v\nspec: %+v\nstatus addresses: %v", name, err, node.Spec, node.Status.Addresses)
			}
			if want := "baremetal://" + name; node.Spec.ProviderID != want {
				t.Errorf("providerID %q, want %q", node.Spec.ProviderID, want)
			}
			want := append([]corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: firstIP(tt.ip)},
				{Type: corev1.NodeHostName, Address: name},
			}, tt.wantAddrs...)
			for _, a := range want {
				if !slices.Contains(node.Status.Addresses, a) {
					t.Errorf("addresses %v lack %v", node.Status.Addresses, a)
				}
			}
			for label, want := range map[string]string{regionLabel: tt.region, zoneLabel: tt.zone} {
				got, ok := node.Labels[label]
				if want == "" && ok {
					t.Errorf("label %s=%s, want none (no topology rule matches)", label, got)
				}
				if want != "" && got != want {
					t.Errorf("label %s=%q, want %q", label, got, want)
				}
			}
		})
	}

	t.Run("only removed-nodes are deleted", func(t *testing.T) {
		e := e.sub(t)
		// Both are NotReady (no kubelet posts status), which is when the
		// lifecycle controller asks the provider whether the machine
		// exists; only the one in removed-nodes is gone.
		kept := prefix + "-powered-off"
		for _, name := range []string{gone, kept} {
			if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, kubeletNode(name, "203.0.113.50", nil, false), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			e.trackNode(name)
		}
		err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
			_, err := e.cs.CoreV1().Nodes().Get(ctx, gone, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
		if err != nil {
			t.Fatalf("node %s, listed in removed-nodes, was not deleted: %v", gone, err)
		}
		// The other Nodes went through the same monitor passes; watch a
		// few more to be sure none of them is deleted.
		survivors := []string{kept}
		for _, tt := range tests {
			survivors = append(survivors, prefix+"-"+tt.name)
		}
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			for _, name := range survivors {
				if _, err := e.cs.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{}); err != nil {
					t.Fatalf("node %s, not in removed-nodes: %v", name, err)
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}

// firstIP returns the first of a comma-separated list.
func firstIP(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return first
}
