package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// Service ClusterIP ranges. They are never routed anywhere: the lab has no
// kube-proxy, and these addresses only need to be valid allocations.
const (
	ServiceCIDRv4 = "10.0.0.0/24"
	ServiceCIDRv6 = "fd00:10::/108"
)

// Defaults and bounds for start and stop. Every wait in this package is
// bounded by one of these or by the caller's context.
const (
	DefaultReadyTimeout = 60 * time.Second
	etcdReadyTimeout    = 30 * time.Second
	defaultNSTimeout    = 30 * time.Second
	stopTimeout         = 10 * time.Second
	pollInterval        = 100 * time.Millisecond
	// Ports are picked free and then handed to the children, so another
	// process can take one in between; starting again with new ports is
	// the cure. Three attempts make a persistent clash visible.
	maxStartAttempts = 3
	logTailBytes     = 3000
)

// Options configure Start.
type Options struct {
	// Dir holds certificates, kubeconfigs, the etcd data directory and one
	// log file per process (logs/*.log). If empty, Start creates a
	// temporary directory and Stop removes it; set Dir to keep the logs.
	Dir string
	// DualStack gives the apiserver an IPv4 and an IPv6 service range
	// (ServiceCIDRv4, ServiceCIDRv6) instead of IPv4 only.
	DualStack bool
	// ReadyTimeout bounds the wait for the apiserver's /readyz.
	// Zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Controllers, if not empty, also runs kube-controller-manager with
	// --controllers set to this list, e.g. {"endpointslice"} for real
	// EndpointSlices or {"serviceaccount"} for default ServiceAccounts in
	// new namespaces. Empty means no controller manager.
	Controllers []string
	// APIServerArgs are appended to the kube-apiserver flags, e.g. feature
	// gates; a later flag overrides an earlier one.
	APIServerArgs []string
}

// ControlPlane is a running etcd and kube-apiserver. Its methods are safe for
// concurrent use.
type ControlPlane struct {
	opts     Options
	dir      string
	ownDir   bool // Start created dir, so Stop removes it
	toolsDir string

	ca        *keyPair
	caFile    string
	etcdURL   string
	port      int
	host      string
	adminKC   string
	admin     *rest.Config
	readyTook time.Duration

	etcd, apiserver, kcm *process.Process
	// apiserverArgs are the flags of the running apiserver, for
	// StartAPIServer; procMu guards them and apiserver once started.
	apiserverArgs []string
	procMu        sync.Mutex

	kcMu     sync.Mutex // serializes kubeconfig file writes
	stopOnce sync.Once
	stopErr  error
}

