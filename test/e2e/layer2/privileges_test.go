package layer2

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

// TestRunsAsDeployed: every lab announcer runs with the user and the only
// capability deploy/base's DaemonSet grants (read back from the kernel)
// and answers ARP and NDP with them; every other test of the suite runs
// its announcers the same way, so a manifest that grants too little fails
// them all. Its endpoint is served as deployed: /healthz to anyone,
// /metrics to a scraper allowed by ClusterRole baremetal-metrics-reader
// (a ServiceAccount token checked by TokenReview, or a client
// certificate), /debug/pprof/ only to those allowed that path.
func TestRunsAsDeployed(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	for _, h := range tb.Lab.Nodes() {
		tb.CheckPrivileges(h)
	}
	tb.createService("web", cluster, "203.0.113.200", "2001:db8:1::200")
	for _, ip := range []string{"203.0.113.200", "2001:db8:1::200"} {
		tb.waitServedBy(ip, expectedOwner(ip, allNodes...))
	}

	token, certUser := tb.scraper("e2e-prometheus")
	tests := []struct {
		name string
		as   *rest.Config
		path string
		// want is "" for 200 OK, else the status the request fails with.
		want string
	}{
		{name: "anonymous probe", as: nil, path: "/healthz"},
		{name: "anonymous scrape", as: nil, path: "/metrics", want: "403 Forbidden"},
		{name: "ServiceAccount token bound to baremetal-metrics-reader", as: token, path: "/metrics"},
		{name: "client certificate bound to baremetal-metrics-reader", as: certUser, path: "/metrics"},
		{name: "a wrong token", as: &rest.Config{BearerToken: "not-a-token"}, path: "/metrics", want: "401 Unauthorized"},
		{name: "metrics reader asks for profiles", as: token, path: "/debug/pprof/", want: "403 Forbidden"},
		{name: "admin asks for profiles", as: e2e.ControlPlane().AdminConfig(), path: "/debug/pprof/"},
	}
	h := tb.Lab.Node(1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := tb.ScrapeAs(tt.as, h, tt.path, 5*time.Second)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("GET %s: %v (%.200s)", tt.path, err, body)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("GET %s: err %v, want %s", tt.path, err, tt.want)
			case tt.path == "/metrics" && err == nil && !strings.Contains(body, "baremetal_announcer_membership_members 3"):
				t.Errorf("GET /metrics: no membership gauge in %.300s", body)
			}
		})
	}
}

// scraper makes a Prometheus-like identity allowed ClusterRole
// baremetal-metrics-reader (deploy/base/metrics-services.yaml): a
// ServiceAccount with a bound token, and a user with a client certificate.
func (tb *testbed) scraper(name string) (token, cert *rest.Config) {
	tb.T.Helper()
	ctx := tb.Ctx
	sa, err := tb.CS.CoreV1().ServiceAccounts(tb.NS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		tb.T.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "baremetal-metrics-reader"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: tb.NS},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name},
		},
	}
	binding, err = tb.CS.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err != nil {
		tb.T.Fatal(err)
	}
	tb.T.Cleanup(func() {
		_ = tb.CS.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	tr, err := tb.CS.CoreV1().ServiceAccounts(tb.NS).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		tb.T.Fatal(err)
	}
	cert, err = e2e.ControlPlane().ConfigFor(name)
	if err != nil {
		tb.T.Fatal(err)
	}
	return &rest.Config{BearerToken: tr.Status.Token}, cert
}
