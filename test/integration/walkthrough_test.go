package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config/testdata"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// walkthroughRange is the range of the MetalLB walkthrough's pool
// (testdata.WalkthroughConfig). Its comment says "keep it in the subnet of
// the cluster's hosts"; the apiserver never routes the address, so the
// range is used exactly as written.
const walkthroughRange = "192.168.92.200-192.168.92.210"

// TestWalkthroughNginxGetsExternalIPFromPool follows the walkthrough: the
// user hands the CCM the pool (either the config block or the whole MetalLB
// ConfigMap YAML), applies the nginx Service with kubectl, and sees an
// EXTERNAL-IP from the pool in `kubectl get service`.
func TestWalkthroughNginxGetsExternalIPFromPool(t *testing.T) {
	requireControlPlane(t)
	tests := []struct {
		name        string
		cloudConfig string
	}{
		{name: "config block", cloudConfig: testdata.WalkthroughConfig},
		{name: "whole ConfigMap YAML", cloudConfig: testdata.WalkthroughConfigMap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ccm.Start(t, cp, ccm.Options{CloudConfig: tt.cloudConfig})

			manifest := filepath.Join(t.TempDir(), "tutorial-2.yaml")
			if err := os.WriteFile(manifest, []byte(testdata.WalkthroughService), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := cp.Kubectl(e.ctx, "apply", "-n", e.ns, "-f", manifest); err != nil {
				t.Fatal(err)
			}

			svc := e.waitIPs(e.ns, "nginx", 1)
			ips := apitest.IngressIPs(svc)
			if len(ips) != 1 || !inRange(ips[0], walkthroughRange) {
				t.Fatalf("nginx got %v, want one address in %s", ips, walkthroughRange)
			}
			t.Logf("nginx got %s", ips[0])

			// What the walkthrough's user looks at.
			out, err := cp.Kubectl(e.ctx, "get", "service", "-n", e.ns)
			if err != nil {
				t.Fatal(err)
			}
			row := kubectlRow(t, out, "nginx")
			if row["TYPE"] != "LoadBalancer" || row["EXTERNAL-IP"] != ips[0] || !strings.HasPrefix(row["PORT(S)"], "80:") {
				t.Errorf("kubectl get service shows %v, want TYPE LoadBalancer, EXTERNAL-IP %s, PORT(S) 80:<nodePort>/TCP:\n%s", row, ips[0], out)
			}

			if !slices.Contains(svc.Finalizers, cleanupFinalizer) {
				t.Errorf("finalizers %v lack %s, so deleting the Service would leak its address", svc.Finalizers, cleanupFinalizer)
			}
			e.waitEvent(e.ns, "nginx", "Normal", "EnsuredLoadBalancer")
		})
	}
}

// kubectlRow parses kubectl's table output and returns the columns of the
// row whose NAME is name.
func kubectlRow(t *testing.T, out, name string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("kubectl printed no rows:\n%s", out)
	}
	header := strings.Fields(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == len(header) && f[0] == name {
			row := map[string]string{}
			for i, h := range header {
				row[h] = f[i]
			}
			return row
		}
	}
	t.Fatalf("no row %q in:\n%s", name, out)
	return nil
}
