package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config/testdata"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// TestMetricsShowPoolUsageToAuthorizedScrapers scrapes the CCM's /metrics
// as Prometheus would: the pool gauges count the Services' addresses, and
// the secure port lets in only identities that RBAC allows `get` on the
// /metrics URL, through delegated authentication and authorization.
func TestMetricsShowPoolUsageToAuthorizedScrapers(t *testing.T) {
	e := newEnv(t)
	c := ccm.Start(t, cp, ccm.Options{CloudConfig: testdata.WalkthroughConfig})
	names, _ := e.createMany(e.ns, "web", 3, 3)
	for _, n := range names {
		e.waitIPs(e.ns, n, 1)
	}

	pool := map[string]string{"pool": "default", "family": "IPv4"}
	var inUse, total float64
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		m, err := c.Metrics(ctx)
		if err != nil {
			return false, err
		}
		if inUse, err = ccm.MetricValue(m, "baremetal_loadbalancer_pool_addresses_in_use", pool); err != nil {
			return false, err
		}
		if total, err = ccm.MetricValue(m, "baremetal_loadbalancer_pool_addresses_total", pool); err != nil {
			return false, err
		}
		return inUse == 3, fmt.Errorf("in use %v", inUse)
	})
	if err != nil {
		t.Fatalf("baremetal_loadbalancer_pool_addresses_in_use%v: %v", pool, err)
	}
	if total != 11 {
		t.Errorf("baremetal_loadbalancer_pool_addresses_total%v = %v, want 11 (%s)", pool, total, walkthroughRange)
	}

	// A scraper's ClusterRole, as a Prometheus install would bind it.
	scraper := "metrics-scraper-" + apitest.RandHex(3)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: scraper},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: scraper},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: scraper},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: scraper}},
	}
	if _, err := e.cs.RbacV1().ClusterRoles().Create(e.ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.cs.RbacV1().ClusterRoles().Delete(context.Background(), scraper, metav1.DeleteOptions{}) })
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Create(e.ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), scraper, metav1.DeleteOptions{})
	})

	identity := func(user string) *rest.Config {
		cfg, err := cp.ConfigFor(user)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name string
		cfg  *rest.Config
		path string
		want int
	}{
		{name: "admin reads /metrics", cfg: cp.AdminConfig(), path: "/metrics", want: http.StatusOK},
		{name: "a user bound to get /metrics reads it", cfg: identity(scraper), path: "/metrics", want: http.StatusOK},
		{name: "a user without that right is forbidden", cfg: identity("nobody-" + apitest.RandHex(3)), path: "/metrics", want: http.StatusForbidden},
		{name: "an anonymous request is forbidden", cfg: nil, path: "/metrics", want: http.StatusForbidden},
		{name: "probes need no credentials", cfg: nil, path: "/healthz", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := c.Get(e.ctx, tt.cfg, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Errorf("GET %s: %d, want %d: %.300s", tt.path, code, tt.want, body)
			}
		})
	}
}
