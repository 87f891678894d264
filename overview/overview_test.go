package overview

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
)

const cloudConfig = `
peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64513
- peer-address: 203.0.113.2
  peer-asn: 64512
  my-asn: 64513
  node-selectors:
  - match-labels: {rack: a}
address-pools:
- name: lan
  protocol: layer2
  addresses: [203.0.113.200-203.0.113.210]
- name: edge
  protocol: bgp
  addresses: [198.51.100.0/24]
`

func configMap(data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: DefaultNamespace, Name: DefaultConfigMap},
		Data: map[string]string{DefaultKey: data}}
}

func lb(ns, name string, entries []servicestatus.Entry, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	if entries != nil {
		s.Status.Conditions = []metav1.Condition{servicestatus.Condition(entries)}
	}
	return s
}

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

var (
	webEntry  = servicestatus.Entry{IP: netip.MustParseAddr("203.0.113.200"), Pool: "lan", Protocol: "layer2", Nodes: []string{"node1"}, Interfaces: []string{"eth0"}}
	edgeEntry = servicestatus.Entry{IP: netip.MustParseAddr("198.51.100.7"), Pool: "edge", Protocol: "bgp", Nodes: []string{"node1", "node2"}, Peers: []string{"203.0.113.1", "203.0.113.2"}}
	downEntry = servicestatus.Entry{IP: netip.MustParseAddr("203.0.113.201"), Pool: "lan", Protocol: "layer2", Reason: "NoEligibleNode", Detail: "no live node is Ready"}
)

func TestOverview(t *testing.T) {
	classed := lb("other", "theirs", nil, "203.0.113.205")
	class := "example.com/other"
	classed.Spec.LoadBalancerClass = &class
	tests := []struct {
		desc string
		objs []runtime.Object
		// want are lines (whitespace collapsed) the screen must hold.
		want    []string
		notWant []string
	}{{
		desc: "pools counted, each Service with its announcers",
		objs: []runtime.Object{configMap(cloudConfig),
			lb("default", "web", []servicestatus.Entry{webEntry}, "203.0.113.200"),
			lb("default", "api", []servicestatus.Entry{edgeEntry}, "198.51.100.7"),
			lb("default", "down", []servicestatus.Entry{downEntry}, "203.0.113.201"),
			lb("default", "shared", []servicestatus.Entry{webEntry}, "203.0.113.200"),
			classed,
			node("node1", map[string]string{"rack": "a"}), node("node2", nil)},
		want: []string{
			"POOL PROTOCOL SIZE USED FREE",
			"lan layer2 11 2 9",
			"edge bgp 256 1 255",
			"default/web 203.0.113.200 lan layer2 node1 on eth0",
			"default/api 198.51.100.7 edge bgp node1, node2 -> 203.0.113.1, 203.0.113.2",
			"default/down 203.0.113.201 lan layer2 nobody (NoEligibleNode): no live node is Ready",
			"node1 203.0.113.1 (AS 64512), 203.0.113.2 (AS 64512) not in the API",
			"node2 203.0.113.1 (AS 64512) not in the API",
			SessionNote,
		},
		notWant: []string{"other/theirs", "warning:"},
	}, {
		desc: "no condition yet: pool and protocol from the cloud-config",
		objs: []runtime.Object{configMap(cloudConfig), lb("default", "new", nil, "203.0.113.202"), lb("default", "pending", nil)},
		want: []string{
			"default/new 203.0.113.202 lan layer2 no condition yet: the announcers have not written one",
			"default/pending <pending> - - no IP yet",
		},
	}, {
		desc: "no cloud-config: Services still shown, and why pools are not",
		objs: []runtime.Object{lb("default", "web", []servicestatus.Entry{webEntry}, "203.0.113.200")},
		want: []string{
			"(none)",
			"default/web 203.0.113.200 lan layer2 node1 on eth0",
			`warning: cannot read the cloud-config (ConfigMap baremetal-system/baremetal-cloud-config)`,
		},
		notWant: []string{"NODE"},
	}, {
		desc: "a bad cloud-config names the field",
		objs: []runtime.Object{configMap("address-pools:\n- name: x\n  protocol: layer3\n  addresses: [192.0.2.0/24]\n")},
		want: []string{"warning: ConfigMap baremetal-system/baremetal-cloud-config key \"cloud-config.yaml\":", "protocol"},
	}, {
		desc: "an unreadable condition is shown as such",
		objs: []runtime.Object{configMap(cloudConfig), func() *corev1.Service {
			s := lb("default", "odd", nil, "203.0.113.203")
			s.Status.Conditions = []metav1.Condition{{Type: servicestatus.ConditionType, Message: "garbage"}}
			return s
		}()},
		want: []string{"default/odd 203.0.113.203 lan layer2 unreadable condition: entry 0"},
	}}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			client := fake.NewClientset(tt.objs...)
			o, err := Gather(context.Background(), client, Source{Namespace: DefaultNamespace, ConfigMap: DefaultConfigMap, Key: DefaultKey})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := o.Write(&buf); err != nil {
				t.Fatal(err)
			}
			screen := squash(buf.String())
			for _, w := range tt.want {
				if !strings.Contains(screen, squash(w)) {
					t.Errorf("screen lacks %q:\n%s", w, buf.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(screen, w) {
					t.Errorf("screen has %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

// squash collapses runs of spaces, as tabwriter pads columns.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
