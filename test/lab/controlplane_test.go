package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// TestForwardRealAPIServer runs kubectl inside a node namespace against the
// real apiserver on the root namespace's loopback, through ForwardAPIServer,
// with the admin kubeconfig unchanged.
func TestForwardRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts etcd and kube-apiserver")
	}
	dir, err := controlplane.ToolsDir()
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, controlplane.APIServerBinary))
	}
	if err != nil {
		t.Skipf("control-plane binaries missing (run make tools): %v", err)
	}
	l := NewForTest(t, Options{Nodes: 2})
	cp := controlplane.StartForTest(t, controlplane.Options{})
	ctx := testCtx(t)
	if _, err := l.ForwardAPIServer(l.Node(1), cp.Port()); err != nil {
		t.Fatal(err)
	}
	kubectl := func(h *Host) (string, error) {
		return h.Exec(ctx, cp.KubectlPath(), "--kubeconfig="+cp.AdminKubeconfig(),
			"--cache-dir="+filepath.Join(t.TempDir(), "cache"), "--request-timeout=5s", "get", "namespace", "default", "-o", "name")
	}
	begin := time.Now()
	out, err := kubectl(l.Node(1))
	t.Logf("kubectl in node1 took %v", time.Since(begin).Round(time.Millisecond))
	if err != nil || strings.TrimSpace(out) != "namespace/default" {
		t.Fatalf("kubectl in node1: %q, %v", out, err)
	}
	begin = time.Now()
	out, err = kubectl(l.Node(2))
	t.Logf("kubectl in node2 took %v", time.Since(begin).Round(time.Millisecond))
	if err == nil {
		t.Errorf("kubectl in node2, which has no forward, reached the apiserver: %q", out)
	}
}
