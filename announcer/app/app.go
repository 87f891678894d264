// Package app assembles the baremetal-announcer command: flags, the
// Kubernetes client, the informers, membership, the layer2 announcer, the
// metrics and health endpoint, and the order in which they start and stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/bgp"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/controller"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/keyring"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/layer2"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/membership"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Component is the name events and the user agent carry.
const Component = "baremetal-announcer"

// Options are the command's flags.
type Options struct {
	Kubeconfig                string
	CloudConfig               string
	NodeName                  string
	NodeIP                    string
	MemberlistBindPort        int
	MemberlistSecret          string
	MemberlistSecretNamespace string
	Namespace                 string
	AnnouncerPodSelector      string
	HandoverDelay             time.Duration
	StickyOwners              bool
	Profiling                 bool
	Logs                      *logsapi.LoggingConfiguration
	// serving is --metrics-bind-address and its certificate
	// (serving.go).
	serving *serving
}

// NewCommand returns the baremetal-announcer command.
func NewCommand() *cobra.Command {
	o := &Options{Logs: logs.NewOptions(), serving: newServing()}
	cmd := &cobra.Command{
		Use:   Component,
		Short: "Makes LoadBalancer IPs reachable: one live node per layer2 IP answers ARP and NDP for it; every eligible node announces bgp IPs to its routers.",
		Long: `baremetal-announcer runs on every node (a DaemonSet with host networking).
It reads the same cloud-config as the baremetal cloud-controller-manager,
watches Services, EndpointSlices and Nodes, and, for every IP that a
LoadBalancer Service got from a layer2 pool, elects one live eligible node
to answer ARP and IPv6 neighbor solicitations for it. Liveness comes from
gossip among the announcers (memberlist), so an IP moves within a second
of its node failing. IPs from bgp pools are announced by every eligible
node to the peers whose node-selectors match it, with an embedded BGP
speaker that dials out (it does not listen on port 179).`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logsapi.ValidateAndApply(o.Logs, nil); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return Run(ctx, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig. Empty means the in-cluster configuration.")
	fs.StringVar(&o.CloudConfig, "cloud-config", "", "Path to the cloud-config file, the same as the cloud-controller-manager's.")
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "Name of the node this runs on. Default $NODE_NAME.")
	fs.StringVar(&o.NodeIP, "node-ip", "", "IP of this node, for memberlist and to find the default interface. Default: the Node's first InternalIP.")
	fs.IntVar(&o.MemberlistBindPort, "memberlist-bind-port", membership.DefaultPort, "TCP and UDP port for memberlist gossip among announcers.")
	fs.StringVar(&o.MemberlistSecret, "memberlist-secret", "", "Name of the Secret whose '"+keyring.PrimaryKey+"' encrypts memberlist gossip, and whose '"+keyring.AcceptedKey+"-*' keys are also accepted (for a key rotation; the Secret is followed live). Empty means no encryption (tests only).")
	fs.StringVar(&o.MemberlistSecretNamespace, "memberlist-secret-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of --memberlist-secret. Default $POD_NAMESPACE.")
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "The announcer's namespace, where it reads the Secrets named by peers' password-secret, its own Pods and the CCM's ConfigMap baremetal-retained-addresses. Default $POD_NAMESPACE.")
	fs.StringVar(&o.AnnouncerPodSelector, "announcer-pod-selector", DefaultAnnouncerPodSelector, "Label selector of the announcer Pods in --namespace: the nodes that have one are the announcers the split-brain guard expects to hear from. Empty means every Node (for announcers not run by the DaemonSet).")
	fs.DurationVar(&o.HandoverDelay, "handover-delay", time.Second, "On SIGTERM, how long to keep answering after leaving the membership, while the new owners announce themselves.")
	fs.BoolVar(&o.StickyOwners, "layer2-sticky-owners", false, "EXPERIMENTAL. Keep a layer2 IP on the node that announces it when its rendezvous winner comes back (no failback, no second move). Every announcer of the cluster must run with the same setting: switch it by restarting all of them, not by a rolling update.")
	fs.BoolVar(&o.Profiling, "profiling", false, "Serve Go profiles on /debug/pprof/ of --metrics-bind-address, to the users authorized for it.")
	o.serving.AddFlags(fs)
	logsapi.AddFlags(o.Logs, fs)
	return cmd
}

