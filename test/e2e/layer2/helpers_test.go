package layer2

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// The cloud-config of every test: the lab's layer-2 pool, IPv4 and IPv6.
const cloudConfig = `address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.210
  - 2001:db8:1::200-2001:db8:1::20f
`

// vips are the pool addresses that every node serves on lo, as kube-proxy
// would for every Service IP.
var vips = []string{
	"203.0.113.200", "203.0.113.201", "203.0.113.202", "203.0.113.203", "203.0.113.204", "203.0.113.205",
	"2001:db8:1::200", "2001:db8:1::201",
}

// Bounds for the waits. Generous for a loaded 2-core machine; the tests log
// the actual times.
const (
	settleTimeout = 20 * time.Second
	requestWait   = 300 * time.Millisecond
	pollEvery     = 20 * time.Millisecond
)

func adminClient() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(cp.AdminConfig())
}

// testbed is one test's cluster: a lab of three nodes and a client, Node
// objects for the nodes, a namespace for Services, and an announcer per
// node.
type testbed struct {
	t          testing.TB
	ctx        context.Context
	lab        *lab.Lab
	cs         kubernetes.Interface
	ns         string
	kubeconfig string
	configFile string
	forwards   map[string]*lab.Forward
	announcers map[string]*process.Process
	// extraArgs go after startAnnouncer's own flags, which they override
	// (benchmarks pass the shipped --v=0).
	extraArgs []string
	// stale lists the IPs for which the benchmarks' settle found the
	// client stuck on a node that no longer announces them.
	stale []string
}

func newTestbed(t testing.TB) *testbed {
	return newTestbedWithin(t, 5*time.Minute)
}

