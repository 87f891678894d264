package integration

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// cp is the control plane shared by every test and benchmark of the
// package; nil with -short, when every test skips.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// `make unit`: no apiserver, no CCM.
		os.Exit(m.Run())
	}
	opts := controlplane.Options{
		// Dual-stack, so that RequireDualStack Services are accepted and
		// get an IPv4 and an IPv6 ClusterIP, as on a dual-stack cluster.
		DualStack: true,
		// The harness's IPv4 service range is a /24: 254 ClusterIPs, too
		// few for the scale tests and benchmarks (1,000 Services). A /16
		// keeps 10.0.0.1, which the apiserver's certificate names.
		APIServerArgs: []string{"--service-cluster-ip-range=10.0.0.0/16," + controlplane.ServiceCIDRv6},
	}
	os.Exit(controlplane.RunMain(m, opts, func(c *controlplane.ControlPlane) { cp = c }))
}

// Bounds for the waits in this package. They are generous for a loaded
// 2-core CI machine; the figures the tests log show the usual times.
const (
	testTimeout  = 4 * time.Minute
	ipTimeout    = 30 * time.Second
	eventTimeout = 30 * time.Second
)

// cleanupFinalizer is the finalizer the service controller puts on every
// Service it has given a load balancer.
const cleanupFinalizer = "service.kubernetes.io/load-balancer-cleanup"

// env is one test's view of the cluster: an admin client and the
// namespaces the test made, which are emptied when the test ends.
type env struct {
	t   testing.TB
	ctx context.Context
	cs  kubernetes.Interface
	ns  string // the test's first namespace
	own *apitest.Namespaces
}

// sub returns the env for a subtest: same client, namespaces and cleanup,
// but failures are reported on t, from t's goroutine.
func (e *env) sub(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// requireControlPlane skips the test when TestMain started no control
// plane (-short).
func requireControlPlane(t testing.TB) {
	t.Helper()
	if cp == nil {
		t.Skip("integration test against a real apiserver; skipped with -short")
	}
}

// newEnv makes a namespace for the test. Call it before starting a CCM:
// cleanups run last-registered first, so the CCM is then stopped before
// the namespace is emptied and cannot re-add a finalizer.
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWithin(t, testTimeout)
}

// newEnvWithin is newEnv for a test or benchmark that may take up to d;
// every call of the env's client ends by then.
func newEnvWithin(t testing.TB, d time.Duration) *env {
	t.Helper()
	requireControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	cs := apitest.Client(t, cp)
	e := &env{t: t, ctx: ctx, cs: cs, own: apitest.NewNamespaces(t, cs)}
	e.ns = e.namespace("")
	return e
}

// namespace creates another namespace for the test and returns its name,
// derived from the test name so that a leftover object tells whose it is.
func (e *env) namespace(suffix string) string {
	e.t.Helper()
	return e.own.Create(e.ctx, e.t, suffix, nil)
}

// trackNode makes cleanup delete the Node.
func (e *env) trackNode(name string) { e.own.TrackNode(name) }

// svcOpt adjusts a Service built by lbService.
type svcOpt func(*corev1.Service)

// lbService is a LoadBalancer Service like the walkthrough's nginx: TCP 80,
// a pod selector, no load-balancer class.
func lbService(name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func annotations(kv ...string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func ports(ps ...int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = nil
		for _, p := range ps {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{
				Name: fmt.Sprintf("p%d", p), Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP,
			})
		}
	}
}

func families(policy corev1.IPFamilyPolicy, fams ...corev1.IPFamily) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &policy
		s.Spec.IPFamilies = fams
	}
}

func loadBalancerIP(ip string) svcOpt {
	return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip }
}

// create creates svc in ns and fails the test on error.
func (e *env) create(ns string, svc *corev1.Service) *corev1.Service {
	e.t.Helper()
	return apitest.CreateService(e.ctx, e.t, e.cs, ns, svc)
}

func (e *env) get(ns, name string) *corev1.Service {
	e.t.Helper()
	return apitest.GetService(e.ctx, e.t, e.cs, ns, name)
}

// waitIPs waits until the Service has at least n addresses in its status
// and returns the Service. On timeout it fails the test with the Service's
// status and events, which say why it is pending.
func (e *env) waitIPs(ns, name string, n int) *corev1.Service {
	e.t.Helper()
	var svc *corev1.Service
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		s, err := e.cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		svc = s
		return len(s.Status.LoadBalancer.Ingress) >= n, nil
	})
	if err != nil {
		e.t.Fatalf("Service %s/%s has no %d address(es) after %v: %v\nstatus: %+v\nevents:\n%s",
			ns, name, n, ipTimeout, err, svc.Status.LoadBalancer, e.describeEvents(ns, name))
	}
	return svc
}

