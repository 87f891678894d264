package ccm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// The identity and lease of the CCM, as deploy/base names them.
const (
	Namespace      = "baremetal-system"
	ServiceAccount = "baremetal-cloud-controller-manager"
	// LeaseName is the cloud-provider default --leader-elect-resource-name,
	// the only lease deploy/base lets the CCM update.
	LeaseName = "cloud-controller-manager"
)

// Bounds of every wait in this package.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	// A picked port can be taken before the CCM binds it; a new port is
	// the cure, and three attempts make a persistent clash visible.
	maxStartAttempts = 3
	logTailBytes     = 4000
)

// DefaultControllers are the controllers deploy/base runs.
const DefaultControllers = "cloud-node,cloud-node-lifecycle,service"

// Options configure one CCM replica.
type Options struct {
	// Name tells replicas of one test apart in log file names. Default "ccm".
	Name string
	// CloudConfig is the text of the --cloud-config file, written as is.
	CloudConfig string
	// LeaderElect runs with --leader-elect=true in namespace
	// baremetal-system; otherwise --leader-elect=false and the controllers
	// start at once.
	LeaderElect bool
	// Args are appended to the flags; for a flag given twice the later
	// value wins, so Args can override any default here.
	Args []string
}

// CCM is one CCM replica. It may be stopped and started again; each start
// gets a fresh secure port. Its methods are safe for concurrent use.
type CCM struct {
	cp         *controlplane.ControlPlane
	opts       Options
	binary     string
	kubeconfig string
	configPath string
	logPath    string

	mu   sync.Mutex
	proc *process.Process
	port int
}

// New prepares a replica without starting it: it applies deploy/base (once
// per control plane), makes sure the binary exists, writes the cloud-config
// into the test's log directory and registers Stop with t.Cleanup.
func New(t testing.TB, cp *controlplane.ControlPlane, opts Options) *CCM {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "ccm"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ApplyDeploy(ctx, cp); err != nil {
		t.Fatal(err)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := cp.KubeconfigForServiceAccount(Namespace, ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	dir := LogDir(t)
	c := &CCM{
		cp:         cp,
		opts:       opts,
		binary:     bin,
		kubeconfig: kc,
		configPath: filepath.Join(dir, opts.Name+"-cloud-config.yaml"),
		logPath:    filepath.Join(dir, opts.Name+".log"),
	}
	if err := os.WriteFile(c.configPath, []byte(opts.CloudConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping %s: %v", opts.Name, err)
		}
	})
	return c
}

// Start starts a replica and waits until it serves /healthz. It fails the
// test, with the log's tail, if the CCM exits or never gets healthy.
func Start(t testing.TB, cp *controlplane.ControlPlane, opts Options) *CCM {
	t.Helper()
	c := New(t, cp, opts)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// args returns the command line for a start on port.
func (c *CCM) args(port int) []string {
	args := []string{
		"--cloud-provider=baremetal",
		"--cloud-config=" + c.configPath,
		"--kubeconfig=" + c.kubeconfig,
		"--authentication-kubeconfig=" + c.kubeconfig,
		"--authorization-kubeconfig=" + c.kubeconfig,
		"--controllers=" + DefaultControllers,
		"--leader-elect=" + strconv.FormatBool(c.opts.LeaderElect),
		"--leader-elect-resource-namespace=" + Namespace,
		"--secure-port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		// V(2) shows every allocation, release and nudge, which is what
		// one needs to read a failed test.
		"--v=2",
	}
	return append(args, c.opts.Args...)
}

// Start starts the replica (again) and waits for /healthz.
func (c *CCM) Start() error {
	var err error
	for attempt := 1; attempt <= maxStartAttempts; attempt++ {
		var off int64
		if st, serr := os.Stat(c.logPath); serr == nil {
			off = st.Size()
		}
		if err = c.startOnce(); err == nil {
			return nil
		}
		if !strings.Contains(process.ReadFileFrom(c.logPath, off), "address already in use") {
			return err
		}
	}
	return err
}

func (c *CCM) startOnce() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && c.proc.Running() {
		return fmt.Errorf("%s is already running (pid %d)", c.opts.Name, c.proc.Pid())
	}
	ports, err := controlplane.FreePorts(1)
	if err != nil {
		return err
	}
	port := ports[0]
	p, err := process.Start(context.Background(), process.Spec{
		Name:    c.opts.Name,
		Path:    c.binary,
		Args:    c.args(port),
		LogPath: c.logPath,
	})
	if err != nil {
		return err
	}
	c.proc, c.port = p, port

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	hc := insecureClient(nil)
	defer hc.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	var last error
	for {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was healthy (%v); log %s:\n%s", c.opts.Name, p.Err(), c.logPath, p.LogTail(logTailBytes))
		default:
		}
		code, body, err := get(ctx, hc, url)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%d %s", code, body)
		}
		last = err
		select {
		case <-ctx.Done():
			_ = p.Kill()
			return fmt.Errorf("%s not healthy after %v: %v; log %s:\n%s", c.opts.Name, readyTimeout, last, c.logPath, p.LogTail(logTailBytes))
		case <-p.Exited():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop asks the replica to exit (SIGTERM, then SIGKILL after a grace
// period) and waits until it is reaped. Stopping a stopped replica is a
// no-op.
func (c *CCM) Stop() error {
	p := c.Process()
	if p == nil {
		return nil
	}
	return p.Stop(stopTimeout)
}

// Kill ends the replica with SIGKILL, as a node failure or the OOM killer
// would: no lease release, no cleanup.
func (c *CCM) Kill() error {
	p := c.Process()
	if p == nil {
		return nil
	}
	return p.Kill()
}

// Process returns the current process, nil before the first start.
func (c *CCM) Process() *process.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// Name returns the replica's name.
func (c *CCM) Name() string { return c.opts.Name }

// Port returns the secure port of the current (or last) start.
func (c *CCM) Port() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.port
}

// WriteCloudConfig replaces the --cloud-config file with text, atomically
// by rename as the kubelet updates a ConfigMap volume, so the running CCM
// sees either the old or the new version, never half of one.
func (c *CCM) WriteCloudConfig(text string) error {
	tmp := c.configPath + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.configPath)
}

// LogPath returns the replica's log file; every start appends to it.
func (c *CCM) LogPath() string { return c.logPath }

// Log returns the whole log.
func (c *CCM) Log() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", c.logPath, err)
	}
	return string(b)
}

