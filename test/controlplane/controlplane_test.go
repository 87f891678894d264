package controlplane_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// cp is shared by the tests of this package, as RunMain intends.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunMain(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func adminClient(t *testing.T, c *controlplane.ControlPlane) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func createNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func lbService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func TestReady(t *testing.T) {
	t.Logf("apiserver %s ready %v after launch; logs in %s", cp.Host(), cp.ReadyAfter(), cp.LogDir())
	v, err := adminClient(t, cp).Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != controlplane.KubernetesVersion {
		t.Errorf("apiserver reports %s, want %s (built without the version ldflags?)", v.GitVersion, controlplane.KubernetesVersion)
	}
	if _, err := adminClient(t, cp).CoreV1().ServiceAccounts("default").Get(testCtx(t), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("default ServiceAccount: %v", err)
	}
}

// TestVersionMatchesBuildScript keeps the Go constant and build.sh's single
// version variable in step.
func TestVersionMatchesBuildScript(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "test", "tools", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^K8S_VERSION="([^"]+)"`).FindSubmatch(b)
	if m == nil || string(m[1]) != controlplane.KubernetesVersion {
		t.Fatalf("build.sh K8S_VERSION = %q, KubernetesVersion = %q", m, controlplane.KubernetesVersion)
	}
}

func TestLoadBalancerService(t *testing.T) {
	ctx := testCtx(t)
	cs := adminClient(t, cp)
	const ns = "lb-test"
	createNamespace(ctx, t, cs, ns)

	svc, err := cs.CoreV1().Services(ns).Create(ctx, lbService("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix(controlplane.ServiceCIDRv4).Contains(ip) {
		t.Errorf("ClusterIP %q not in %s", svc.Spec.ClusterIP, controlplane.ServiceCIDRv4)
	}
	if svc.Spec.Ports[0].NodePort == 0 {
		t.Error("no NodePort allocated for a LoadBalancer Service")
	}
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("ingress %v set with no cloud provider running", svc.Status.LoadBalancer.Ingress)
	}

	out, err := cp.Kubectl(ctx, "get", "svc", "-n", ns, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "service/web" {
		t.Errorf("kubectl get svc -o name = %q", out)
	}
	out, err = cp.Kubectl(ctx, "get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.type}")
	if err != nil || out != "LoadBalancer" {
		t.Errorf("kubectl get svc web type = %q, %v", out, err)
	}
}

// TestServiceAccountRBAC checks that a ServiceAccount identity is subject to
// RBAC: forbidden with no binding, allowed once bound.
func TestServiceAccountRBAC(t *testing.T) {
	ctx := testCtx(t)
	cs := adminClient(t, cp)
	const ns, sa = "rbac-test", "provider"
	createNamespace(ctx, t, cs, ns)

	cfg, err := cp.ConfigForServiceAccount(ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	saClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = saClient.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("listing services without a binding: err = %v, want Forbidden", err)
	}
	if !strings.Contains(err.Error(), "system:serviceaccount:"+ns+":"+sa) {
		t.Errorf("Forbidden error does not name the ServiceAccount: %v", err)
	}

	kubeconfig, err := cp.KubeconfigForServiceAccount(ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.KubectlAs(ctx, kubeconfig, "get", "svc", "-n", ns); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("kubectl as %s: err = %v, want forbidden", sa, err)
	}

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "svc-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer reads bindings from an informer, so allow it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := saClient.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listing services with a binding: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := saClient.CoreV1().Services("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the Role leaked to another namespace: err = %v", err)
	}
}

func TestStartWithoutTools(t *testing.T) {
	t.Setenv(controlplane.ToolsDirEnv, t.TempDir())
	_, err := controlplane.Start(testCtx(t), controlplane.Options{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("Start with an empty tools dir: err = %v, want a hint to run make tools", err)
	}
}

// TestDualStackWithControllers runs a second, dual-stack control plane with
// the endpointslice controller, and checks its teardown.
func TestDualStackWithControllers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second control plane")
	}
	dual := controlplane.StartForTest(t, controlplane.Options{DualStack: true, Controllers: []string{"endpointslice"}})
	t.Logf("dual-stack apiserver ready %v after launch", dual.ReadyAfter())
	ctx := testCtx(t)
	cs := adminClient(t, dual)
	const ns = "dual"
	createNamespace(ctx, t, cs, ns)

	svc := lbService("web")
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc.Spec.IPFamilyPolicy = &policy
	svc, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("ClusterIPs = %v, want one per family", svc.Spec.ClusterIPs)
	}
	v6, err := netip.ParseAddr(svc.Spec.ClusterIPs[1])
	if err != nil || !netip.MustParsePrefix(controlplane.ServiceCIDRv6).Contains(v6) {
		t.Errorf("second ClusterIP %q not in %s", svc.Spec.ClusterIPs[1], controlplane.ServiceCIDRv6)
	}

	// The endpointslice controller publishes a placeholder slice even with
	// no pods behind the selector.
	deadline := time.Now().Add(30 * time.Second)
	for {
		slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
		if err == nil && len(slices.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("EndpointSlices for web: %v, %v", slices, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Stop is idempotent and returns only once the processes are gone and
	// the port is closed; t.Cleanup calls it once more.
	if err := dual.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := dual.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, p := range []interface{ Running() bool }{dual.APIServer(), dual.Etcd(), dual.ControllerManager()} {
		if p.Running() {
			t.Error("a process still runs after Stop")
		}
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(dual.Host(), "https://"), time.Second)
	if err == nil {
		conn.Close()
		t.Error("apiserver port still accepts connections after Stop")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Stop: %v, want connection refused", err)
	}
}