// events lists the events about one object in ns.
func (e *env) events(ctx context.Context, ns, name string) ([]corev1.Event, error) {
	sel := fields.OneTermEqualSelector("involvedObject.name", name).String()
	list, err := e.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (e *env) describeEvents(ns, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := e.events(ctx, ns, name)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %s (x%d): %s\n", ev.Type, ev.Reason, ev.Count, ev.Message)
	}
	return b.String()
}

// waitEvent waits for an event about ns/name with the given type and
// reason whose message contains every one of want, and returns it.
func (e *env) waitEvent(ns, name, typ, reason string, want ...string) corev1.Event {
	e.t.Helper()
	var found corev1.Event
	err := apitest.WaitUntil(e.ctx, eventTimeout, func(ctx context.Context) (bool, error) {
		evs, err := e.events(ctx, ns, name)
		if err != nil {
			return false, err
		}
		for _, ev := range evs {
			if ev.Type != typ || ev.Reason != reason {
				continue
			}
			if containsAll(ev.Message, want) {
				found = ev
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		e.t.Fatalf("no %s %s event on %s/%s containing %q after %v: %v\nevents:\n%s",
			typ, reason, ns, name, want, eventTimeout, err, e.describeEvents(ns, name))
	}
	return found
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// inRange reports whether ip lies in the inclusive range "from-to" or the
// CIDR.
func inRange(ip, r string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	if from, to, ok := strings.Cut(r, "-"); ok {
		f, err1 := netip.ParseAddr(strings.TrimSpace(from))
		t, err2 := netip.ParseAddr(strings.TrimSpace(to))
		return err1 == nil && err2 == nil && f.Compare(a) <= 0 && a.Compare(t) <= 0
	}
	p, err := netip.ParsePrefix(r)
	return err == nil && p.Contains(a)
}

// duplicates returns the addresses held by more than one Service, for
// Services that do not share on purpose.
func duplicates(svcs []corev1.Service) map[string][]string {
	holders := map[string][]string{}
	for _, s := range svcs {
		for _, ip := range apitest.IngressIPs(&s) {
			holders[ip] = append(holders[ip], s.Namespace+"/"+s.Name)
		}
	}
	for ip, hs := range holders {
		if len(hs) < 2 {
			delete(holders, ip)
		}
	}
	return holders
}

// mergePatch applies a JSON merge patch to a Service, as
// `kubectl patch --type=merge` does.
func (e *env) mergePatch(ns, name string, patch any) {
	e.t.Helper()
	b, err := json.Marshal(patch)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().Services(ns).Patch(e.ctx, name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		e.t.Fatalf("patching Service %s/%s with %s: %v", ns, name, b, err)
	}
}

// ipWatch records, through an informer on one namespace, the first moment
// each Service was seen with an address in its status. Benchmarks and scale
// tests use it rather than polling each Service, so that measuring costs
// the apiserver one watch.
type ipWatch struct {
	mu      sync.Mutex
	first   map[string]time.Time
	changed chan struct{} // closed and replaced on every new entry
	stop    context.CancelFunc
}

func newIPWatch(t testing.TB, ctx context.Context, cs kubernetes.Interface, ns string) *ipWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	w := &ipWatch{first: map[string]time.Time{}, changed: make(chan struct{}), stop: cancel}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Services().Informer()
	record := func(obj any) {
		s, ok := obj.(*corev1.Service)
		if !ok || len(s.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, seen := w.first[s.Name]; !seen {
			w.first[s.Name] = now
			close(w.changed)
			w.changed = make(chan struct{})
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, cur any) { record(cur) },
	}); err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	t.Cleanup(func() { cancel(); f.Shutdown() })
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("Service informer never synced")
	}
	return w
}

// seen returns when name first had an address.
func (w *ipWatch) seen(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.first[name]
	return at, ok
}

// waitFor blocks until every name has had an address, or timeout.
func (w *ipWatch) waitFor(names []string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		var missing []string
		for _, n := range names {
			if _, ok := w.first[n]; !ok {
				missing = append(missing, n)
			}
		}
		ch := w.changed
		w.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			slices.Sort(missing)
			if len(missing) > 5 {
				missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
			}
			return fmt.Errorf("no address after %v for %s", timeout, strings.Join(missing, ", "))
		}
	}
}
