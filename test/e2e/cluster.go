package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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

// Options shape a Cluster; a suite fills in its own.
type Options struct {
	// Lab is the lab's shape: which extra hosts, IPv6.
	Lab lab.Options
	// CloudConfig is the announcers' cloud-config.
	CloudConfig string
	// VIPs are the pool addresses every node serves on lo, as kube-proxy
	// would for every Service IP.
	VIPs []string
	// NamespacePrefix is the GenerateName of the test's namespace.
	NamespacePrefix string
	// AnnouncerArgs go after the announcer flags every suite passes.
	AnnouncerArgs []string
	// Within bounds the whole test; default five minutes.
	Within time.Duration
	// SettleTimeout bounds Eventually; PollEvery is its polling period.
	SettleTimeout, PollEvery time.Duration
	// LogTail is how much of each announcer's log a failed test logs.
	LogTail int
}

// Cluster is one test's cluster: a lab, Node objects for its nodes, a
// namespace for Services, and the announcers started in the nodes.
type Cluster struct {
	T testing.TB
	// Ctx ends with the test, or after Options.Within.
	Ctx context.Context
	Lab *lab.Lab
	// CS is a cluster-admin client.
	CS kubernetes.Interface
	// NS is the test's namespace, for its Services and EndpointSlices.
	NS string
	// Kubeconfig is the announcer's, with its own RBAC identity.
	Kubeconfig string
	// ConfigFile is the cloud-config file of Options.CloudConfig.
	ConfigFile string
	// Forwards are the nodes' apiserver forwards, by node name.
	Forwards map[string]*lab.Forward
	// Announcers are the announcers started, by node name.
	Announcers map[string]*process.Process
	// ExtraArgs go after the announcer's own flags, which they override
	// (benchmarks pass the shipped --v=0).
	ExtraArgs []string

	opts Options
}

// New builds t's cluster: the lab, the namespace, and for every node its
// Node object, apiserver forward, VIPs and HTTP server on port 80, which
// answers with the node's name. No announcer runs yet.
func New(t testing.TB, opts Options) *Cluster {
	setup(t)
	if opts.Within == 0 {
		opts.Within = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Within)
	t.Cleanup(cancel)
	c := &Cluster{
		T: t, Ctx: ctx, CS: AdminClient(), opts: opts,
		Forwards: map[string]*lab.Forward{}, Announcers: map[string]*process.Process{},
	}
	c.Lab = lab.NewForTest(t, opts.Lab)

	var err error
	if c.Kubeconfig, err = cp.KubeconfigForServiceAccount(SystemNamespace, serviceAccount); err != nil {
		t.Fatal(err)
	}
	c.ConfigFile = c.WriteConfig("cloud-config.yaml", opts.CloudConfig)

	ns, err := c.CS.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: opts.NamespacePrefix}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.NS = ns.Name
	t.Cleanup(func() {
		// No namespace controller runs here, so a deleted namespace keeps
		// its objects: delete the Services (whose IPs the next test
		// reuses) and EndpointSlices themselves.
		ctx := context.Background()
		if list, err := c.CS.CoreV1().Services(c.NS).List(ctx, metav1.ListOptions{}); err == nil {
			for _, s := range list.Items {
				_ = c.CS.CoreV1().Services(c.NS).Delete(ctx, s.Name, metav1.DeleteOptions{})
			}
		}
		_ = c.CS.DiscoveryV1().EndpointSlices(c.NS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = c.CS.CoreV1().Namespaces().Delete(ctx, c.NS, metav1.DeleteOptions{})
	})

	for _, h := range c.Lab.Nodes() {
		c.CreateNode(h)
		f, err := c.Lab.ForwardAPIServer(h, cp.Port())
		if err != nil {
			t.Fatal(err)
		}
		c.Forwards[h.Name()] = f
		for _, v := range opts.VIPs {
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
			for name, p := range c.Announcers {
				t.Logf("--- %s announcer log (tail) ---\n%s", name, p.LogTail(opts.LogTail))
			}
		}
	})
	return c
}

// WriteConfig writes a cloud-config file and returns its path.
func (c *Cluster) WriteConfig(name, content string) string {
	c.T.Helper()
	path := filepath.Join(c.T.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		c.T.Fatal(err)
	}
	return path
}

