package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config/testdata"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/privileges"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// What a kubelet started by kubeadm with --cloud-provider=external (see
// deploy/kubeadm) puts on its Node until the CCM initializes it.
const (
	uninitializedTaint = "node.cloudprovider.kubernetes.io/uninitialized"
	providedIPAnn      = "alpha.kubernetes.io/provided-node-ip"
)

// The announcer's identity and Secret, as deploy/base names them.
const (
	systemNS          = "baremetal-system"
	announcerSA       = "baremetal-announcer"
	memberlistSecret  = "baremetal-memberlist"
	announcerMetrics  = ":7472"
	announcerHTTPPort = 80
)

// nodeColumns shows what the CCM changes on a Node.
const nodeColumns = `custom-columns=NAME:.metadata.name,TAINTS:.spec.taints[*].key,INTERNAL-IP:.status.addresses[?(@.type=="InternalIP")].address,PROVIDER-ID:.spec.providerID`

func (d *demo) prerequisites(ctx context.Context) error {
	if err := lab.Supported(); err != nil {
		return err
	}
	var missing []string
	for _, b := range []string{d.opts.CCMBinary, d.opts.AnnouncerBinary} {
		if _, err := os.Stat(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run `make build`", strings.Join(missing, ", "))
	}
	tools, err := controlplane.ToolsDir()
	if err != nil {
		return err
	}
	for _, b := range []string{controlplane.EtcdBinary, controlplane.APIServerBinary, controlplane.KubectlBinary} {
		if _, err := os.Stat(filepath.Join(tools, b)); err != nil {
			missing = append(missing, filepath.Join(tools, b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run `make tools`", strings.Join(missing, ", "))
	}
	for _, pkg := range []string{"frr", "curl"} {
		if !lab.Installed(pkg) {
			d.printf("installing %s from Debian's packages (apt-get) ...", pkg)
		}
	}
	if err := lab.EnsurePackages(ctx, "frr", "curl"); err != nil {
		return err
	}
	d.printf("%s, %s", d.rel(d.opts.CCMBinary), d.rel(d.opts.AnnouncerBinary))
	d.printf("%s/{etcd,kube-apiserver,kubectl}", d.rel(tools))
	d.printf("frr %s, curl %s (Debian packages)", debVersion("frr"), debVersion("curl"))
	d.bgpWhy = bgpSupport(d.root)
	d.bgp = d.bgpWhy == ""
	if d.bgp {
		d.printf("the announcer speaks BGP: the bgp pool step will run")
	} else {
		d.printf("the announcer has no BGP support yet (%s): the bgp pool step will be skipped", d.bgpWhy)
	}
	return nil
}

func debVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func (d *demo) startControlPlane(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cpStartBudget)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: filepath.Join(d.opts.Dir, "controlplane")})
	if err != nil {
		return err
	}
	d.cp = cp
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return err
	}
	d.cs = cs
	d.printf("kube-apiserver on %s (ready after %.1fs), etcd on %s", cp.Host(), cp.ReadyAfter().Seconds(), cp.EtcdURL())
	return nil
}

func (d *demo) startLab(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, labBudget)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{
		Prefix: d.opts.LabPrefix,
		Nodes:  3,
		Router: true,
		Client: true,
		Dir:    filepath.Join(d.opts.Dir, "lab"),
	})
	if err != nil {
		return err
	}
	d.lab = l
	d.report.Namespaces = l.Namespaces()
	if d.frr, err = l.StartFRR(ctx, lab.DefaultBGPDConf("")); err != nil {
		return err
	}
	d.printf("%-7s %-15s %-14s %-18s %s", "host", "namespace", "address", "MAC", "runs")
	for _, h := range l.Hosts() {
		runs := ""
		switch {
		case h == l.Router():
			runs = fmt.Sprintf("FRR (zebra, bgpd: AS %d, accepts the nodes as AS %d)", lab.RouterASN, lab.NodeASN)
		case h == l.Client():
			runs = "curl"
		default:
			runs = "announcer, web server (kube-proxy's part)"
		}
		d.printf("%-7s %-15s %-14s %-18s %s", h.Name(), h.NS(), h.IPv4(), h.MAC(), runs)
	}
	d.printf("all on one bridge (%s in %s); nothing of the lab touches the root namespace", lab.BridgeName, l.SwitchNS())
	return nil
}

