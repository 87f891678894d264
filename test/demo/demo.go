package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// Binary names in bin/, as `make build` writes them.
const (
	CCMBinaryName       = "baremetal-cloud-controller-manager"
	AnnouncerBinaryName = "baremetal-announcer"
)

// Options configure Run.
type Options struct {
	// Dir holds the files the demo writes (the manifests it applies, the
	// cloud-config) and the logs of every process, under logs/. It must
	// exist or be creatable; Run does not remove it, so the logs can be
	// read afterwards.
	Dir string
	// CCMBinary and AnnouncerBinary default to bin/<name> at the
	// repository root, as `make build` writes them.
	CCMBinary       string
	AnnouncerBinary string
	// LabPrefix names the lab's namespaces (<prefix>-node1, ...). Empty
	// means the lab package's per-process default; the command uses
	// "demo", so a second demo at the same time is refused.
	LabPrefix string
	// Hold, if set, is called after the last step and before teardown
	// with what a user needs to look around (kubeconfig, namespaces);
	// teardown starts when it returns. The command waits for Ctrl-C there.
	Hold func(HoldInfo)
}

// HoldInfo tells a user how to reach the running demo.
type HoldInfo struct {
	ExternalIP string
	Kubeconfig string
	Kubectl    string
	Client     string // the client's network namespace
	Namespaces []string
}

// Report is what the demo saw, for its test to check and its summary line.
type Report struct {
	// InitializedNodes are the nodes the CCM initialized: taint gone,
	// providerID and InternalIP set.
	InitializedNodes []string
	// ExternalIP is the walkthrough Service's EXTERNAL-IP.
	ExternalIP string
	// L2Owner is the node whose MAC the client resolved ExternalIP to and
	// which answered; L2Answers counts the answers of a series of
	// requests by node.
	L2Owner   string
	L2Answers map[string]int

	// BGPSkipped says why the BGP step did not run; empty when it did.
	BGPSkipped string
	// BGPIP is the bgp Service's EXTERNAL-IP, BGPNextHops the router's
	// next hops for it, BGPAnswers the answers through the router by node.
	BGPIP       string
	BGPNextHops []string
	BGPAnswers  map[string]int
	// BGPNextHopsAfterFailover are the router's next hops once the
	// victim's announcer is dead.
	BGPNextHopsAfterFailover []string

	// Failover: the owner's announcer was killed; FailoverTo answered
	// FailoverTook after the kill. FailoverRequests were sent meanwhile,
	// FailoverErrors of them failed.
	FailoverFrom     string
	FailoverTo       string
	FailoverTook     time.Duration
	FailoverRequests int
	FailoverErrors   int

	// Namespaces are the lab's network namespaces, all gone after Run.
	Namespaces []string

	// Total is the whole run, teardown included.
	Total time.Duration
}

// stepCount is the number of numbered steps, teardown included.
const stepCount = 13

// Bounds. Generous: the machine may be a loaded 2-core VM.
const (
	cpStartBudget = 3 * time.Minute
	labBudget     = time.Minute
	settleTimeout = 60 * time.Second
	// requestTimeout bounds a request of a tally; failoverTimeout one
	// sent while the IP moves, short so that a request that went astray
	// costs little of the measured switch.
	requestTimeout  = 2 * time.Second
	failoverTimeout = 500 * time.Millisecond
	pollEvery       = 50 * time.Millisecond
	processStopWait = 10 * time.Second
	failoverWindow  = 30 * time.Second
	tallyRequests   = 30
)

// demo is one run: its output, its resources, its report.
type demo struct {
	opts   Options
	out    *stepWriter
	root   string
	report *Report
	step   int

	cp         *controlplane.ControlPlane
	cs         kubernetes.Interface
	lab        *lab.Lab
	frr        *lab.FRR
	ccm        *process.Process
	announcers map[string]*process.Process
	bgp        bool   // the announcer can do BGP
	bgpWhy     string // why not
	cloudFile  string
}

