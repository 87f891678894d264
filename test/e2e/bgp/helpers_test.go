package bgp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// peersConfig peers every node with the router over IPv4 and IPv6, with
// the lab router's timers, so a silent node is dropped within 3 s.
const peersConfig = `peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 3s
  keepalive-time: 1s
- peer-address: 2001:db8:1::1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 3s
  keepalive-time: 1s
`

// poolConfig is the lab's BGP pool, routed by the router, never on the
// LAN.
const poolConfig = `address-pools:
- name: routed
  protocol: bgp
  addresses:
  - ` + lab.BGPPoolV4 + `
  - ` + lab.BGPPoolV6 + `
`

const defaultCloudConfig = peersConfig + poolConfig

// vips are pool addresses every node serves on lo, as kube-proxy would
// for every Service IP.
var vips = []string{"198.51.100.10", "198.51.100.11", "198.51.100.12", "2001:db8:2::10", "2001:db8:2::11"}

// Bounds for the waits: generous for a loaded 2-core machine (a BGP
// session needs 1-2 s, gobgp waits 5 s before redialling after a loss).
// The tests log the actual times.
const (
	settleTimeout = 40 * time.Second
	requestWait   = time.Second
	pollEvery     = 50 * time.Millisecond
)

// options change a testbed.
type options struct {
	// cloudConfig is the announcers' cloud-config; default
	// defaultCloudConfig.
	cloudConfig string
	// bgpd is FRR's bgpd.conf; default lab.DefaultBGPDConf("").
	bgpd string
	// within bounds the whole test; default five minutes.
	within time.Duration
}

// testbed is one test's cluster: a lab with a router running FRR and three
// nodes, Node objects for them, a namespace for Services, and an announcer
// per node.
type testbed struct {
	t    testing.TB
	ctx  context.Context
	lab  *lab.Lab
	frr  *lab.FRR
	bgpd string
	// vty holds open connections to FRR's daemons' vty sockets, by
	// daemon; see show.
	vty        map[string]*lab.VTYConn
	cs         kubernetes.Interface
	ns         string
	kubeconfig string
	configFile string
	announcers map[string]*process.Process
	// extraArgs go after the announcer's own flags (benchmarks pass the
	// shipped --v=0).
	extraArgs []string
}

func newTestbed(t testing.TB, opts options) *testbed {
	globalSetup(t)
	if opts.cloudConfig == "" {
		opts.cloudConfig = defaultCloudConfig
	}
	if opts.bgpd == "" {
		opts.bgpd = lab.DefaultBGPDConf("")
	}
	if opts.within == 0 {
		opts.within = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.within)
	t.Cleanup(cancel)
	tb := &testbed{t: t, ctx: ctx, cs: adminClient(), bgpd: opts.bgpd, announcers: map[string]*process.Process{}, vty: map[string]*lab.VTYConn{}}
	tb.lab = lab.NewForTest(t, lab.Options{Router: true, IPv6: true})

	var err error
	if tb.kubeconfig, err = cp.KubeconfigForServiceAccount(systemNS, serviceAccount); err != nil {
		t.Fatal(err)
	}
	tb.configFile = tb.writeConfig("cloud-config.yaml", opts.cloudConfig)

	ns, err := tb.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-bgp-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tb.ns = ns.Name
	t.Cleanup(func() {
		// No namespace controller runs: delete the objects themselves.
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
		if _, err := tb.lab.ForwardAPIServer(h, cp.Port()); err != nil {
			t.Fatal(err)
		}
		for _, v := range vips {
			if err := h.AddVIP(v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.ServeHTTP(80); err != nil {
			t.Fatal(err)
		}
	}
	tb.frr, err = tb.lab.StartFRR(ctx, opts.bgpd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.closeVTY)
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range tb.announcers {
				t.Logf("--- %s announcer log (tail) ---\n%s", name, p.LogTail(8000))
			}
			if out, err := tb.frr.VTY("show bgp summary"); err == nil {
				t.Logf("--- FRR bgp summary ---\n%s", out)
			}
		}
	})
	return tb
}

// writeConfig writes a cloud-config file and returns its path.
func (tb *testbed) writeConfig(name, content string) string {
	tb.t.Helper()
	path := filepath.Join(tb.t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.t.Fatal(err)
	}
	return path
}