// Validate checks the flags.
func (o *Options) Validate() error {
	var errs []error
	if o.CloudConfig == "" {
		errs = append(errs, errors.New("--cloud-config is required"))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name is required (or set NODE_NAME)"))
	}
	if o.NodeIP != "" {
		if _, err := netip.ParseAddr(o.NodeIP); err != nil {
			errs = append(errs, fmt.Errorf("--node-ip: %w", err))
		}
	}
	if o.MemberlistBindPort <= 0 || o.MemberlistBindPort > 65535 {
		errs = append(errs, fmt.Errorf("--memberlist-bind-port %d is not a port", o.MemberlistBindPort))
	}
	if o.MemberlistSecret != "" && o.MemberlistSecretNamespace == "" {
		errs = append(errs, errors.New("--memberlist-secret-namespace is required with --memberlist-secret (or set POD_NAMESPACE)"))
	}
	if o.HandoverDelay < 0 {
		errs = append(errs, errors.New("--handover-delay must not be negative"))
	}
	if o.serving != nil {
		errs = append(errs, o.serving.Validate()...)
	}
	return errors.Join(errs...)
}

// signalContext is cancelled by the first SIGTERM or SIGINT; a second one
// exits at once, for an operator who does not want to wait for handover.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		cancel()
		<-sigs
		os.Exit(1)
	}()
	return ctx, cancel
}

