package onewrite

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/yaml"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// cp is the control plane of the package's tests and side-by-side
// benchmark; nil with -short, when every test skips.
var cp *controlplane.ControlPlane

// serviceRange holds the ClusterIPs of a few thousand Services (the
// benchmark creates 1,000 per arm); it keeps 10.0.0.1, which the
// apiserver's certificate names.
const serviceRange = "--service-cluster-ip-range=10.0.0.0/16"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	opts := controlplane.Options{APIServerArgs: []string{serviceRange}}
	os.Exit(controlplane.RunMain(m, opts, func(c *controlplane.ControlPlane) { cp = c }))
}

// Bounds of the waits; generous for a loaded 2-core machine.
const (
	testTimeout = 4 * time.Minute
	ipTimeout   = 30 * time.Second
	waitTimeout = 30 * time.Second
)

const (
	// cleanupFinalizer is the service controller's finalizer, which the
	// policy adds at admission.
	cleanupFinalizer = "service.kubernetes.io/load-balancer-cleanup"
	// componentDir is the kustomize component under test, from the
	// repository root.
	componentDir = "deploy/components/one-write-finalizer"
	// policyName names the policy and the binding in the component.
	policyName = "baremetal-load-balancer-cleanup-finalizer"
)

// scaleConfig is the benchmarks' pool: 198.18.0.0/15 is RFC 2544's
// benchmarking range, never routed, as in test/integration.
const scaleConfig = `address-pools:
- name: scale
  protocol: layer2
  addresses:
  - 198.18.0.0/20
`

// env is one test's client and namespaces; cleanup empties them.
type env struct {
	t   testing.TB
	ctx context.Context
	cp  *controlplane.ControlPlane
	cs  kubernetes.Interface
	own *apitest.Namespaces
	ns  string // the first namespace
}

func requireControlPlane(t testing.TB) {
	t.Helper()
	if cp == nil {
		t.Skip("integration test against a real apiserver; skipped with -short")
	}
}

// newEnv makes a client and a namespace on c for a test or benchmark that
// may take up to d. Call it before starting a CCM: cleanups run in reverse,
// so the CCM stops before the namespace is emptied and cannot put a
// finalizer back.
func newEnv(t testing.TB, c *controlplane.ControlPlane, d time.Duration) *env {
	t.Helper()
	requireControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	cs := apitest.Client(t, c)
	e := &env{t: t, ctx: ctx, cp: c, cs: cs, own: apitest.NewNamespaces(t, cs)}
	e.ns = e.namespace("", nil)
	return e
}

// namespace creates a namespace named after the test, with labels.
func (e *env) namespace(suffix string, labels map[string]string) string {
	e.t.Helper()
	return e.own.Create(e.ctx, e.t, suffix, labels)
}

// readyNode registers a Node that reports Ready, as a kubelet would; a
// cluster has some, and without any the service controller warns on every
// sync. cleanup does not delete it: Nodes are cluster-wide and the next
// test may as well use them.
func (e *env) readyNode(name string) {
	e.t.Helper()
	if _, err := apitest.ReadyNode(e.ctx, e.cs, name); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
}

// svcOpt adjusts a Service built by service.
type svcOpt func(*corev1.Service)

// service is a Service of the given type like the walkthrough's nginx:
// TCP 80, a pod selector, no class.
func service(name string, typ corev1.ServiceType, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP}},
		},
	}
	if typ == corev1.ServiceTypeExternalName {
		s.Spec.Selector, s.Spec.ExternalName = nil, "example.com"
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func lbService(name string, opts ...svcOpt) *corev1.Service {
	return service(name, corev1.ServiceTypeLoadBalancer, opts...)
}

func withClass(class string) svcOpt {
	return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &class }
}

