// Package layer2 is the end-to-end test of the layer 2 announcer: the real
// baremetal-announcer binary runs in three lab nodes (network namespaces on
// one bridge, package lab) against a real kube-apiserver (package
// controlplane), with the announcer's own RBAC identity, and a client on
// the same segment resolves and curls the Services' IPs.
//
// The cloud-controller-manager does not run here: each test writes the
// Service status IPs itself, which is exactly the announcer's input, so a
// failure points at the announcer alone.
//
// Needs root, iproute2 and the control-plane tools (make tools). Skipped
// with -short.
package layer2

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

var (
	cp      *controlplane.ControlPlane
	skipWhy string
)

func TestMain(m *testing.M) {
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
		// A /16 of ClusterIPs, for TestScale's thousands of Services.
		APIServerArgs: []string{"--service-cluster-ip-range=10.0.0.0/16"},
	}
	code := controlplane.RunMain(m, opts, func(c *controlplane.ControlPlane) { cp = c })
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the repository root, from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// setup is done once per test binary: build the announcer, install the
// deploy/base manifests (namespace, RBAC) and the memberlist Secret.
var (
	setupOnce    sync.Once
	setupErr     error
	announcerBin string
	binDir       string
)

const (
	systemNS        = "baremetal-system"
	serviceAccount  = "baremetal-announcer"
	memberlistName  = "baremetal-memberlist"
	memberlistValue = "e2e-test-key-not-secret"
)

func globalSetup(t testing.TB) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	setupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		binDir, setupErr = os.MkdirTemp("", "announcer-e2e-")
		if setupErr != nil {
			return
		}
		// BAREMETAL_ANNOUNCER overrides the build, to test a given binary.
		if announcerBin = os.Getenv("BAREMETAL_ANNOUNCER"); announcerBin == "" {
			announcerBin = filepath.Join(binDir, "baremetal-announcer")
			// The Makefile's flags, so the build cache of `make build`
			// serves this build too.
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", announcerBin, "./cmd/baremetal-announcer")
			cmd.Dir = repoRoot()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				setupErr = fmt.Errorf("building the announcer: %v\n%s", err, out)
				return
			}
		}
		if _, err := cp.Kubectl(ctx, "apply", "--server-side", "-k", filepath.Join(repoRoot(), "deploy", "base")); err != nil {
			setupErr = fmt.Errorf("applying deploy/base: %w", err)
			return
		}
		cs := adminClient()
		_, err := cs.CoreV1().Secrets(systemNS).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: memberlistName, Namespace: systemNS},
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
