// Package bgp is the end-to-end test of BGP announcements: a router
// namespace runs real FRR (zebra and bgpd), peered over the lab segment
// with the real baremetal-announcer binary in three node namespaces, which
// read a real kube-apiserver with the announcer's own RBAC identity. The
// tests read FRR's BGP table and RIB, the router's kernel routing table,
// and curl the Services' IPs from the router.
//
// As in test/e2e/layer2, no cloud-controller-manager runs: each test
// writes the Service status IPs itself, which is exactly the announcer's
// input.
//
// Needs root, iproute2, FRR (installed on demand) and the control-plane
// tools (make tools). Skipped with -short.
package bgp

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
		// A /16 of ClusterIPs, for the benchmarks' thousands of Services.
		APIServerArgs: []string{"--service-cluster-ip-range=10.0.0.0/16"},
	}
	code := controlplane.RunMain(m, opts, func(c *controlplane.ControlPlane) { cp = c })
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

const (
	systemNS       = "baremetal-system"
	serviceAccount = "baremetal-announcer"
	memberlistName = "baremetal-memberlist"
)

var (
	setupOnce    sync.Once
	setupErr     error
	announcerBin string
	binDir       string
)

func adminClient() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(cp.AdminConfig())
}

// globalSetup runs once per test binary: build the announcer, apply
// deploy/base (namespace, RBAC) and create the memberlist Secret.
func globalSetup(t testing.TB) {
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
		if binDir, setupErr = os.MkdirTemp("", "announcer-e2e-bgp-"); setupErr != nil {
			return
		}
		// BAREMETAL_ANNOUNCER overrides the build, to test a given binary.
		if announcerBin = os.Getenv("BAREMETAL_ANNOUNCER"); announcerBin == "" {
			announcerBin = filepath.Join(binDir, "baremetal-announcer")
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", announcerBin, "./cmd/baremetal-announcer")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				setupErr = fmt.Errorf("building the announcer: %v\n%s", err, out)
				return
			}
		}
		if _, err := cp.Kubectl(ctx, "apply", "--server-side", "-k", filepath.Join(root, "deploy", "base")); err != nil {
			setupErr = fmt.Errorf("applying deploy/base: %w", err)
			return
		}
		_, err = adminClient().CoreV1().Secrets(systemNS).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: memberlistName, Namespace: systemNS},
			Data:       map[string][]byte{"secretkey": []byte("e2e-bgp-key-not-secret")},
		}, metav1.CreateOptions{})
		if err != nil {
			setupErr = fmt.Errorf("creating the memberlist Secret: %w", err)
		}
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}