func withFinalizers(fs ...string) svcOpt {
	return func(s *corev1.Service) { s.Finalizers = append(s.Finalizers, fs...) }
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

func hasCleanupFinalizer(s *corev1.Service) bool {
	return slices.Contains(s.Finalizers, cleanupFinalizer)
}

// policyActive reports whether a LoadBalancer Service created in ns now
// gets the finalizer at admission, by a dry-run create: the admission
// chain runs, nothing is stored.
func (e *env) policyActive(ctx context.Context, ns string) (bool, error) {
	out, err := e.cs.CoreV1().Services(ns).Create(ctx, lbService("policy-probe-"+apitest.RandHex(3)), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return false, err
	}
	return hasCleanupFinalizer(out), nil
}

// waitPolicy waits until the apiserver applies (want) or no longer applies
// the policy to new Services in ns: it reads policies and bindings through
// informers, so a change takes effect a moment after it is stored.
func (e *env) waitPolicy(ns string, want bool) {
	e.t.Helper()
	err := apitest.WaitUntil(e.ctx, waitTimeout, func(ctx context.Context) (bool, error) {
		active, err := e.policyActive(ctx, ns)
		return err == nil && active == want, err
	})
	if err != nil {
		e.t.Fatalf("the one-write policy is not %s in namespace %s after %v: %v", map[bool]string{true: "in effect", false: "gone"}[want], ns, waitTimeout, err)
	}
}

// installComponent applies the component as a user would (kubectl apply
// -k, server-side, through an overlay that lists it), waits until it is in
// effect and registers its removal.
func (e *env) installComponent() {
	e.t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	// A Component is meant to be listed by an overlay; this one lists
	// only it, like a user's overlay would besides its own resources.
	overlay := e.t.TempDir()
	rel, err := filepath.Rel(overlay, filepath.Join(root, componentDir))
	if err != nil {
		e.t.Fatal(err)
	}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncomponents:\n- " + rel + "\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if out, err := e.cp.Kubectl(e.ctx, "apply", "--server-side", "-k", overlay); err != nil {
		e.t.Fatalf("kubectl apply -k %s: %v\n%s", componentDir, err, out)
	}
	e.t.Cleanup(func() { e.removePolicy(e.ns) })
	e.waitPolicy(e.ns, true)
}

// removePolicy deletes the policy and every binding of it, and waits
// until new Services in ns no longer get the finalizer.
func (e *env) removePolicy(ns string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api := e.cs.AdmissionregistrationV1()
	bindings, err := api.MutatingAdmissionPolicyBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Errorf("listing policy bindings: %v", err)
		return
	}
	for _, b := range bindings.Items {
		if b.Spec.PolicyName != policyName {
			continue
		}
		if err := api.MutatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			e.t.Errorf("deleting binding %s: %v", b.Name, err)
		}
	}
	if err := api.MutatingAdmissionPolicies().Delete(ctx, policyName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.t.Errorf("deleting policy %s: %v", policyName, err)
	}
	err = apitest.WaitUntil(ctx, waitTimeout, func(ctx context.Context) (bool, error) {
		active, err := e.policyActive(ctx, ns)
		return err == nil && !active, err
	})
	if err != nil {
		e.t.Errorf("the one-write policy still applies %v after its removal: %v", waitTimeout, err)
	}
}

// shippedPolicy reads the policy and binding from the component's YAML.
func shippedPolicy(t testing.TB) (*admissionv1.MutatingAdmissionPolicy, *admissionv1.MutatingAdmissionPolicyBinding) {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, componentDir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		pol *admissionv1.MutatingAdmissionPolicy
		bnd *admissionv1.MutatingAdmissionPolicyBinding
	)
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s/policy.yaml: %v", componentDir, err)
		}
		switch tm.Kind {
		case "MutatingAdmissionPolicy":
			pol = &admissionv1.MutatingAdmissionPolicy{}
			err = yaml.UnmarshalStrict([]byte(doc), pol)
		case "MutatingAdmissionPolicyBinding":
			bnd = &admissionv1.MutatingAdmissionPolicyBinding{}
			err = yaml.UnmarshalStrict([]byte(doc), bnd)
		}
		if err != nil {
			t.Fatalf("%s/policy.yaml: %s: %v", componentDir, tm.Kind, err)
		}
	}
	if pol == nil || bnd == nil {
		t.Fatalf("%s/policy.yaml: want a MutatingAdmissionPolicy and a binding", componentDir)
	}
	return pol, bnd
}