// newTestbedWithin is newTestbed for a scenario that needs longer than a
// test's five minutes, such as a benchmark's many trials.
func newTestbedWithin(t testing.TB, d time.Duration) *testbed {
	globalSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	tb := &testbed{
		t: t, ctx: ctx, cs: adminClient(),
		forwards: map[string]*lab.Forward{}, announcers: map[string]*process.Process{},
	}
	tb.lab = lab.NewForTest(t, lab.Options{Client: true, IPv6: true})

	var err error
	tb.kubeconfig, err = cp.KubeconfigForServiceAccount(systemNS, serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	tb.configFile = filepath.Join(t.TempDir(), "cloud-config.yaml")
	if err := os.WriteFile(tb.configFile, []byte(cloudConfig), 0o644); err != nil {
		t.Fatal(err)
	}

	ns, err := tb.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-layer2-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tb.ns = ns.Name
	t.Cleanup(func() {
		// No namespace controller runs here, so a deleted namespace keeps
		// its objects: delete the Services (whose IPs the next test
		// reuses) and EndpointSlices themselves.
		ctx := context.Background()
		if list, err := tb.cs.CoreV1().Services(tb.ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, s := range list.Items {
				_ = tb.cs.CoreV1().Services(tb.ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
			}
		}
		_ = tb.cs.DiscoveryV1().EndpointSlices(tb.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = tb.cs.CoreV1().Namespaces().Delete(ctx, tb.ns, metav1.DeleteOptions{})
	})

	for _, h := range tb.lab.Nodes() {
		tb.createNode(h)
		f, err := tb.lab.ForwardAPIServer(h, cp.Port())
		if err != nil {
			t.Fatal(err)
		}
		tb.forwards[h.Name()] = f
		for _, v := range vips {
			if err := h.AddVIP(v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.ServeHTTP(80); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range tb.announcers {
				t.Logf("--- %s announcer log (tail) ---\n%s", name, p.LogTail(6000))
			}
		}
	})
	return tb
}

// createNode (re)creates the Node object of a lab host, Ready, with its
// IPv4 and IPv6 addresses. Node objects are cluster-wide, so a previous
// test's are replaced.
func (tb *testbed) createNode(h *lab.Host) {
	tb.t.Helper()
	_ = tb.cs.CoreV1().Nodes().Delete(tb.ctx, h.Name(), metav1.DeleteOptions{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := tb.cs.CoreV1().Nodes().Get(tb.ctx, h.Name(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollEvery)
	}
	n, err := tb.cs.CoreV1().Nodes().Create(tb.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.Name()}}, metav1.CreateOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}}
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: h.IPv4().String()},
		{Type: corev1.NodeInternalIP, Address: h.IPv6().String()},
		{Type: corev1.NodeHostName, Address: h.Name()},
	}
	if _, err := tb.cs.CoreV1().Nodes().UpdateStatus(tb.ctx, n, metav1.UpdateOptions{}); err != nil {
		tb.t.Fatal(err)
	}
	name := h.Name()
	tb.t.Cleanup(func() { _ = tb.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// setNodeReady sets the Ready condition of a node.
func (tb *testbed) setNodeReady(name string, ready bool) {
	tb.t.Helper()
	n, err := tb.cs.CoreV1().Nodes().Get(tb.ctx, name, metav1.GetOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := tb.cs.CoreV1().Nodes().UpdateStatus(tb.ctx, n, metav1.UpdateOptions{}); err != nil {
		tb.t.Fatal(err)
	}
}

// labelNode sets a label on a node.
func (tb *testbed) labelNode(name, key, value string) {
	tb.t.Helper()
	n, err := tb.cs.CoreV1().Nodes().Get(tb.ctx, name, metav1.GetOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[key] = value
	if _, err := tb.cs.CoreV1().Nodes().Update(tb.ctx, n, metav1.UpdateOptions{}); err != nil {
		tb.t.Fatal(err)
	}
}

// startAnnouncer runs the real binary in the node's namespace, as the
// DaemonSet does: its own RBAC identity, the memberlist Secret, metrics on
// :7472 (the namespace's own loopback).
func (tb *testbed) startAnnouncer(h *lab.Host) *process.Process {
	tb.t.Helper()
	p, err := h.Start(context.WithoutCancel(tb.ctx), process.Spec{
		Name: "announcer",
		Path: announcerBin,
		Args: append([]string{
			"--kubeconfig=" + tb.kubeconfig,
			"--cloud-config=" + tb.configFile,
			"--node-name=" + h.Name(),
			"--memberlist-secret=" + memberlistName,
			"--memberlist-secret-namespace=" + systemNS,
			"--metrics-bind-address=127.0.0.1:7472",
			"--v=2",
			"--profiling",
		}, tb.extraArgs...),
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.announcers[h.Name()] = p
	return p
}

// startAll starts an announcer on every node and waits until each is
// running and sees all three.
func (tb *testbed) startAll() {
	tb.t.Helper()
	for _, h := range tb.lab.Nodes() {
		tb.startAnnouncer(h)
	}
	for _, h := range tb.lab.Nodes() {
		tb.waitMembers(h, len(tb.lab.Nodes()))
	}
}

// waitMembers waits until the announcer of h reports n members on its
// metrics endpoint, which also means it runs.
func (tb *testbed) waitMembers(h *lab.Host, n int) {
	tb.t.Helper()
	want := fmt.Sprintf("baremetal_announcer_membership_members %d", n)
	tb.eventually(h.Name()+" sees "+fmt.Sprint(n)+" members", func() bool {
		body, err := h.HTTPGet(tb.ctx, "http://127.0.0.1:7472/metrics", time.Second)
		return err == nil && strings.Contains(body, want)
	})
}

// metric returns the announcer's /metrics text.
func (tb *testbed) metrics(h *lab.Host) string {
	body, err := h.HTTPGet(tb.ctx, "http://127.0.0.1:7472/metrics", time.Second)
	if err != nil {
		tb.t.Fatalf("metrics of %s: %v", h.Name(), err)
	}
	return body
}

// createService creates a LoadBalancer Service and writes its status IPs,
// as the cloud-controller-manager would.
func (tb *testbed) createService(name string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	tb.t.Helper()
	svc, err := tb.cs.CoreV1().Services(tb.ns).Create(tb.ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: etp,
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	svc, err = tb.cs.CoreV1().Services(tb.ns).UpdateStatus(tb.ctx, svc, metav1.UpdateOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	return svc
}

// setEndpoints gives the Service one EndpointSlice with a ready endpoint
// on each of nodes (none: an empty slice).
func (tb *testbed) setEndpoints(svc string, nodes ...string) {
	tb.t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-e2e", Labels: map[string]string{
			discoveryv1.LabelServiceName: svc,
			discoveryv1.LabelManagedBy:   "e2e-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	ready := true
	for i, n := range nodes {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.10", i)},
			NodeName:   &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	c := tb.cs.DiscoveryV1().EndpointSlices(tb.ns)
	if _, err := c.Update(tb.ctx, slice, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = c.Create(tb.ctx, slice, metav1.CreateOptions{})
		if err != nil {
			tb.t.Fatal(err)
		}
	} else if err != nil {
		tb.t.Fatal(err)
	}
}

// expectedOwner is the owner every announcer must agree on.
func expectedOwner(ip string, nodes ...string) string {
	return owner.Pick(netip.MustParseAddr(ip), nodes)
}

// url is the client's URL for a VIP.
func url(ip string) string {
	a := netip.MustParseAddr(ip)
	if a.Is6() {
		return "http://[" + a.String() + "]/"
	}
	return "http://" + a.String() + "/"
}

// get asks the VIP from the client and returns the node that answered.
func (tb *testbed) get(ip string) (string, error) {
	body, err := tb.lab.Client().HTTPGet(tb.ctx, url(ip), requestWait)
	return strings.TrimSpace(body), err
}

// waitServedBy waits until the client reaches node through ip and its
// neighbour entry for ip holds node's MAC; it returns how long it took.
func (tb *testbed) waitServedBy(ip, node string) time.Duration {
	tb.t.Helper()
	start := time.Now()
	mac := tb.lab.Host(node).MAC().String()
	tb.eventually(ip+" served by "+node, func() bool {
		got, err := tb.get(ip)
		if err != nil || got != node {
			return false
		}
		m, _, err := tb.lab.Client().Neighbor(ip)
		return err == nil && m == mac
	})
	return time.Since(start)
}

// eventually polls cond until it holds, within settleTimeout.
func (tb *testbed) eventually(what string, cond func() bool) {
	tb.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(pollEvery)
	}
	tb.t.Fatalf("timed out after %v waiting for %s", settleTimeout, what)
}

// answerers returns who answers ARP/NDP for ip, asking from the client.
func (tb *testbed) answerers(ip string) []string {
	tb.t.Helper()
	macs, err := tb.lab.Client().Arping(tb.ctx, ip, 300*time.Millisecond)
	if err != nil {
		tb.t.Fatal(err)
	}
	return tb.names(macs)
}

// names maps MACs to lab host names.
func (tb *testbed) names(macs []net.HardwareAddr) []string {
	var out []string
	for _, m := range macs {
		name := m.String()
		for _, h := range tb.lab.Hosts() {
			if h.MAC().String() == m.String() {
				name = h.Name()
			}
		}
		out = append(out, name)
	}
	return out
}

// events returns the messages of events with reason on the Service.
func (tb *testbed) events(svc, reason string) []string {
	list, err := tb.cs.CoreV1().Events(tb.ns).List(tb.ctx, metav1.ListOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == svc && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}