// Get requests path on the replica's secure port as the identity in cfg
// (its client certificate; nil for an anonymous request) and returns the
// HTTP status and body. The CCM authenticates the certificate against the
// client CA it reads from the apiserver and asks the apiserver whether the
// user may get that non-resource URL, so this exercises delegated
// authentication and authorization as a Prometheus scrape would.
func (c *CCM) Get(ctx context.Context, cfg *rest.Config, path string) (int, string, error) {
	hc := insecureClient(cfg)
	defer hc.CloseIdleConnections()
	return get(ctx, hc, fmt.Sprintf("https://127.0.0.1:%d%s", c.Port(), path))
}

// Metrics scrapes /metrics as the control plane's admin.
func (c *CCM) Metrics(ctx context.Context) (string, error) {
	code, body, err := c.Get(ctx, c.cp.AdminConfig(), "/metrics")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET /metrics of %s: %d: %s", c.opts.Name, code, strings.TrimSpace(body))
	}
	return body, nil
}

// insecureClient talks TLS to the CCM with cfg's client certificate. The
// CCM's serving certificate is self-signed in memory at start, so there is
// nothing to verify it against; this is loopback in a test.
func insecureClient(cfg *rest.Config) *http.Client {
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // see above
	if cfg != nil && len(cfg.CertData) > 0 {
		if cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData); err == nil {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

func get(ctx context.Context, hc *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	return resp.StatusCode, string(b), err
}

// RunToExit runs a replica that is expected to exit by itself (a bad
// cloud-config) and returns its exit code and log. It fails the test if the
// replica is still running after timeout.
func RunToExit(t testing.TB, cp *controlplane.ControlPlane, opts Options, timeout time.Duration) (int, string) {
	t.Helper()
	c := New(t, cp, opts)
	ports, err := controlplane.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	port := ports[0]
	p, err := process.Start(context.Background(), process.Spec{Name: c.opts.Name, Path: c.binary, Args: c.args(port), LogPath: c.logPath})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.proc, c.port = p, port
	c.mu.Unlock()
	select {
	case <-p.Exited():
	case <-time.After(timeout):
		_ = p.Kill()
		t.Fatalf("%s still running after %v; log %s:\n%s", c.opts.Name, timeout, c.logPath, p.LogTail(logTailBytes))
	}
	return p.ExitCode(), c.Log()
}

// errNotFound is returned by MetricValue for a series that is absent.
var errNotFound = errors.New("metric series not found")
