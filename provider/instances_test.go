package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

const topologyConfig = `
address-pools:
- name: default
  protocol: layer2
  addresses: [203.0.113.200-203.0.113.210]
node-topology:
- region: lab
  zone: rack-a
  node-selector:
    matchLabels: {rack: a}
- region: lab
  zone: rack-b
  subnets: [203.0.113.0/25]
removed-nodes: [old-node]
`

func kubeadmNode(name, ip string, lbls map[string]string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      lbls,
		Annotations: map[string]string{"alpha.kubernetes.io/provided-node-ip": ip},
	}}
}

func TestInstanceMetadata(t *testing.T) {
	cfg, err := config.Parse([]byte(topologyConfig))
	if err != nil {
		t.Fatal(err)
	}
	inst := NewInstances(cfg)
	tests := []struct {
		name    string
		node    *v1.Node
		want    string
		wantErr string
	}{
		{
			name: "zone by label",
			node: kubeadmNode("node1", "203.0.113.11", map[string]string{"rack": "a"}),
			want: "baremetal://node1 lab/rack-a [{InternalIP 203.0.113.11} {Hostname node1}]",
		},
		{
			name: "zone by subnet",
			node: kubeadmNode("node2", "203.0.113.12", nil),
			want: "baremetal://node2 lab/rack-b [{InternalIP 203.0.113.12} {Hostname node2}]",
		},
		{
			name: "dual-stack provided IP, no rule matches",
			node: kubeadmNode("node3", "203.0.113.200,2001:db8:1::13", nil),
			want: "baremetal://node3 / [{InternalIP 203.0.113.200} {InternalIP 2001:db8:1::13} {Hostname node3}]",
		},
		{
			name:    "bad provided IP is named",
			node:    kubeadmNode("node4", "203.0.113.400", nil),
			wantErr: `alpha.kubernetes.io/provided-node-ip: "203.0.113.400"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := inst.InstanceMetadata(context.Background(), tt.node)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s %s/%s %v", md.ProviderID, md.Region, md.Zone, md.NodeAddresses)
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestInstanceExistsOnlyRemovedNodesAreGone(t *testing.T) {
	cfg, err := config.Parse([]byte(topologyConfig))
	if err != nil {
		t.Fatal(err)
	}
	inst := NewInstances(cfg)
	for name, want := range map[string]bool{"node1": true, "old-node": false} {
		got, err := inst.InstanceExists(context.Background(), &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if err != nil || got != want {
			t.Errorf("InstanceExists(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}

func TestProviderRegistersAndRejectsBadConfig(t *testing.T) {
	cloud, err := cloudprovider.GetCloudProvider(ProviderName, strings.NewReader(topologyConfig))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cloud.LoadBalancer(); !ok {
		t.Error("LoadBalancer not supported")
	}
	if _, ok := cloud.InstancesV2(); !ok {
		t.Error("InstancesV2 not supported")
	}
	if !cloud.HasClusterID() {
		t.Error("HasClusterID is false")
	}
	bad := "address-pools:\n- name: x\n  protocol: ospf\n  addresses: [203.0.113.0/28]\n"
	if _, err := cloudprovider.GetCloudProvider(ProviderName, strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "ospf") {
		t.Errorf("bad config error = %v, want it to name the protocol", err)
	}
}