// Run runs the announcer until ctx ends, then hands over and returns.
//
// Start order: the informer caches fill first, so that the first pass
// decides from the whole cluster; then membership starts and joins the
// other nodes, and only then does the node announce. A node that announced
// before knowing its peers would claim every IP at once.
//
// Stop order (SIGTERM): the reconcile loop stops, freezing what is
// announced; the node leaves the membership, which the others see within
// a gossip round and take over, sending gratuitous ARP and unsolicited
// NA; it keeps answering for --handover-delay so that no client is left
// without an answer meanwhile; then it closes its sockets and exits.
func Run(ctx context.Context, o *Options) error {
	d := &daemon{o: o, logger: klog.FromContext(ctx)}
	defer d.close()
	if err := d.build(ctx); err != nil {
		return err
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	d.handover()
	return nil
}

// daemon is what Run builds, starts and hands over. It lives in three
// contexts: Run's, which ends at SIGTERM; informerCtx, which outlives it
// so that the caches stay until the process exits; and the reconcile
// loop's, which handover ends first.
type daemon struct {
	o      *Options
	logger klog.Logger
	// closers run in reverse order when Run returns.
	closers []func()

	cloud     *config.Config
	client    kubernetes.Interface
	running   atomic.Bool
	l2        *layer2.Announcer
	speaker   *bgp.Speaker
	passwords *passwordSource
	claiming  *claimingLayer2
	nodeIP    netip.Addr
	ctrl      *controller.Controller
	ms        *membership.Membership

	informerCtx   context.Context
	stopInformers context.CancelFunc
	stopRun       context.CancelFunc
	runDone       chan struct{}
}

func (d *daemon) deferClose(f func()) { d.closers = append(d.closers, f) }

func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// build reads the cloud-config, connects to the API and builds every
// part, wired together: the metrics and health endpoint (which says not
// running until start is done), the event recorder, the layer2 announcer,
// the BGP speaker and the controller. Nothing is announced yet.
func (d *daemon) build(ctx context.Context) error {
	o, logger := d.o, d.logger
	cloud, err := config.Load(o.CloudConfig)
	if err != nil {
		return err
	}
	for _, w := range cloud.Warnings {
		logger.Info("Warning in --cloud-config", "warning", w)
	}
	d.cloud = cloud
	restCfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	restCfg.UserAgent = Component + "/" + o.NodeName
	// Reads come from informers; the budget is for events and the
	// announcement conditions on Services.
	restCfg.QPS, restCfg.Burst = 20, 40
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client: %w", err)
	}
	d.client = client

	controller.RegisterMetrics()
	layer2.RegisterMetrics()
	membership.RegisterMetrics()
	bgp.RegisterMetrics()
	stopHTTP, err := o.serving.start(logger, client, o.Profiling, &d.running)
	if err != nil {
		return err
	}
	d.deferClose(stopHTTP)

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	d.deferClose(broadcaster.Shutdown)
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component, Host: o.NodeName})

	d.l2 = layer2.New(logger.WithName("layer2"))
	d.deferClose(d.l2.Close)

	// The BGP speaker starts its sessions only once it has peers, so a
	// cluster without BGP runs none.
	d.passwords = newPasswordSource(client, o.Namespace)
	d.speaker = bgp.New(bgp.Config{Logger: logger.WithName("bgp"), Passwords: d.passwords.Password})
	d.deferClose(d.speaker.Close)

	// With sticky owners the layer2 announcer publishes its claims.
	d.claiming = &claimingLayer2{Announcer: d.l2}
	var layer2Announcer announcer.Announcer = d.l2
	if o.StickyOwners {
		layer2Announcer = d.claiming
	}

	if o.NodeIP != "" {
		d.nodeIP = netip.MustParseAddr(o.NodeIP).Unmap()
	}
	d.ctrl = controller.New(controller.Config{
		NodeName: o.NodeName,
		NodeIP:   d.nodeIP,
		Cloud:    cloud,
		Client:   client,
		Announcers: map[config.Protocol]announcer.Announcer{
			config.Layer2: layer2Announcer,
			config.BGP:    d.speaker,
		},
		Recorder: recorder,
		// The node's IP as start finds it, when --node-ip is not set.
		DefaultInterface: func() (string, error) {
			return layer2.InterfaceWithAddr(d.nodeIP)
		},
		Namespace:         o.Namespace,
		AnnouncerSelector: o.AnnouncerPodSelector,
		Health:            d.l2,
		WriteStatus:       true,
	})
	wireGuard(logger, d.l2, d.ctrl)
	d.ctrl.SetStickyOwners(o.StickyOwners)
	return nil
}

// start fills the caches, finds the node's IP, joins the other announcers
// and starts the reconcile loop and the cloud-config watch, in that order
// (see Run).
func (d *daemon) start(ctx context.Context) error {
	o, logger, ctrl := d.o, d.logger, d.ctrl
	// The informers outlive ctx by design: during the handover delay
	// nothing reads them, and they stop when Run returns.
	d.informerCtx, d.stopInformers = context.WithCancel(klog.NewContext(context.Background(), logger))
	d.deferClose(func() { d.stopInformers(); ctrl.Shutdown() })
	go func() {
		<-ctx.Done()
		// Abort a cache sync that is still waiting.
		if !d.running.Load() {
			d.stopInformers()
		}
	}()
	logger.Info("Waiting for the Service, Node and EndpointSlice caches")
	if err := ctrl.Start(d.informerCtx); err != nil {
		return err
	}
	if err := d.passwords.Start(d.informerCtx, d.cloud, ctrl.Trigger); err != nil {
		return err
	}

	if !d.nodeIP.IsValid() {
		ip, err := waitForNodeIP(ctx, ctrl)
		if err != nil {
			return err
		}
		d.nodeIP = ip
	}
	d.speaker.SetDefaultRouterID(routerID(ctrl, d.nodeIP))
	if err := d.join(ctx); err != nil {
		return err
	}

	runCtx, stopRun := context.WithCancel(klog.NewContext(context.Background(), logger))
	d.stopRun, d.runDone = stopRun, make(chan struct{})
	go func() {
		defer close(d.runDone)
		ctrl.Run(runCtx, d.ms)
	}()
	go watchConfig(runCtx, o.CloudConfig, func(cfg *config.Config) error {
		if err := d.passwords.Start(d.informerCtx, cfg, ctrl.Trigger); err != nil {
			return err
		}
		ctrl.SetCloud(cfg)
		return nil
	})
	d.running.Store(true)
	logger.Info("Announcer running", "node", o.NodeName, "nodeIP", d.nodeIP)
	return nil
}