// Start starts etcd and kube-apiserver and returns once the apiserver is
// ready and the default namespace exists. ctx bounds the start only; the
// processes run until Stop. On any error, whatever was started is stopped.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, retErr error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	toolsDir, err := ToolsDir()
	if err != nil {
		return nil, err
	}
	need := []string{EtcdBinary, APIServerBinary, KubectlBinary}
	if len(opts.Controllers) > 0 {
		need = append(need, ControllerManagerBinary)
	}
	if err := checkTools(toolsDir, need...); err != nil {
		return nil, err
	}

	cp := &ControlPlane{opts: opts, dir: opts.Dir, toolsDir: toolsDir}
	if cp.dir == "" {
		if cp.dir, err = os.MkdirTemp("", "controlplane-"); err != nil {
			return nil, err
		}
		cp.ownDir = true
	} else if cp.dir, err = filepath.Abs(cp.dir); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = cp.Stop()
		}
	}()
	for _, d := range []string{"pki", "logs", "kubeconfigs"} {
		if err := os.MkdirAll(filepath.Join(cp.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := cp.writePKI(); err != nil {
		return nil, fmt.Errorf("control plane: certificates: %w", err)
	}

	begin := time.Now()
	for attempt := 1; ; attempt++ {
		err := cp.startProcesses(ctx)
		if err == nil {
			break
		}
		cp.stopProcesses()
		if !errors.Is(err, errPortInUse) || attempt == maxStartAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
	cp.readyTook = time.Since(begin)

	if err := cp.waitDefaultNamespace(ctx); err != nil {
		return nil, err
	}
	if len(opts.Controllers) > 0 {
		if err := cp.startControllerManager(ctx); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// errPortInUse marks a start that failed only because a picked port was
// taken in the meantime.
var errPortInUse = errors.New("port already in use")

func (cp *ControlPlane) pki(name string) string { return filepath.Join(cp.dir, "pki", name) }
func (cp *ControlPlane) logPath(name string) string {
	return filepath.Join(cp.dir, "logs", name+".log")
}

func (cp *ControlPlane) writePKI() error {
	ca, err := newCA("baremetal-test-ca")
	if err != nil {
		return err
	}
	cp.ca = ca
	cp.caFile = cp.pki("ca.crt")
	if err := ca.write(cp.caFile, cp.pki("ca.key")); err != nil {
		return err
	}
	// The in-cluster names and the first service IPs too, so a client that
	// reaches the apiserver under its in-cluster name still verifies it.
	serving, err := ca.issue("kube-apiserver", nil, x509.ExtKeyUsageServerAuth,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1"), net.ParseIP("fd00:10::1")})
	if err != nil {
		return err
	}
	if err := serving.write(cp.pki("apiserver.crt"), cp.pki("apiserver.key")); err != nil {
		return err
	}
	return writeServiceAccountKeys(cp.pki("sa.key"), cp.pki("sa.pub"))
}

// startProcesses runs one attempt: free ports, etcd, apiserver, /readyz.
func (cp *ControlPlane) startProcesses(ctx context.Context) error {
	ports, err := FreePorts(3)
	if err != nil {
		return err
	}
	clientPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	cp.etcd, cp.apiserver = nil, nil
	cp.etcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	cp.port = apiPort
	cp.host = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	// A fresh data dir per attempt: a half-initialised one from a failed
	// attempt would remember the old peer URL.
	dataDir := filepath.Join(cp.dir, "etcd-data")
	if err := os.RemoveAll(dataDir); err != nil {
		return err
	}

	// The children must outlive ctx, which only bounds the start.
	procCtx := context.WithoutCancel(ctx)

	etcdLogOff := fileSize(cp.logPath(EtcdBinary))
	cp.etcd, err = process.Start(procCtx, process.Spec{
		Name: EtcdBinary,
		Path: filepath.Join(cp.toolsDir, EtcdBinary),
		Args: []string{
			"--name=default",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + cp.etcdURL,
			"--advertise-client-urls=" + cp.etcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL,
			// Test data need not survive a power cut; fsync is most of
			// etcd's latency on a virtual disk.
			"--unsafe-no-fsync",
		},
		LogPath: cp.logPath(EtcdBinary),
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	httpc := &http.Client{Timeout: 2 * time.Second}
	defer httpc.CloseIdleConnections()
	err = waitFor(ctx, etcdReadyTimeout, cp.etcd, etcdLogOff, "etcd /health", func(ctx context.Context) error {
		body, err := get(ctx, httpc, cp.etcdURL+"/health")
		if err == nil && !strings.Contains(body, `"health":"true"`) {
			err = fmt.Errorf("unhealthy: %s", body)
		}
		return err
	})
	if err != nil {
		return err
	}

	serviceRange := ServiceCIDRv4
	if cp.opts.DualStack {
		serviceRange += "," + ServiceCIDRv6
	}
	args := []string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + cp.pki("apiserver.crt"),
		"--tls-private-key-file=" + cp.pki("apiserver.key"),
		"--client-ca-file=" + cp.caFile,
		"--service-account-key-file=" + cp.pki("sa.pub"),
		"--service-account-signing-key-file=" + cp.pki("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + serviceRange,
		// Required with a loopback advertise address: the default
		// reconciler refuses to publish 127.0.0.1 as the kubernetes
		// Service endpoint and the apiserver does not start.
		"--endpoint-reconciler-type=none",
	}
	args = append(args, cp.opts.APIServerArgs...)
	cp.apiserverArgs = args
	apiLogOff := fileSize(cp.logPath(APIServerBinary))
	cp.apiserver, err = process.Start(procCtx, process.Spec{
		Name:    APIServerBinary,
		Path:    filepath.Join(cp.toolsDir, APIServerBinary),
		Args:    args,
		LogPath: cp.logPath(APIServerBinary),
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}

	if err := cp.writeAdmin(); err != nil {
		return err
	}
	tlsc, err := rest.TransportFor(cp.admin)
	if err != nil {
		return err
	}
	apic := &http.Client{Transport: tlsc, Timeout: 2 * time.Second}
	defer apic.CloseIdleConnections()
	return waitFor(ctx, cp.opts.ReadyTimeout, cp.apiserver, apiLogOff, "kube-apiserver /readyz", func(ctx context.Context) error {
		body, err := get(ctx, apic, cp.host+"/readyz")
		if err == nil && strings.TrimSpace(body) != "ok" {
			err = fmt.Errorf("not ready: %s", body)
		}
		return err
	})
}

// writeAdmin issues the system:masters client certificate and writes the
// admin kubeconfig for the current port.
func (cp *ControlPlane) writeAdmin() error {
	cfg, err := cp.ConfigFor("admin", "system:masters")
	if err != nil {
		return err
	}
	cp.admin = cfg
	path := filepath.Join(cp.dir, "kubeconfigs", "admin.kubeconfig")
	if err := cp.writeKubeconfig(path, "admin", cfg); err != nil {
		return err
	}
	cp.adminKC = path
	return nil
}

// waitDefaultNamespace waits until the apiserver's system namespaces exist
// and makes sure the default ServiceAccount in "default" exists: without a
// controller manager nobody else creates it, and the ServiceAccount
// admission plugin rejects pods that refer to a missing one.
func (cp *ControlPlane) waitDefaultNamespace(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return err
	}
	return waitFor(ctx, defaultNSTimeout, cp.apiserver, -1, "namespace default", func(ctx context.Context) error {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
			return err
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: metav1.NamespaceDefault}}
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Create(ctx, sa, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
		return err
	})
}

func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	var err error
	cp.kcm, err = process.Start(context.WithoutCancel(ctx), process.Spec{
		Name: ControllerManagerBinary,
		Path: filepath.Join(cp.toolsDir, ControllerManagerBinary),
		Args: []string{
			"--kubeconfig=" + cp.adminKC,
			"--controllers=" + strings.Join(cp.opts.Controllers, ","),
			"--leader-elect=false",
			// No serving port: nothing scrapes it, and it would be one
			// more port to pick.
			"--secure-port=0",
			"--service-account-private-key-file=" + cp.pki("sa.key"),
			"--root-ca-file=" + cp.caFile,
		},
		LogPath: cp.logPath(ControllerManagerBinary),
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	// It has no health endpoint without a port; bad flags make it exit at
	// once, so a short look catches them.
	select {
	case <-cp.kcm.Exited():
		return fmt.Errorf("control plane: %s exited at start (%v); log %s:\n%s",
			ControllerManagerBinary, cp.kcm.Err(), cp.kcm.LogPath(), cp.kcm.LogTail(logTailBytes))
	case <-time.After(500 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitFor polls check every pollInterval until it returns nil, proc exits,
// ctx ends or timeout passes. logOff >= 0 is where proc's log for this
// attempt begins; a port clash found there turns the error into
// errPortInUse.
func waitFor(parent context.Context, timeout time.Duration, proc *process.Process, logOff int64, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	start := time.Now()
	var last error
	for {
		select {
		case <-proc.Exited():
			err := fmt.Errorf("control plane: %s exited while waiting for %s (%v); log %s:\n%s",
				proc.Name(), what, proc.Err(), proc.LogPath(), proc.LogTail(logTailBytes))
			if logOff >= 0 && strings.Contains(process.ReadFileFrom(proc.LogPath(), logOff), "address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		default:
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				// The caller gave up (or was interrupted); the log
				// would only show a healthy start in progress.
				return fmt.Errorf("control plane: waiting for %s: %w", what, parent.Err())
			}
			return fmt.Errorf("control plane: %s not reached after %v: %v; log %s:\n%s",
				what, time.Since(start).Round(time.Millisecond), last, proc.LogPath(), proc.LogTail(logTailBytes))
		case <-time.After(pollInterval):
		}
	}
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// FreePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago. All listeners are open at once so the kernel cannot hand out the
// same port twice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Stop stops the controller manager, the apiserver and etcd, in that order,
// and waits until each has been reaped. It is idempotent and safe to call
// concurrently; later calls return the first call's result. If Start
// created the directory, Stop removes it.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		cp.stopErr = cp.stopProcesses()
		if cp.ownDir {
			if err := os.RemoveAll(cp.dir); err != nil {
				cp.stopErr = errors.Join(cp.stopErr, err)
			}
		}
	})
	return cp.stopErr
}

// stopProcesses stops whatever runs; the apiserver goes before etcd so it
// does not spend its last seconds retrying a vanished backend.
func (cp *ControlPlane) stopProcesses() error {
	var errs []error
	for _, p := range []*process.Process{cp.kcm, cp.APIServer(), cp.etcd} {
		if p != nil {
			errs = append(errs, p.Stop(stopTimeout))
		}
	}
	return errors.Join(errs...)
}

// Host returns the apiserver URL, https://127.0.0.1:<port>.
func (cp *ControlPlane) Host() string { return cp.host }

// Port returns the apiserver's secure port.
func (cp *ControlPlane) Port() int { return cp.port }

// EtcdURL returns etcd's client URL.
func (cp *ControlPlane) EtcdURL() string { return cp.etcdURL }

// Dir returns the directory holding certificates, kubeconfigs and logs.
func (cp *ControlPlane) Dir() string { return cp.dir }

// LogDir returns the directory with one log file per process.
func (cp *ControlPlane) LogDir() string { return filepath.Join(cp.dir, "logs") }

// CAFile returns the path of the CA certificate that signed the apiserver's
// serving certificate and that the apiserver trusts for client certificates.
func (cp *ControlPlane) CAFile() string { return cp.caFile }

// ReadyAfter returns how long Start waited from launching the processes
// until /readyz answered ok (including any retried attempts).
func (cp *ControlPlane) ReadyAfter() time.Duration { return cp.readyTook }

// AdminKubeconfig returns the path of a kubeconfig for user "admin" in group
// system:masters, which bypasses RBAC.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.adminKC }

// AdminConfig returns a fresh copy of the admin client configuration, for
// the caller to modify freely.
func (cp *ControlPlane) AdminConfig() *rest.Config { return rest.CopyConfig(cp.admin) }

// ToolsDir returns the directory the binaries were run from.
func (cp *ControlPlane) ToolsDir() string { return cp.toolsDir }

// EtcdPath returns the path of the etcd binary.
func (cp *ControlPlane) EtcdPath() string { return filepath.Join(cp.toolsDir, EtcdBinary) }

// APIServerPath returns the path of the kube-apiserver binary.
func (cp *ControlPlane) APIServerPath() string { return filepath.Join(cp.toolsDir, APIServerBinary) }

// ControllerManagerPath returns the path of the kube-controller-manager
// binary, which may be absent unless Options.Controllers was set.
func (cp *ControlPlane) ControllerManagerPath() string {
	return filepath.Join(cp.toolsDir, ControllerManagerBinary)
}

// KubectlPath returns the path of the kubectl binary.
func (cp *ControlPlane) KubectlPath() string { return filepath.Join(cp.toolsDir, KubectlBinary) }

// Etcd returns the etcd process, for tests that inspect or disturb it.
func (cp *ControlPlane) Etcd() *process.Process { return cp.etcd }

// APIServer returns the kube-apiserver process, for tests that inspect or
// disturb it.
func (cp *ControlPlane) APIServer() *process.Process {
	cp.procMu.Lock()
	defer cp.procMu.Unlock()
	return cp.apiserver
}

// ControllerManager returns the kube-controller-manager process, or nil if
// Options.Controllers was empty.
func (cp *ControlPlane) ControllerManager() *process.Process { return cp.kcm }