func (d *demo) registerNodes(ctx context.Context) error {
	for _, h := range d.lab.Nodes() {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: h.Name(),
				Labels: map[string]string{
					"kubernetes.io/hostname": h.Name(),
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
				},
				// The kubelet's --node-ip, which it cannot set as an
				// address itself with an external cloud provider.
				Annotations: map[string]string{providedIPAnn: h.IPv4().String()},
			},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: uninitializedTaint, Value: "true", Effect: corev1.TaintEffectNoSchedule}}},
		}
		n, err := d.cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		n.Status.NodeInfo.KubeletVersion = controlplane.KubernetesVersion
		if n, err = d.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
		// The apiserver tainted the new Node not-ready (admission plugin
		// TaintNodesByCondition); kube-controller-manager's node lifecycle
		// controller lifts that taint once the node is Ready. It does not
		// run here (with no kubelet heartbeats it would mark the nodes
		// NotReady), so the demo does its part.
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		if _, err := d.cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if err := d.kubectl(ctx, "get", "nodes"); err != nil {
		return err
	}
	return d.kubectl(ctx, "get", "nodes", "-o", nodeColumns)
}

func (d *demo) installDeploy(ctx context.Context) error {
	if err := d.kubectl(ctx, "apply", "--server-side", "-k", filepath.Join(d.root, "deploy", "base")); err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	d.printf("the walkthrough's memberlist Secret, under deploy/base's name:")
	secret := base64.StdEncoding.EncodeToString(key)
	return d.kubectlShown(ctx,
		[]string{"create", "secret", "generic", "-n", systemNS, memberlistSecret, `--from-literal=secretkey="$(openssl rand -base64 32)"`},
		"create", "secret", "generic", "-n", systemNS, memberlistSecret, "--from-literal=secretkey="+secret)
}

func (d *demo) applyCloudConfig(ctx context.Context) error {
	cfg := cloudConfig(d.bgp)
	name := "example-layer2-config.yaml"
	if d.bgp {
		name = "example-config.yaml"
	}
	manifest := filepath.Join(d.opts.Dir, name)
	if err := os.WriteFile(manifest, []byte(configMapManifest(cfg)), 0o644); err != nil {
		return err
	}
	// The file the CCM's Deployment and the announcers' DaemonSet see
	// where deploy/base mounts the ConfigMap.
	d.cloudFile = filepath.Join(d.opts.Dir, "cloud-config.yaml")
	if err := os.WriteFile(d.cloudFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := d.cat(manifest); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "apply", "-f", manifest); err != nil {
		return err
	}
	d.printf("the CCM and the announcers read data.cloud-config.yaml as --cloud-config (deploy/base mounts it at /etc/baremetal)")
	return nil
}

