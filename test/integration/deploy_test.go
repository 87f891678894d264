package integration

import (
	"path/filepath"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// TestDeployManifestsPassServerSideDryRun sends every kustomization a user
// may apply to the apiserver as a server-side dry run, so schema errors,
// immutable-field clashes between base and overlays, and admission
// rejections show up here. The kubeadm files are kubeadm's input, not
// cluster objects, and the generated-memberlist-key component needs a
// local key file by design, so neither is applied.
func TestDeployManifestsPassServerSideDryRun(t *testing.T) {
	e := newEnv(t)
	// The dry run does not create the namespace, so the namespaced objects
	// need it to exist: the real apply of the base brings it.
	if err := ccm.ApplyDeploy(e.ctx, cp); err != nil {
		t.Fatal(err)
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"deploy/base", "deploy/overlays/layer2", "deploy/overlays/bgp"} {
		t.Run(dir, func(t *testing.T) {
			if _, err := cp.Kubectl(e.ctx, "apply", "--server-side", "--dry-run=server", "-k", filepath.Join(root, dir)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
