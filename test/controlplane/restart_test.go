package controlplane_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// TestRestartAPIServer: a killed apiserver comes back on the same port
// with the same data, and the clients made before it went work again.
func TestRestartAPIServer(t *testing.T) {
	c := controlplane.StartForTest(t, controlplane.Options{})
	ctx := testCtx(t)
	cs := adminClient(t, c)
	createNamespace(ctx, t, cs, "before-restart")
	port, first := c.Port(), c.APIServer()

	if err := c.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "before-restart", metav1.GetOptions{}); err == nil {
		t.Fatal("the apiserver answered after KillAPIServer")
	}
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port || c.APIServer() == first || !c.APIServer().Running() {
		t.Errorf("after the restart: port %d (was %d), new process %v", c.Port(), port, c.APIServer() != first)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "before-restart", metav1.GetOptions{}); err != nil {
		t.Errorf("the old client after the restart: %v", err)
	}
	if err := c.StartAPIServer(ctx); err == nil {
		t.Error("StartAPIServer of a running apiserver: no error")
	}
}