// installForLabel installs the shipped policy with a binding limited to
// namespaces labelled key=value, so that a benchmark can alternate
// Services with and without it from one CCM, create by create.
// It returns a namespace with that label, where the policy is in effect.
func (e *env) installForLabel(key, value string) string {
	e.t.Helper()
	pol, bnd := shippedPolicy(e.t)
	api := e.cs.AdmissionregistrationV1()
	if _, err := api.MutatingAdmissionPolicies().Create(e.ctx, pol, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	ns := e.namespace(value, map[string]string{key: value})
	e.t.Cleanup(func() { e.removePolicy(ns) })
	bnd.Name += "-" + value
	bnd.Spec.MatchResources = &admissionv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value}},
	}
	if _, err := api.MutatingAdmissionPolicyBindings().Create(e.ctx, bnd, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.waitPolicy(ns, true)
	return ns
}

// startCCM starts the real CCM over cloudConfig; its Stop is registered.
func startCCM(t testing.TB, c *controlplane.ControlPlane, cloudConfig string, args ...string) *ccm.CCM {
	t.Helper()
	return ccm.Start(t, c, ccm.Options{CloudConfig: cloudConfig, Args: args})
}

// sighting is one watch event of one Service.
type sighting struct {
	at         time.Time
	typ        watch.EventType
	rv         string
	finalizers []string
	ips        []string
	deleting   bool
}

// recorder watches the Services of one namespace and keeps, for each, every
// event in order. It resumes its watch from the last resourceVersion it
// saw, so no event is lost to a closed connection: the tests count writes
// by counting events.
type recorder struct {
	mu      sync.Mutex
	hist    map[string][]sighting
	firstIP map[string]time.Time
	changed chan struct{} // closed and replaced on every event
}

type serviceWatcher struct {
	cs kubernetes.Interface
	ns string
}

func (w serviceWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return w.cs.CoreV1().Services(w.ns).Watch(ctx, opts)
}

func newRecorder(e *env, ns string) *recorder {
	e.t.Helper()
	list, err := e.cs.CoreV1().Services(ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, serviceWatcher{cs: e.cs, ns: ns})
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	r := &recorder{hist: map[string][]sighting{}, firstIP: map[string]time.Time{}, changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range rw.ResultChan() {
			r.record(ev)
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		rw.Stop()
		<-done
	})
	return r
}

func (r *recorder) record(ev watch.Event) {
	now := time.Now()
	s, ok := ev.Object.(*corev1.Service)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sg := sighting{at: now, typ: ev.Type, rv: s.ResourceVersion, finalizers: slices.Clone(s.Finalizers), ips: apitest.IngressIPs(s), deleting: s.DeletionTimestamp != nil}
	r.hist[s.Name] = append(r.hist[s.Name], sg)
	if _, seen := r.firstIP[s.Name]; !seen && len(sg.ips) > 0 {
		r.firstIP[s.Name] = now
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// history returns the events seen for name so far.
func (r *recorder) history(name string) []sighting {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hist[name])
}

// seen returns when name was first seen with an address.
func (r *recorder) seen(name string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.firstIP[name]
	return at, ok
}

// waitFor blocks until cond, checked on every event, holds, or timeout.
func (r *recorder) waitFor(timeout time.Duration, what string, cond func(r *recorder) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond(r) {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("%s: not after %v", what, timeout)
		}
	}
}

// waitIPs blocks until every name has been seen with an address.
func (r *recorder) waitIPs(names []string, timeout time.Duration) error {
	var missing []string
	err := r.waitFor(timeout, "addresses", func(r *recorder) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		missing = missing[:0]
		for _, n := range names {
			if _, ok := r.firstIP[n]; !ok {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	})
	if err != nil {
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		return fmt.Errorf("%w; no address for %s", err, strings.Join(missing, ", "))
	}
	return nil
}

// waitGone blocks until name's deletion has been seen.
func (r *recorder) waitGone(name string, timeout time.Duration) error {
	return r.waitFor(timeout, name+" deleted", func(r *recorder) bool {
		h := r.history(name)
		return len(h) > 0 && h[len(h)-1].typ == watch.Deleted
	})
}

// describe renders a history for a failure message.
func describe(h []sighting) string {
	var b strings.Builder
	for _, s := range h {
		fmt.Fprintf(&b, "  %s rv=%s finalizers=%v ips=%v deleting=%v\n", s.typ, s.rv, s.finalizers, s.ips, s.deleting)
	}
	return b.String()
}