func (d *demo) startCCM(ctx context.Context) error {
	kc, err := d.cp.KubeconfigForServiceAccount(ccm.Namespace, ccm.ServiceAccount)
	if err != nil {
		return err
	}
	ports, err := controlplane.FreePorts(1)
	if err != nil {
		return err
	}
	// deploy/base's flags, with a loopback port and this cluster's
	// kubeconfig for the ServiceAccount identity.
	args := []string{
		"--cloud-provider=baremetal",
		"--cloud-config=" + d.cloudFile,
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--controllers=" + ccm.DefaultControllers,
		"--leader-elect=true",
		"--leader-elect-resource-namespace=" + ccm.Namespace,
		"--secure-port=" + strconv.Itoa(ports[0]),
		"--bind-address=127.0.0.1",
		"--v=2",
	}
	// The CCM must outlive ctx's step; teardown stops it.
	p, err := process.Start(context.WithoutCancel(ctx), process.Spec{
		Name: "ccm", Path: d.opts.CCMBinary, Args: args,
		LogPath: filepath.Join(d.opts.Dir, "logs", "ccm.log"),
	})
	if err != nil {
		return err
	}
	d.ccm = p
	d.printf("%s --cloud-provider=baremetal --controllers=%s (log: %s)", CCMBinaryName, ccm.DefaultControllers, d.rel(p.LogPath()))

	var names []string
	for _, h := range d.lab.Nodes() {
		names = append(names, h.Name())
	}
	err = d.eventually(ctx, "the CCM to initialize "+strings.Join(names, ", "), func() (bool, error) {
		list, err := d.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		var done []string
		for _, n := range list.Items {
			tainted := slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == uninitializedTaint })
			if !tainted && n.Spec.ProviderID != "" && hasInternalIP(&n) {
				done = append(done, n.Name)
			}
		}
		slices.Sort(done)
		d.report.InitializedNodes = done
		return slices.Equal(done, names), nil
	}, p)
	if err != nil {
		return err
	}
	if err := d.kubectl(ctx, "get", "nodes"); err != nil {
		return err
	}
	return d.kubectl(ctx, "get", "nodes", "-o", nodeColumns)
}

func hasInternalIP(n *corev1.Node) bool {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return true
		}
	}
	return false
}

func (d *demo) startAnnouncers(ctx context.Context) error {
	kc, err := d.cp.KubeconfigForServiceAccount(systemNS, announcerSA)
	if err != nil {
		return err
	}
	// The DaemonSet container's user and capabilities, and nothing more.
	privs, err := privileges.FromManifest(filepath.Join(d.root, "deploy", "base", "announcer-daemonset.yaml"), "announcer")
	if err != nil {
		return err
	}
	for _, h := range d.lab.Nodes() {
		// The apiserver listens on the root namespace's loopback only;
		// this carries the node's 127.0.0.1:<port> there.
		if _, err := d.lab.ForwardAPIServer(h, d.cp.Port()); err != nil {
			return err
		}
		if _, err := h.ServeHTTP(announcerHTTPPort); err != nil {
			return err
		}
		// The DaemonSet's container: NODE_NAME and POD_NAMESPACE from the
		// downward API, its args, its ServiceAccount, its privileges.
		path, args := privs.Command(d.opts.AnnouncerBinary,
			"--kubeconfig="+kc,
			"--cloud-config="+d.cloudFile,
			"--memberlist-secret="+memberlistSecret,
			"--metrics-bind-address="+announcerMetrics,
			"--v=2",
		)
		p, err := h.Start(context.WithoutCancel(ctx), process.Spec{
			Name: "announcer",
			Path: path,
			Env:  []string{"NODE_NAME=" + h.Name(), "POD_NAMESPACE=" + systemNS},
			Args: args,
		})
		if err != nil {
			return err
		}
		d.announcers[h.Name()] = p
	}
	want := fmt.Sprintf("baremetal_announcer_membership_members %d", len(d.lab.Nodes()))
	// /metrics is HTTPS with delegated authentication, as the DaemonSet
	// serves it: scrape with the admin's client certificate, and skip
	// verifying the announcer's self-signed certificate as a Prometheus
	// scrape config would.
	scrapeTLS, err := rest.TLSConfigFor(d.cp.AdminConfig())
	if err != nil {
		return err
	}
	scrapeTLS.InsecureSkipVerify = true
	for _, h := range d.lab.Nodes() {
		err := d.eventually(ctx, h.Name()+"'s announcer to see every node", func() (bool, error) {
			body, err := h.HTTPSGet(ctx, "https://127.0.0.1"+announcerMetrics+"/metrics", time.Second, scrapeTLS, nil)
			return err == nil && strings.Contains(body, want), nil
		}, d.announcers[h.Name()])
		if err != nil {
			return err
		}
		d.printf("%s: %s running (pid %d), memberlist on %s:7946 sees %d nodes; web server on :%d answers %q",
			h.Name(), AnnouncerBinaryName, d.announcers[h.Name()].Pid(), h.IPv4(), len(d.lab.Nodes()), announcerHTTPPort, h.Name())
	}
	return nil
}

