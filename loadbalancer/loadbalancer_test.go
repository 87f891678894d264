package loadbalancer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// The seed walkthrough's pool, verbatim.
const walkthroughPool = `
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.92.200-192.168.92.210   #跟k8s集群节点的宿主机ip地址段保持一致
`

const twoFamilies = `
address-pools:
- name: v4
  protocol: layer2
  addresses: [203.0.113.200-203.0.113.210]
- name: v6
  protocol: layer2
  addresses: [2001:db8:1::/64]
- name: manual
  protocol: bgp
  auto-assign: false
  addresses: [198.51.100.0/30]
`

// startLB returns a started load balancer whose state was restored from
// the given existing Services.
func startLB(t *testing.T, cfgText string, existing ...runtime.Object) (*LoadBalancer, *fake.Clientset) {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	client := fake.NewClientset(existing...)
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactory(client, 0)
	// Shutdown waits for the informers, which stop only once ctx is done.
	t.Cleanup(func() { cancel(); f.Shutdown() })
	lb := New(cfg)
	lb.SetInformers(f)
	f.Start(ctx.Done())
	lb.Start(ctx, client)
	return lb, client
}

func lbService(ns, name string, mutate ...func(*v1.Service)) *v1.Service {
	single := v1.IPFamilyPolicySingleStack
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:           v1.ServiceTypeLoadBalancer,
			Ports:          []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
			Selector:       map[string]string{"app": name},
			IPFamilies:     []v1.IPFamily{v1.IPv4Protocol},
			IPFamilyPolicy: &single,
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func ingressIPs(st *v1.LoadBalancerStatus) string {
	if st == nil {
		return ""
	}
	var out []string
	for _, i := range st.Ingress {
		if i.IPMode == nil || *i.IPMode != v1.LoadBalancerIPModeVIP {
			return "ipMode is not VIP"
		}
		out = append(out, i.IP)
	}
	return strings.Join(out, ",")
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEnsureLoadBalancer(t *testing.T) {
	dual := v1.IPFamilyPolicyRequireDualStack
	tests := []struct {
		name    string
		svc     *v1.Service
		want    string
		wantErr string
	}{
		{name: "walkthrough nginx gets a pool address", svc: lbService("default", "nginx"), want: "203.0.113.200"},
		{
			name: "MetalLB pool annotation",
			svc:  lbService("default", "a", func(s *v1.Service) { s.Annotations["metallb.universe.tf/address-pool"] = "manual" }),
			want: "198.51.100.0",
		},
		{
			name: "metallb.io pool annotation",
			svc:  lbService("default", "a", func(s *v1.Service) { s.Annotations["metallb.io/address-pool"] = "manual" }),
			want: "198.51.100.0",
		},
		{
			name:    "unknown pool is named",
			svc:     lbService("default", "a", func(s *v1.Service) { s.Annotations["metallb.universe.tf/address-pool"] = "nope" }),
			wantErr: `"nope"`,
		},
		{
			name: "spec.loadBalancerIP",
			svc:  lbService("default", "a", func(s *v1.Service) { s.Spec.LoadBalancerIP = "203.0.113.205" }),
			want: "203.0.113.205",
		},
		{
			name:    "bad spec.loadBalancerIP is named",
			svc:     lbService("default", "a", func(s *v1.Service) { s.Spec.LoadBalancerIP = "203.0.113.999" }),
			wantErr: `spec.loadBalancerIP: "203.0.113.999"`,
		},
		{
			name: "loadBalancerIPs annotation, dual-stack",
			svc: lbService("default", "a", func(s *v1.Service) {
				s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
				s.Spec.IPFamilyPolicy = &dual
				s.Annotations["metallb.universe.tf/loadBalancerIPs"] = "203.0.113.207,2001:db8:1::7"
			}),
			want: "203.0.113.207,2001:db8:1::7",
		},
		{
			name: "dual-stack from two pools",
			svc: lbService("default", "a", func(s *v1.Service) {
				s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol, v1.IPv4Protocol}
				s.Spec.IPFamilyPolicy = &dual
			}),
			want: "2001:db8:1::,203.0.113.200",
		},
		{
			name:    "bad loadBalancerIPs annotation is named",
			svc:     lbService("default", "a", func(s *v1.Service) { s.Annotations["metallb.universe.tf/loadBalancerIPs"] = "203.0.113.1,203.0.113.2" }),
			wantErr: "metallb.universe.tf/loadBalancerIPs",
		},
		{
			name:    "requested IP outside every pool",
			svc:     lbService("default", "a", func(s *v1.Service) { s.Spec.LoadBalancerIP = "192.0.2.1" }),
			wantErr: "192.0.2.1 for service default/a is not in any address pool",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb, _ := startLB(t, twoFamilies)
			st, err := lb.EnsureLoadBalancer(ctxT(t), "kubernetes", tt.svc, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to mention %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ingressIPs(st); got != tt.want {
				t.Fatalf("ingress = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWalkthroughPoolVerbatim(t *testing.T) {
	lb, _ := startLB(t, walkthroughPool)
	st, err := lb.EnsureLoadBalancer(ctxT(t), "kubernetes", lbService("default", "nginx"), nil)
	if err != nil || ingressIPs(st) != "192.168.92.200" {
		t.Fatalf("got %v, %v", ingressIPs(st), err)
	}
}

func TestRestartRestoresFromStatus(t *testing.T) {
	var existing []runtime.Object
	for i := 0; i < 5; i++ {
		s := lbService("default", fmt.Sprintf("s%d", i))
		s.CreationTimestamp = metav1.NewTime(time.Unix(int64(1000+i), 0))
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.113.%d", 210-i)}}
		existing = append(existing, s)
	}
	// A younger Service that claims s0's address in its status must not
	// take it from s0.
	thief := lbService("default", "thief")
	thief.CreationTimestamp = metav1.NewTime(time.Unix(5000, 0))
	thief.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.210"}}
	existing = append(existing, thief)

	lb, _ := startLB(t, twoFamilies, existing...)
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		svc := existing[i].(*v1.Service)
		st, exists, err := lb.GetLoadBalancer(ctx, "kubernetes", svc)
		if err != nil || !exists {
			t.Fatalf("%s: exists=%v err=%v", svc.Name, exists, err)
		}
		if want := svc.Status.LoadBalancer.Ingress[0].IP; ingressIPs(st) != want {
			t.Fatalf("%s restored %s, want %s", svc.Name, ingressIPs(st), want)
		}
	}
	st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", thief, nil)
	if err != nil || ingressIPs(st) == "203.0.113.210" {
		t.Fatalf("thief got %s, %v; want a different address", ingressIPs(st), err)
	}
	// A new Service gets a fresh address, not one of the restored ones.
	st, err = lb.EnsureLoadBalancer(ctx, "kubernetes", lbService("default", "new"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if ingressIPs(st) == fmt.Sprintf("203.0.113.%d", 205+i) {
			t.Fatalf("new service got restored address %s", ingressIPs(st))
		}
	}
}

func TestDeleteReleasesAndNudgesPending(t *testing.T) {
	const onePool = `
address-pools:
- name: one
  protocol: layer2
  addresses: [203.0.113.9/32]
`
	first := lbService("default", "first")
	second := lbService("default", "second")
	lb, client := startLB(t, onePool, first, second)
	ctx := ctxT(t)
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", first, nil); err != nil {
		t.Fatal(err)
	}
	_, err := lb.EnsureLoadBalancer(ctx, "kubernetes", second, nil)
	if err == nil || !strings.Contains(err.Error(), `pool "one" exhausted`) {
		t.Fatalf("error = %v, want the exhausted pool named", err)
	}
	if err := lb.EnsureLoadBalancerDeleted(ctx, "kubernetes", first); err != nil {
		t.Fatal(err)
	}
	if _, exists, _ := lb.GetLoadBalancer(ctx, "kubernetes", first); exists {
		t.Fatal("deleted service still has a load balancer")
	}
	// The pending Service is nudged so the controller retries it now.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := client.CoreV1().Services("default").Get(ctx, "second", metav1.GetOptions{})
		if err == nil && got.Annotations[RetryAnnotation] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pending service was not nudged after the address was freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", second, nil)
	if err != nil || ingressIPs(st) != "203.0.113.9" {
		t.Fatalf("second got %s, %v", ingressIPs(st), err)
	}
}

func TestBadAnnotationKeepsExistingAddress(t *testing.T) {
	lb, _ := startLB(t, twoFamilies)
	ctx := ctxT(t)
	svc := lbService("default", "a")
	st, err := lb.EnsureLoadBalancer(ctx, "kubernetes", svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc.Annotations["metallb.universe.tf/loadBalancerIPs"] = "not-an-ip"
	if _, err := lb.EnsureLoadBalancer(ctx, "kubernetes", svc, nil); err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Fatalf("error = %v, want it to name the bad value", err)
	}
	got, exists, _ := lb.GetLoadBalancer(ctx, "kubernetes", svc)
	if !exists || ingressIPs(got) != ingressIPs(st) {
		t.Fatalf("after a bad annotation the service holds %s, want %s", ingressIPs(got), ingressIPs(st))
	}
}