// Run runs the demo, writing its progress and every command's output to
// out, and returns what it saw. Everything it starts is stopped and
// removed before it returns, whether it succeeded, failed or ctx was
// canceled (Ctrl-C). A canceled ctx aborts the current step.
func Run(ctx context.Context, out io.Writer, opts Options) (rep *Report, err error) {
	begin := time.Now()
	d := &demo{
		opts:       opts,
		out:        &stepWriter{w: out},
		report:     &Report{},
		announcers: map[string]*process.Process{},
	}
	if d.root, err = controlplane.RepoRoot(); err != nil {
		return nil, err
	}
	if d.opts.Dir == "" {
		return nil, errors.New("demo: Options.Dir is empty")
	}
	if d.opts.Dir, err = filepath.Abs(d.opts.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(d.opts.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if d.opts.CCMBinary == "" {
		d.opts.CCMBinary = filepath.Join(d.root, "bin", CCMBinaryName)
	}
	if d.opts.AnnouncerBinary == "" {
		d.opts.AnnouncerBinary = filepath.Join(d.root, "bin", AnnouncerBinaryName)
	}

	defer func() {
		// Teardown runs on every path and must not be cut short by the
		// canceled ctx that may have brought us here.
		terr := d.runStep(context.Background(), stepCount, "Tearing down: announcers, FRR, lab namespaces, CCM, kube-apiserver, etcd", d.teardown)
		err = errors.Join(err, terr)
		d.report.Total = time.Since(begin)
		rep = d.report
		switch {
		case err == nil:
			d.summary()
		case errors.Is(err, context.Canceled):
			fmt.Fprintf(out, "==> Interrupted after %.1fs; everything is torn down\n", d.report.Total.Seconds())
		default:
			fmt.Fprintf(out, "==> FAILED after %.1fs; everything is torn down; logs are in %s/{logs,lab/logs,controlplane/logs}\n", d.report.Total.Seconds(), d.opts.Dir)
		}
	}()

	steps := []struct {
		title string
		fn    func(context.Context) error
	}{
		{"Checking what the demo needs: our binaries, the control-plane tools, FRR and curl", d.prerequisites},
		{"Starting etcd and kube-apiserver " + controlplane.KubernetesVersion + " (TLS, RBAC)", d.startControlPlane},
		{"Building the lab: a switch, a router running FRR, node1-3 and an outside client", d.startLab},
		{"Registering node1-3 as kubeadm's kubelets do (uninitialized taint, provided-node-ip)", d.registerNodes},
		{"Installing deploy/base (namespace, RBAC) and the memberlist Secret", d.installDeploy},
		{"Applying the cloud-config: the walkthrough's pool, in a documentation range", d.applyCloudConfig},
		{"Starting our CCM (--cloud-provider=baremetal) under deploy/base RBAC", d.startCCM},
		{"Starting the announcer on node1-3, as the DaemonSet would", d.startAnnouncers},
		{"Applying the walkthrough's nginx Service", d.applyService},
		{"curl from the outside client over layer 2", d.curlLayer2},
		{"The same through a bgp pool, from behind the router (ECMP)", d.curlBGP},
		{"Killing the announcing node's announcer (SIGKILL)", d.failover},
	}
	for i, s := range steps {
		if err := d.runStep(ctx, i+1, s.title, s.fn); err != nil {
			return nil, err
		}
	}
	if d.opts.Hold != nil {
		d.opts.Hold(HoldInfo{
			ExternalIP: d.report.ExternalIP,
			Kubeconfig: d.cp.AdminKubeconfig(),
			Kubectl:    d.cp.KubectlPath(),
			Client:     d.lab.Client().NS(),
			Namespaces: d.lab.Namespaces(),
		})
	}
	return nil, nil
}

// runStep prints the step's header, runs it and prints how it ended and
// how long it took. Output of the step goes between the two lines.
func (d *demo) runStep(ctx context.Context, n int, title string, fn func(context.Context) error) error {
	d.step = n
	begin := time.Now()
	d.out.begin(fmt.Sprintf("==> [%d/%d] %s ...", n, stepCount, title))
	var err error
	if ctx.Err() != nil {
		err = ctx.Err()
	} else {
		err = fn(ctx)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	took := time.Since(begin).Seconds()
	if err != nil && errors.Is(err, context.Canceled) {
		d.out.end(fmt.Sprintf("interrupted (%.1fs)", took))
		return fmt.Errorf("step %d (%s): %w", n, title, err)
	}
	if err != nil {
		d.out.end(fmt.Sprintf("FAILED (%.1fs): %v", took, err))
		return fmt.Errorf("step %d (%s): %w", n, title, err)
	}
	d.out.end(fmt.Sprintf("ok (%.1fs)", took))
	return nil
}

// summary prints the figures of a successful run.
func (d *demo) summary() {
	r := d.report
	fmt.Fprintf(d.out.w, "==> Done in %.1fs. EXTERNAL-IP %s answered by %s over layer 2; after %s's announcer was killed, %s answered %.2fs later (%d requests, %d failed).\n",
		r.Total.Seconds(), r.ExternalIP, r.L2Owner, r.FailoverFrom, r.FailoverTo, r.FailoverTook.Seconds(), r.FailoverRequests, r.FailoverErrors)
	if r.BGPSkipped == "" {
		var hops []string
		for _, h := range r.BGPNextHops {
			hops = append(hops, d.hostByIP(h))
		}
		fmt.Fprintf(d.out.w, "    BGP: the router spread %s over %s (ECMP): %s; without %s after the kill.\n",
			r.BGPIP, strings.Join(hops, ", "), formatTally(r.BGPAnswers), r.FailoverFrom)
	} else {
		fmt.Fprintf(d.out.w, "    BGP step skipped: %s.\n", r.BGPSkipped)
	}
}

// teardown stops and removes everything the run started, in reverse
// order, and reports every failure.
func (d *demo) teardown(context.Context) error {
	var errs []error
	// The lab first: its Close stops the announcers and FRR (started in
	// its namespaces), closes the web servers and forwards, and deletes
	// the namespaces.
	if d.lab != nil {
		if err := d.lab.Close(); err != nil {
			errs = append(errs, fmt.Errorf("lab: %w", err))
		}
	}
	if d.ccm != nil {
		if err := d.ccm.Stop(processStopWait); err != nil {
			errs = append(errs, fmt.Errorf("CCM: %w", err))
		}
	}
	if d.cp != nil {
		if err := d.cp.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("control plane: %w", err))
		}
	}
	return errors.Join(errs...)
}

// stepWriter puts a step's output between its header and its result: a
// step that prints nothing ends on its header's line ("... ok (1.2s)"),
// one that prints gets its result on a line of its own.
type stepWriter struct {
	mu      sync.Mutex
	w       io.Writer
	pending bool // the header line is still open
	wrote   bool // the step printed something
}

func (s *stepWriter) begin(header string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprint(s.w, header)
	s.pending, s.wrote = true, false
}

func (s *stepWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending {
		if _, err := io.WriteString(s.w, "\n"); err != nil {
			return 0, err
		}
		s.pending = false
	}
	s.wrote = true
	return s.w.Write(p)
}

func (s *stepWriter) end(result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending {
		fmt.Fprintf(s.w, " %s\n", result)
	} else {
		fmt.Fprintf(s.w, "    ... %s\n", result)
	}
	s.pending = false
}

// printf writes a line of the demo's own commentary; command output is
// printed as is with cmdOut.
func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, "# "+format+"\n", args...)
}