func (d *demo) applyService(ctx context.Context) error {
	ip, err := d.applyLBService(ctx, "tutorial-2.yaml", "nginx", testdata.WalkthroughService)
	if err != nil {
		return err
	}
	d.report.ExternalIP = ip
	return nil
}

// applyLBService writes manifest to file, shows and applies it, waits for
// the Service's EXTERNAL-IP, shows `kubectl get service`, and puts the IP
// on every node's lo as kube-proxy would.
func (d *demo) applyLBService(ctx context.Context, file, name, manifest string) (string, error) {
	path := filepath.Join(d.opts.Dir, file)
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		return "", err
	}
	if err := d.cat(path); err != nil {
		return "", err
	}
	if err := d.kubectl(ctx, "apply", "-f", path); err != nil {
		return "", err
	}
	var ip string
	err := d.eventually(ctx, "an EXTERNAL-IP for Service "+name, func() (bool, error) {
		svc, err := d.cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, nil
		}
		ip = svc.Status.LoadBalancer.Ingress[0].IP
		return ip != "", nil
	}, d.ccm)
	if err != nil {
		return "", err
	}
	if err := d.kubectl(ctx, "get", "service"); err != nil {
		return "", err
	}
	for _, h := range d.lab.Nodes() {
		if err := h.AddVIP(ip); err != nil {
			return "", err
		}
	}
	d.printf("node1-3 now hold %s on lo, as kube-proxy would; the announcers decide who makes it reachable", ip)
	return ip, nil
}

// kubectl runs the real kubectl against the demo's apiserver as its admin
// and prints the command and its output as they are.
func (d *demo) kubectl(ctx context.Context, args ...string) error {
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = d.rel(a)
	}
	return d.kubectlShown(ctx, shown, args...)
}

// kubectlShown is kubectl with the command line shown as shown, for
// arguments that are best not printed (a secret).
func (d *demo) kubectlShown(ctx context.Context, shown []string, args ...string) error {
	fmt.Fprintf(d.out, "$ kubectl %s\n", shellJoin(shown))
	out, err := d.cp.Kubectl(ctx, args...)
	fmt.Fprint(d.out, out)
	return err
}

// cat shows a file the demo wrote, as `cat` would.
func (d *demo) cat(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "$ cat %s\n%s", d.rel(path), b)
	return nil
}

// rel shortens paths under the demo's directory and the repository for
// display: the user runs the commands from there.
func (d *demo) rel(s string) string {
	for _, dir := range []string{d.opts.Dir, d.root} {
		if r, ok := strings.CutPrefix(s, dir+string(filepath.Separator)); ok && filepath.IsAbs(s) {
			return r
		}
	}
	return s
}

// shellJoin quotes arguments that a shell would otherwise split or expand.
// An argument that already holds a shell expression ($(...)) is left as is.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case strings.Contains(a, "$("):
			out[i] = a
		case a == "" || strings.ContainsAny(a, " \t\n\"'`$\\*?[]{}()<>|&;#~!"):
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		default:
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

// eventually polls cond until it holds, for at most settleTimeout. A
// process in watch that exits ends the wait at once with its log's tail.
func (d *demo) eventually(ctx context.Context, what string, cond func() (bool, error), watch ...*process.Process) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		for _, p := range watch {
			if p != nil && !p.Running() {
				return fmt.Errorf("%s exited (%v) while waiting for %s; log %s:\n%s", p.Name(), p.Err(), what, p.LogPath(), p.LogTail(3000))
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %v waiting for %s", settleTimeout, what)
			}
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}