// join starts the membership on the node's IP, with the gossip keys when
// --memberlist-secret is set, and joins the other nodes.
func (d *daemon) join(ctx context.Context) error {
	o, logger := d.o, d.logger
	keys, err := readKeys(ctx, d.client, o.MemberlistSecretNamespace, o.MemberlistSecret)
	if err != nil {
		return err
	}
	ms, err := membership.Start(membership.Config{
		NodeName: o.NodeName,
		BindAddr: d.nodeIP,
		BindPort: o.MemberlistBindPort,
		Keys:     keys,
		Meta:     initialMeta(),
		Logger:   logger.WithName("membership"),
	})
	if err != nil {
		return err
	}
	d.ms = ms
	d.deferClose(func() { _ = ms.Shutdown() })
	d.claiming.members.Store(ms)
	if keys != nil {
		if err := followKeys(d.informerCtx, d.client, o.MemberlistSecretNamespace, o.MemberlistSecret, ms); err != nil {
			return err
		}
	}
	peers := d.ctrl.PeerIPs(d.nodeIP)
	ms.SetPeers(peers)
	n, err := ms.Join(peers)
	switch {
	case n > 0:
		logger.Info("Joined the announcers", "reached", n, "peers", len(peers), "members", ms.Members())
	case len(peers) > 0:
		// The first announcer of a cluster, or all others are down.
		logger.Info("No other announcer reachable yet; starting alone", "peers", len(peers), "err", err)
	}
	return nil
}

// handover stops the reconcile loop, withdraws the BGP routes and leaves
// the membership, then keeps answering for --handover-delay (see Run).
func (d *daemon) handover() {
	logger := d.logger
	logger.Info("Stopping: handing over to the other announcers", "delay", d.o.HandoverDelay)
	d.stopRun()
	<-d.runDone
	// Routers drain the node while its sessions are still up: withdraw
	// every BGP route first, and close the sessions only when the
	// announcer exits, after the handover delay.
	if err := d.speaker.WithdrawAll(context.Background()); err != nil {
		logger.Error(err, "Withdrawing BGP routes")
	}
	d.l2.Quiesce()
	if err := d.ms.Leave(d.o.HandoverDelay); err != nil {
		logger.Error(err, "Leaving the membership")
	}
	time.Sleep(d.o.HandoverDelay)
	logger.Info("Stopped")
}

// restConfig loads --kubeconfig, or the in-cluster configuration.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading --kubeconfig: %w", err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
	}
	return cfg, nil
}

// pollInterval paces the waits for the Node's IP and the Secret, which a
// fresh cluster may not have yet.
const pollInterval = 2 * time.Second

// waitForNodeIP waits until the Node object has an InternalIP.
func waitForNodeIP(ctx context.Context, ctrl *controller.Controller) (netip.Addr, error) {
	var ip netip.Addr
	var last error
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(context.Context) (bool, error) {
		ip, last = ctrl.LookupNodeIP()
		if last != nil {
			klog.FromContext(ctx).Info("Waiting for the node's IP", "err", last)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return ip, fmt.Errorf("finding the node's IP (set --node-ip to skip): %w", errors.Join(err, last))
	}
	return ip, nil
}
