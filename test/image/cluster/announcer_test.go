package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/image"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/privileges"
)

// announcerServiceAccount is the DaemonSet's ServiceAccount (deploy/base).
const announcerServiceAccount = "baremetal-announcer"

func TestMain(m *testing.M) {
	// Started again as a container's runner (see image.Container)?
	image.RunIfContainer()
	e2e.Main(m)
}

// TestAnnouncerStartsFromImage starts the announcer image as the
// DaemonSet would on a node: its entrypoint from the unpacked root
// filesystem, read-only, in the node's network namespace, as uid 0 with
// only NET_RAW, with the DaemonSet's arguments and environment, the
// cloud-config where the ConfigMap volume puts it, and the in-cluster
// configuration the kubelet gives a Pod (a ServiceAccount token, the CA
// and KUBERNETES_SERVICE_HOST). It must reach the lab's apiserver with
// that token, answer ARP for a Service's IP so that the client's request
// lands on the node, serve /healthz, and exit cleanly on SIGTERM.
func TestAnnouncerStartsFromImage(t *testing.T) {
	im := image.ForTest(t)
	const vip = "203.0.113.200"
	c := e2e.New(t, e2e.Options{
		Lab:             lab.Options{Nodes: 1, Client: true},
		CloudConfig:     "address-pools:\n- name: lab\n  protocol: layer2\n  addresses:\n  - " + lab.L2PoolV4 + "\n",
		VIPs:            []string{vip},
		NamespacePrefix: "image-",
		SettleTimeout:   90 * time.Second,
		PollEvery:       250 * time.Millisecond,
		LogTail:         6000,
	})
	h := c.Lab.Node(1)
	w := image.Workloads[1]
	root, img := im.Rootfs(t, w.Image)

	// The DaemonSet's volume: the cloud-config where it mounts it.
	manifest := filepath.Join(im.Root, "deploy", "base", w.Manifest)
	ctr, err := image.WorkloadContainer(manifest, w.Container)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	mounted := false
	for _, m := range ctr.VolumeMounts {
		if m.Name == "cloud-config" {
			writeFile(t, root, filepath.Join(m.MountPath, "cloud-config.yaml"), cfg)
			mounted = true
		}
	}
	if !mounted {
		t.Fatalf("%s: no volumeMount named cloud-config", manifest)
	}

	// The kubelet's ServiceAccount volume and environment.
	tr, err := c.CS.CoreV1().ServiceAccounts(e2e.SystemNamespace).CreateToken(c.Ctx, announcerServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(e2e.ControlPlane().CAFile())
	if err != nil {
		t.Fatal(err)
	}
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	writeFile(t, root, sa+"/token", []byte(tr.Status.Token))
	writeFile(t, root, sa+"/ca.crt", ca)
	writeFile(t, root, sa+"/namespace", []byte(e2e.SystemNamespace))
	env, err := image.ContainerEnv(ctr, h.Name(), e2e.SystemNamespace)
	if err != nil {
		t.Fatal(err)
	}
	// The node's forward of the apiserver listens on its loopback at
	// the apiserver's port (e2e.New), as kube-proxy would for the
	// kubernetes Service.
	env = append(env,
		"HOSTNAME="+h.Name(),
		"KUBERNETES_SERVICE_HOST=127.0.0.1",
		"KUBERNETES_SERVICE_PORT="+strconv.Itoa(e2e.ControlPlane().Port()),
	)
	ct := im.Container(t, w, root, img, nil, env)
	if !ct.ReadOnlyRoot {
		t.Errorf("%s: readOnlyRootFilesystem is not true", manifest)
	}
	t.Logf("running %q as %+v", ct.Argv, ct.Privileges)
	p := image.Start(t, c.Ctx, h, "announcer", ct)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- announcer log ---\n%s", p.LogTail(6000))
		}
	})

	// The kernel's view: the entrypoint runs (not the runner any more),
	// in the image's root, with the DaemonSet's user and capabilities.
	var lastErr error
	c.Eventuallyf(func() string { return fmt.Sprintf("the announcer to run with %+v: %v", ct.Privileges, lastErr) }, func() bool {
		lastErr = checkProcess(p.Pid(), root, img.Config.Config.Entrypoint[0], ct.Privileges)
		return lastErr == nil || !p.Running()
	})
	if !p.Running() {
		t.Fatalf("announcer exited: %v", p.Err())
	}

	svc := c.CreateService(e2e.LoadBalancer("web", corev1.ServiceExternalTrafficPolicyCluster), vip)
	c.SetEndpoints(svc.Name, h.Name())
	client := c.Lab.Client()
	var body string
	c.Eventuallyf(func() string {
		return fmt.Sprintf("the client to reach %s on %s (last: %q, %v)", vip, h.Name(), body, lastErr)
	}, func() bool {
		body, lastErr = client.HTTPGet(c.Ctx, e2e.URL(vip), 2*time.Second)
		return lastErr == nil && strings.TrimSpace(body) == h.Name()
	})
	if mac, _, err := client.Neighbor(vip); err != nil || mac != h.MAC().String() {
		t.Errorf("client's neighbour entry for %s: %q (%v), want %s's %s", vip, mac, err, h.Name(), h.MAC())
	}
	if body, err := c.Scrape(h, "/healthz", 5*time.Second); err != nil {
		t.Errorf("/healthz: %q, %v", body, err)
	}

	// The kubelet stops a container with SIGTERM.
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(); code != 0 {
		t.Errorf("announcer exited with %d after SIGTERM, want 0", code)
	}
}

// checkProcess: pid runs the image's entrypoint, chrooted into root, with
// p's privileges.
func checkProcess(pid int, root, entrypoint string, p privileges.Privileges) error {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	// The kernel keeps 15 characters of the name.
	if !strings.Contains(string(status), "Name:\tbaremetal-annou\n") {
		return fmt.Errorf("not the announcer yet")
	}
	// Its / is the image's: the entrypoint there is the unpacked file.
	inside, err := os.Stat(fmt.Sprintf("/proc/%d/root/%s", pid, entrypoint))
	if err != nil {
		return err
	}
	unpacked, err := os.Stat(filepath.Join(root, entrypoint))
	if err != nil {
		return err
	}
	if !os.SameFile(inside, unpacked) {
		return fmt.Errorf("its /%s is not the image's", entrypoint)
	}
	return p.CheckStatus(string(status))
}

// writeFile writes data at path inside root, as a volume would put it
// there.
func writeFile(t *testing.T, root, path string, data []byte) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
