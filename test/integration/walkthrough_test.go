package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// The MetalLB walkthrough (shared/seed/metallb-walkthrough.txt), verbatim:
// its pool as the cloud-config block, the whole ConfigMap it applies, and
// its nginx Service. The comment on the range says "keep it in the subnet of
// the cluster's hosts"; the apiserver never routes the address, so the
// range is used exactly as written.
const (
	walkthroughPool = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.92.200-192.168.92.210   #跟k8s集群节点的宿主机ip地址段保持一致
`

	walkthroughConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.168.92.200-192.168.92.210   #跟k8s集群节点的宿主机ip地址段保持一致
`

	walkthroughService = `apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 80
  selector:
    app: nginx
  type: LoadBalancer
`

	walkthroughRange = "192.168.92.200-192.168.92.210"
)

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
		{name: "config block", cloudConfig: walkthroughPool},
		{name: "whole ConfigMap YAML", cloudConfig: walkthroughConfigMap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ccm.Start(t, cp, ccm.Options{CloudConfig: tt.cloudConfig})

			manifest := filepath.Join(t.TempDir(), "tutorial-2.yaml")
			if err := os.WriteFile(manifest, []byte(walkthroughService), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := cp.Kubectl(e.ctx, "apply", "-n", e.ns, "-f", manifest); err != nil {
				t.Fatal(err)
			}

			svc := e.waitIPs(e.ns, "nginx", 1)
			ips := ingressIPs(svc)
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