// CreateNode (re)creates the Node object of a lab host, Ready, with its
// IPv4 and IPv6 addresses. Node objects are cluster-wide, so a previous
// test's are replaced.
func (c *Cluster) CreateNode(h *lab.Host) {
	c.T.Helper()
	_ = c.CS.CoreV1().Nodes().Delete(c.Ctx, h.Name(), metav1.DeleteOptions{})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(c.opts.PollEvery) {
		if _, err := c.CS.CoreV1().Nodes().Get(c.Ctx, h.Name(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
	}
	n, err := c.CS.CoreV1().Nodes().Create(c.Ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.Name()}}, metav1.CreateOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}}
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: h.IPv4().String()},
		{Type: corev1.NodeInternalIP, Address: h.IPv6().String()},
		{Type: corev1.NodeHostName, Address: h.Name()},
	}
	if _, err := c.CS.CoreV1().Nodes().UpdateStatus(c.Ctx, n, metav1.UpdateOptions{}); err != nil {
		c.T.Fatal(err)
	}
	name := h.Name()
	c.T.Cleanup(func() { _ = c.CS.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	c.CreateAnnouncerPod(name)
}

// AnnouncerPodLabels are the labels of the DaemonSet's Pods, which the
// announcer's split-brain guard looks for (--announcer-pod-selector).
var AnnouncerPodLabels = map[string]string{"app.kubernetes.io/name": "baremetal-announcer"}

// announcerPodName is the name of node's announcer Pod object.
func announcerPodName(node string) string { return "baremetal-announcer-" + node }

// CreateAnnouncerPod (re)creates the Pod object that the DaemonSet would
// have on node, Running and Ready: the split-brain guard counts the nodes
// with one as the announcers it expects. No kubelet runs here, so the Pod
// is only an API object; the announcer itself is the process in the
// node's namespace.
func (c *Cluster) CreateAnnouncerPod(node string) {
	c.T.Helper()
	pods := c.CS.CoreV1().Pods(SystemNamespace)
	name := announcerPodName(node)
	zero := int64(0)
	_ = pods.Delete(c.Ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(c.opts.PollEvery) {
		if _, err := pods.Get(c.Ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
	}
	no := false
	p, err := pods.Create(c.Ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: AnnouncerPodLabels},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			ServiceAccountName:           serviceAccount,
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "announcer", Image: "baremetal-announcer"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	c.T.Cleanup(func() {
		_ = c.CS.CoreV1().Pods(SystemNamespace).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	c.setPodReady(p, true)
}

// SetAnnouncerPodReady sets the Ready condition of node's announcer Pod,
// as the kubelet does when the container starts or dies.
func (c *Cluster) SetAnnouncerPodReady(node string, ready bool) {
	c.T.Helper()
	p, err := c.CS.CoreV1().Pods(SystemNamespace).Get(c.Ctx, announcerPodName(node), metav1.GetOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	c.setPodReady(p, ready)
}

func (c *Cluster) setPodReady(p *corev1.Pod, ready bool) {
	c.T.Helper()
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}
	if _, err := c.CS.CoreV1().Pods(SystemNamespace).UpdateStatus(c.Ctx, p, metav1.UpdateOptions{}); err != nil {
		c.T.Fatal(err)
	}
}

// SetNodeReady sets the Ready condition of a node.
func (c *Cluster) SetNodeReady(name string, ready bool) {
	c.T.Helper()
	n, err := c.CS.CoreV1().Nodes().Get(c.Ctx, name, metav1.GetOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := c.CS.CoreV1().Nodes().UpdateStatus(c.Ctx, n, metav1.UpdateOptions{}); err != nil {
		c.T.Fatal(err)
	}
}

// LabelNode sets (value != "") or removes a label of a node.
func (c *Cluster) LabelNode(name, key, value string) {
	c.T.Helper()
	n, err := c.CS.CoreV1().Nodes().Get(c.Ctx, name, metav1.GetOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if value == "" {
		delete(n.Labels, key)
	} else {
		n.Labels[key] = value
	}
	if _, err := c.CS.CoreV1().Nodes().Update(c.Ctx, n, metav1.UpdateOptions{}); err != nil {
		c.T.Fatal(err)
	}
}

// StartAnnouncer runs the real binary in the node's namespace with the
// cluster's cloud-config; see StartAnnouncerWith.
func (c *Cluster) StartAnnouncer(h *lab.Host) *process.Process {
	c.T.Helper()
	return c.StartAnnouncerWith(h, c.ConfigFile)
}

// StartAnnouncerWith runs the real binary in the node's namespace with
// the given cloud-config file, as the DaemonSet does: its own RBAC
// identity, the memberlist Secret, metrics on :7472 (the namespace's own
// loopback), and the user and capabilities of
// deploy/base/announcer-daemonset.yaml (package privileges).
func (c *Cluster) StartAnnouncerWith(h *lab.Host, configFile string) *process.Process {
	c.T.Helper()
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--cloud-config=" + configFile,
		"--node-name=" + h.Name(),
		"--memberlist-secret=" + memberlistName,
		"--memberlist-secret-namespace=" + SystemNamespace,
		// The DaemonSet's POD_NAMESPACE: where the announcer finds its
		// Pods and the CCM's retained addresses.
		"--namespace=" + SystemNamespace,
		"--metrics-bind-address=127.0.0.1:7472",
		"--v=2",
	}
	args = append(append(args, c.opts.AnnouncerArgs...), c.ExtraArgs...)
	// With the DaemonSet's user and capabilities and nothing more.
	path, args := announcerPrivileges.Command(announcerBin, args...)
	p, err := h.Start(context.WithoutCancel(c.Ctx), process.Spec{Name: "announcer", Path: path, Args: args})
	if err != nil {
		c.T.Fatal(err)
	}
	c.Announcers[h.Name()] = p
	return p
}

// Metrics returns the announcer's /metrics text.
func (c *Cluster) Metrics(h *lab.Host) string {
	c.T.Helper()
	body, err := c.Scrape(h, "/metrics", 2*time.Second)
	if err != nil {
		c.T.Fatalf("metrics of %s: %v", h.Name(), err)
	}
	return body
}

// LoadBalancer is a LoadBalancer Service of one HTTP port.
func LoadBalancer(name string, etp corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: etp,
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
}

// CreateService creates svc in the test's namespace and writes its status
// IPs, as the cloud-controller-manager would.
func (c *Cluster) CreateService(svc *corev1.Service, ips ...string) *corev1.Service {
	c.T.Helper()
	svc, err := c.CS.CoreV1().Services(c.NS).Create(c.Ctx, svc, metav1.CreateOptions{})
	if err != nil {
		c.T.Fatal(err)
	}
	svc, err = c.SetStatus(svc, ips...)
	if err != nil {
		c.T.Fatal(err)
	}
	return svc
}

// SetStatus writes the Service's status IPs.
func (c *Cluster) SetStatus(svc *corev1.Service, ips ...string) (*corev1.Service, error) {
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return c.CS.CoreV1().Services(c.NS).UpdateStatus(c.Ctx, svc, metav1.UpdateOptions{})
}

// SetEndpoints gives the Service one EndpointSlice with a ready endpoint
// on each of nodes (none: an empty slice).
func (c *Cluster) SetEndpoints(svc string, nodes ...string) {
	c.T.Helper()
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
	slices := c.CS.DiscoveryV1().EndpointSlices(c.NS)
	if _, err := slices.Update(c.Ctx, slice, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		if _, err := slices.Create(c.Ctx, slice, metav1.CreateOptions{}); err != nil {
			c.T.Fatal(err)
		}
	} else if err != nil {
		c.T.Fatal(err)
	}
}

// URL is the URL of a VIP's HTTP server.
func URL(ip string) string {
	a := netip.MustParseAddr(ip)
	if a.Is6() {
		return "http://[" + a.String() + "]/"
	}
	return "http://" + a.String() + "/"
}

// Eventually polls cond until it holds, within Options.SettleTimeout.
func (c *Cluster) Eventually(what string, cond func() bool) {
	c.T.Helper()
	c.Eventuallyf(func() string { return what }, cond)
}

// Eventuallyf is Eventually with a description computed on failure, which
// can say what cond last saw.
func (c *Cluster) Eventuallyf(what func() string, cond func() bool) {
	c.T.Helper()
	deadline := time.Now().Add(c.opts.SettleTimeout)
	for time.Now().Before(deadline) && c.Ctx.Err() == nil {
		if cond() {
			return
		}
		time.Sleep(c.opts.PollEvery)
	}
	c.T.Fatalf("timed out after %v waiting for %s", c.opts.SettleTimeout, what())
}