// createNode (re)creates the Node object of a lab host, Ready, with its
// IPv4 and IPv6 addresses.
func (tb *testbed) createNode(h *lab.Host) {
	tb.t.Helper()
	_ = tb.cs.CoreV1().Nodes().Delete(tb.ctx, h.Name(), metav1.DeleteOptions{})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(pollEvery) {
		if _, err := tb.cs.CoreV1().Nodes().Get(tb.ctx, h.Name(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
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

// labelNode sets (value != "") or removes a label of a node.
func (tb *testbed) labelNode(name, key, value string) {
	tb.t.Helper()
	n, err := tb.cs.CoreV1().Nodes().Get(tb.ctx, name, metav1.GetOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if value == "" {
		delete(n.Labels, key)
	} else {
		n.Labels[key] = value
	}
	if _, err := tb.cs.CoreV1().Nodes().Update(tb.ctx, n, metav1.UpdateOptions{}); err != nil {
		tb.t.Fatal(err)
	}
}

// startAnnouncer runs the real binary in the node's namespace as the
// DaemonSet does, with the testbed's cloud-config or configFile if given.
func (tb *testbed) startAnnouncer(h *lab.Host, configFile ...string) *process.Process {
	tb.t.Helper()
	cfg := tb.configFile
	if len(configFile) > 0 {
		cfg = configFile[0]
	}
	p, err := h.Start(context.WithoutCancel(tb.ctx), process.Spec{
		Name: "announcer",
		Path: announcerBin,
		Args: append([]string{
			"--kubeconfig=" + tb.kubeconfig,
			"--cloud-config=" + cfg,
			"--node-name=" + h.Name(),
			"--namespace=" + systemNS,
			"--memberlist-secret=" + memberlistName,
			"--memberlist-secret-namespace=" + systemNS,
			"--metrics-bind-address=127.0.0.1:7472",
			"--v=2",
		}, tb.extraArgs...),
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.announcers[h.Name()] = p
	return p
}

// startAll starts an announcer on every node and waits until FRR has an
// established session with each, over both families.
func (tb *testbed) startAll() {
	tb.t.Helper()
	start := time.Now()
	for _, h := range tb.lab.Nodes() {
		tb.startAnnouncer(h)
	}
	for _, h := range tb.lab.Nodes() {
		tb.waitSession(h.IPv4(), true)
		tb.waitSession(h.IPv6(), true)
	}
	tb.t.Logf("6 sessions established %v after starting the announcers", time.Since(start).Round(time.Millisecond))
}

// neighbors returns FRR's session state per neighbor address.
func (tb *testbed) neighbors() map[string]string {
	var out map[string]struct {
		State string `json:"bgpState"`
	}
	if err := tb.showJSON("bgpd", "show bgp neighbors json", &out); err != nil {
		tb.t.Logf("show bgp neighbors: %v", err)
		return nil
	}
	states := map[string]string{}
	for addr, n := range out {
		states[addr] = n.State
	}
	return states
}

// waitSession waits until FRR's session with addr is (or is no longer)
// established.
func (tb *testbed) waitSession(addr netip.Addr, up bool) {
	tb.t.Helper()
	tb.eventually(fmt.Sprintf("FRR session with %s established=%v", addr, up), func() bool {
		return (tb.neighbors()[addr.String()] == "Established") == up
	})
}

// createService creates a LoadBalancer Service and writes its status IPs,
// as the cloud-controller-manager would.
func (tb *testbed) createService(name string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	tb.t.Helper()
	svc, err := tb.cs.CoreV1().Services(tb.ns).Create(tb.ctx, lbService(name, etp), metav1.CreateOptions{})
	if err != nil {
		tb.t.Fatal(err)
	}
	svc, err = tb.setStatus(svc, ips...)
	if err != nil {
		tb.t.Fatal(err)
	}
	return svc
}

func lbService(name string, etp corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	noNodePorts := false
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: etp,
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80}},
			// The node port range (2,768 ports) would not hold the
			// benchmarks' thousands of Services; the lab reaches the
			// VIP directly anyway.
			AllocateLoadBalancerNodePorts: &noNodePorts,
		},
	}
}

// setStatus writes the Service's status IPs.
func (tb *testbed) setStatus(svc *corev1.Service, ips ...string) (*corev1.Service, error) {
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return tb.cs.CoreV1().Services(tb.ns).UpdateStatus(tb.ctx, svc, metav1.UpdateOptions{})
}

// setEndpoints gives the Service one EndpointSlice with a ready endpoint
// on each of nodes.
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
		if _, err := c.Create(tb.ctx, slice, metav1.CreateOptions{}); err != nil {
			tb.t.Fatal(err)
		}
	} else if err != nil {
		tb.t.Fatal(err)
	}
}

// hostPrefix is the /32 or /128 of an IP.
func hostPrefix(ip string) string {
	a := netip.MustParseAddr(ip)
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// bgpPath is one path of a prefix in FRR's BGP table, with the attributes
// the tests look at.
type bgpPath struct {
	Nexthops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
	LocalPref *uint32 `json:"locPrf"`
	LocalPrf2 *uint32 `json:"localpref"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	Multipath bool `json:"multipath"`
}

// localPref is the path's LOCAL_PREF as FRR shows it, 0 if none.
func (p bgpPath) localPref() uint32 {
	switch {
	case p.LocalPref != nil:
		return *p.LocalPref
	case p.LocalPrf2 != nil:
		return *p.LocalPrf2
	}
	return 0
}

// bgpPaths returns FRR's BGP paths for prefix (none if absent).
func (tb *testbed) bgpPaths(prefix string) ([]bgpPath, string) {
	af := "ipv4"
	if strings.Contains(prefix, ":") {
		af = "ipv6"
	}
	out, err := tb.show("bgpd", fmt.Sprintf("show bgp %s unicast %s json", af, prefix))
	if err != nil {
		tb.t.Logf("vtysh: %v", err)
		return nil, out
	}
	var r struct {
		Paths []bgpPath `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		tb.t.Logf("decoding %q: %v", out, err)
	}
	return r.Paths, out
}

// bgpNexthops returns the sorted peers of FRR's BGP paths for prefix.
func (tb *testbed) bgpNexthops(prefix string) []string {
	paths, _ := tb.bgpPaths(prefix)
	var out []string
	for _, p := range paths {
		for _, nh := range p.Nexthops {
			if nh.Scope != "link-local" {
				out = append(out, nh.IP)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ribNexthops returns the sorted next hops of FRR's selected, installed
// route for prefix (zebra's RIB).
func (tb *testbed) ribNexthops(prefix string) []string {
	cmd := "show ip route " + prefix + " json"
	if strings.Contains(prefix, ":") {
		cmd = "show ipv6 route " + prefix + " json"
	}
	var r map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	if err := tb.showJSON("zebra", cmd, &r); err != nil {
		tb.t.Logf("%v", err)
		return nil
	}
	var out []string
	for _, route := range r[prefix] {
		if route.Protocol != "bgp" || !route.Selected || !route.Installed {
			continue
		}
		for _, nh := range route.Nexthops {
			if nh.Active {
				out = append(out, nh.IP)
			}
		}
	}
	slices.Sort(out)
	return out
}

// kernelNexthops returns the sorted gateways of the router's kernel route
// for prefix.
func (tb *testbed) kernelNexthops(prefix string) []string {
	fam := "-4"
	if strings.Contains(prefix, ":") {
		fam = "-6"
	}
	out, err := tb.lab.Router().Exec(tb.ctx, "ip", fam, "-j", "route", "show", prefix)
	if err != nil {
		tb.t.Logf("ip route: %v: %s", err, out)
		return nil
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		tb.t.Logf("decoding %q: %v", out, err)
		return nil
	}
	var gws []string
	for _, r := range routes {
		if r.Gateway != "" {
			gws = append(gws, r.Gateway)
		}
		for _, nh := range r.Nexthops {
			gws = append(gws, nh.Gateway)
		}
	}
	slices.Sort(gws)
	return gws
}

// nodeAddrs returns the sorted addresses of the named nodes in ip's
// family: the next hops a route to ip should have.
func (tb *testbed) nodeAddrs(ip string, names ...string) []string {
	v6 := strings.Contains(ip, ":")
	var out []string
	for _, n := range names {
		h := tb.lab.Host(n)
		if v6 {
			out = append(out, h.IPv6().String())
		} else {
			out = append(out, h.IPv4().String())
		}
	}
	slices.Sort(out)
	return out
}

// waitRoute waits until FRR's BGP table, FRR's RIB and the router's
// kernel all route ip to exactly the named nodes (none: no route), and
// returns how long it took.
func (tb *testbed) waitRoute(ip string, nodes ...string) time.Duration {
	tb.t.Helper()
	start := time.Now()
	prefix := hostPrefix(ip)
	want := tb.nodeAddrs(ip, nodes...)
	var bgp, rib, kernel []string
	tb.eventuallyf(func() string {
		return fmt.Sprintf("route %s via %v: BGP table %v, RIB %v, kernel %v", prefix, want, bgp, rib, kernel)
	}, func() bool {
		bgp, rib, kernel = tb.bgpNexthops(prefix), tb.ribNexthops(prefix), tb.kernelNexthops(prefix)
		return slices.Equal(bgp, want) && slices.Equal(rib, want) && slices.Equal(kernel, want)
	})
	return time.Since(start)
}

// url is the router's URL for a VIP.
func url(ip string) string {
	a := netip.MustParseAddr(ip)
	if a.Is6() {
		return "http://[" + a.String() + "]/"
	}
	return "http://" + a.String() + "/"
}

// get asks the VIP from the router and returns the node that answered.
func (tb *testbed) get(ip string) (string, error) {
	body, err := tb.lab.Router().HTTPGet(tb.ctx, url(ip), requestWait)
	return strings.TrimSpace(body), err
}

// metrics returns the announcer's /metrics text.
func (tb *testbed) metrics(h *lab.Host) string {
	tb.t.Helper()
	body, err := h.HTTPGet(tb.ctx, "http://127.0.0.1:7472/metrics", 2*time.Second)
	if err != nil {
		tb.t.Fatalf("metrics of %s: %v", h.Name(), err)
	}
	return body
}

// hasMetric says whether the announcer of h exports a sample whose line
// starts with prefix (name and labels) and whose value is not 0.
func (tb *testbed) hasMetric(h *lab.Host, prefix string) bool {
	body, err := h.HTTPGet(tb.ctx, "http://127.0.0.1:7472/metrics", 2*time.Second)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) && !strings.HasSuffix(line, " 0") {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds, within settleTimeout.
func (tb *testbed) eventually(what string, cond func() bool) {
	tb.t.Helper()
	tb.eventuallyf(func() string { return what }, cond)
}

func (tb *testbed) eventuallyf(what func() string, cond func() bool) {
	tb.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) && tb.ctx.Err() == nil {
		if cond() {
			return
		}
		time.Sleep(pollEvery)
	}
	tb.t.Fatalf("timed out after %v waiting for %s", settleTimeout, what())
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

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// numCPU is the machine's CPU count, for benchmark headers.
func numCPU() int { return runtime.NumCPU() }

// show runs a command on an FRR daemon over a vty socket connection kept
// open, which answers in about a millisecond where a vtysh process takes
// tens: the waits and benchmarks poll FRR often. A failed connection is
// dropped and dialled again on the next call.
func (tb *testbed) show(daemon, cmd string) (string, error) {
	v := tb.vty[daemon]
	if v == nil {
		var err error
		if v, err = tb.frr.Dial(daemon); err != nil {
			return "", err
		}
		tb.vty[daemon] = v
	}
	out, err := v.Do(tb.ctx, cmd)
	var status *lab.VTYStatusError
	switch {
	case errors.As(err, &status) && status.Status == 1:
		// A warning, such as zebra's for a route it does not have; the
		// output ("{}") is still the answer.
		return out, nil
	case err != nil && !errors.As(err, &status):
		v.Close()
		delete(tb.vty, daemon)
	}
	return out, err
}

// showJSON is show for a command ending in "json", decoded into out.
func (tb *testbed) showJSON(daemon, cmd string, out any) error {
	text, err := tb.show(daemon, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		return fmt.Errorf("%s %q: decoding %q: %w", daemon, cmd, text, err)
	}
	return nil
}

// closeVTY closes the vty connections.
func (tb *testbed) closeVTY() {
	for d, v := range tb.vty {
		v.Close()
		delete(tb.vty, d)
	}
}

// restartFRR stops FRR and starts it again with the same configuration.
func (tb *testbed) restartFRR() {
	tb.t.Helper()
	tb.closeVTY()
	if err := tb.frr.Stop(); err != nil {
		tb.t.Fatal(err)
	}
	var err error
	if tb.frr, err = tb.lab.StartFRR(tb.ctx, tb.bgpd); err != nil {
		tb.t.Fatal(err)
	}
}
