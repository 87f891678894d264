package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/privileges"
)

// The announcer's identity and memberlist Secret, as deploy/base names
// them.
const (
	SystemNamespace = "baremetal-system"
	serviceAccount  = "baremetal-announcer"
	memberlistName  = "baremetal-memberlist"
	memberlistValue = "e2e-test-key-not-secret"
)

var (
	cp      *controlplane.ControlPlane
	skipWhy string

	// Set once per test binary by setup.
	setupOnce    sync.Once
	setupErr     error
	announcerBin string
	binDir       string
	// announcerPrivileges are the DaemonSet container's user and
	// capabilities, which every lab announcer runs with.
	announcerPrivileges privileges.Privileges
)

// Main is a suite's TestMain: it skips every test with -short or where
// the lab cannot run, and otherwise runs them against one control plane.
// It does not return.
func Main(m *testing.M) {
	flag.Parse()
	switch {
	case testing.Short():
		skipWhy = "end-to-end lab test; skipped with -short"
	case lab.Supported() != nil:
		skipWhy = lab.Supported().Error()
	}
	if skipWhy != "" {
		os.Exit(m.Run())
	}
	opts := controlplane.Options{
		// A /16 of ClusterIPs, for the thousands of Services of layer2's
		// TestScale and the benchmarks.
		APIServerArgs: []string{"--service-cluster-ip-range=10.0.0.0/16"},
	}
	code := controlplane.RunMain(m, opts, func(c *controlplane.ControlPlane) { cp = c })
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ControlPlane is the test binary's control plane; nil outside Main.
func ControlPlane() *controlplane.ControlPlane { return cp }

// AdminClient is a cluster-admin client of the control plane.
func AdminClient() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(cp.AdminConfig())
}

// setup skips t if Main said so and otherwise, once per test binary,
// builds the announcer, reads its DaemonSet's privileges, applies
// deploy/base (namespace, RBAC) and creates the memberlist Secret.
func setup(t testing.TB) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	setupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		root, err := controlplane.RepoRoot()
		if err != nil {
			setupErr = err
			return
		}
		if binDir, setupErr = os.MkdirTemp("", "announcer-e2e-"); setupErr != nil {
			return
		}
		// BAREMETAL_ANNOUNCER overrides the build, to test a given binary.
		if announcerBin = os.Getenv("BAREMETAL_ANNOUNCER"); announcerBin == "" {
			announcerBin = filepath.Join(binDir, "baremetal-announcer")
			// The Makefile's flags, so the build cache of `make build`
			// serves this build too.
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", announcerBin, "./cmd/baremetal-announcer")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				setupErr = fmt.Errorf("building the announcer: %v\n%s", err, out)
				return
			}
		}
		// BAREMETAL_ANNOUNCER_DAEMONSET overrides the manifest whose
		// privileges the announcers get, to try another grant.
		manifest := os.Getenv("BAREMETAL_ANNOUNCER_DAEMONSET")
		if manifest == "" {
			manifest = filepath.Join(root, "deploy", "base", "announcer-daemonset.yaml")
		}
		announcerPrivileges, err = privileges.FromManifest(manifest, "announcer")
		if err != nil {
			setupErr = err
			return
		}
		if _, err := exec.LookPath(privileges.SetprivBinary); err != nil {
			setupErr = fmt.Errorf("the announcers run under %s (util-linux) with the DaemonSet's privileges: %w", privileges.SetprivBinary, err)
			return
		}
		if _, err := cp.Kubectl(ctx, "apply", "--server-side", "-k", filepath.Join(root, "deploy", "base")); err != nil {
			setupErr = fmt.Errorf("applying deploy/base: %w", err)
			return
		}
		_, err = AdminClient().CoreV1().Secrets(SystemNamespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: memberlistName, Namespace: SystemNamespace},
			Data:       map[string][]byte{"secretkey": []byte(memberlistValue)},
		}, metav1.CreateOptions{})
		if err != nil {
			setupErr = fmt.Errorf("creating the memberlist Secret: %w", err)
		}
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}
