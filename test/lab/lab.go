package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// Lab addresses. All are documentation ranges (RFC 5737, RFC 3849) and exist
// only inside the lab's namespaces.
var (
	// LANv4 and LANv6 are the switch's segment; every host has one address
	// of each (IPv6 only with Options.IPv6).
	LANv4 = netip.MustParsePrefix("203.0.113.0/24")
	LANv6 = netip.MustParsePrefix("2001:db8:1::/64")
	// BehindRouterV4 is the link behind the router, to the far router
	// (Options.FarRouter): the router is RouterFarSide on its eth1, the far
	// router FarRouterAddr.
	BehindRouterV4 = netip.MustParsePrefix("192.0.2.0/24")
	RouterFarSide  = netip.MustParseAddr("192.0.2.1")
	FarRouterAddr  = netip.MustParseAddr("192.0.2.2")
)

// Address pools, written as the cloud-config writes them (a range or a
// CIDR), ready to go into a test's configuration.
const (
	// L2PoolV4 and L2PoolV6 are the layer-2 LoadBalancer pools, on the LAN.
	L2PoolV4 = "203.0.113.200-203.0.113.210"
	L2PoolV6 = "2001:db8:1::200-2001:db8:1::20f"
	// BGPPoolV4 and BGPPoolV6 are routed by the router, never on the LAN.
	BGPPoolV4 = "198.51.100.0/24"
	BGPPoolV6 = "2001:db8:2::/120"
)

// Host numbers: the last byte of a host's IPv4 address, also written as the
// last group of its IPv6 address and the last digits of its MAC.
const (
	RouterHostNumber = 1
	FirstNodeNumber  = 11 // node1; nodeN is 10+N
	ClientHostNumber = 100
	maxNodes         = 80 // node80 is .90, below the client's .100
)

// Bounds. Every wait in this package is bounded by one of these or by the
// caller's context.
const (
	defaultCmdTimeout = 30 * time.Second
	newBudget         = time.Minute
	processStopGrace  = 3 * time.Second
	killWait          = 5 * time.Second
	pollInterval      = 20 * time.Millisecond
)

// BridgeName is the bridge inside the switch namespace.
const BridgeName = "br0"

// Options configure New.
type Options struct {
	// Prefix starts every namespace name: "<Prefix>-node1". The default is
	// "t<pid>" for the first lab of a process and "t<pid>_<n>" after that,
	// so parallel test binaries and labs never collide.
	Prefix string
	// Nodes is the number of nodes, node1..nodeN at .11, .12, ...
	// Zero means 3.
	Nodes int
	// Router adds the router at .1 (IP forwarding on, ECMP hashing on L4).
	Router bool
	// FarRouter, with Router, adds a second router, "far", behind the
	// router on a link of its own (BehindRouterV4), so that a BGP peer
	// there is two hops from the nodes (ebgp-multihop). Every node routes
	// BehindRouterV4 via the router, and far routes LANv4 back.
	FarRouter bool
	// Client adds the client at .100.
	Client bool
	// IPv6 also gives every host an address in LANv6.
	IPv6 bool
	// Dir holds the logs of processes started in the lab. If empty, New
	// creates a temporary directory and Close removes it.
	Dir string
	// Logf, if set, receives a line per setup and teardown step worth
	// knowing when a run goes wrong (sweeps, slow kills).
	Logf func(format string, args ...any)
}

// Lab is a running lab network. Its methods are safe for concurrent use.
type Lab struct {
	opts    Options
	prefix  string
	dir     string
	ownDir  bool
	runDir  string
	swNS    string
	router  *Host
	far     *Host
	client  *Host
	nodes   []*Host
	hosts   []*Host
	watch   *watchdog
	started time.Time

	mu       sync.Mutex
	created  []string // namespaces this lab created, in order
	closers  []io.Closer
	procs    []*process.Process
	closed   bool
	closeErr error
}

var labSeq atomic.Int64

// live holds every lab between New and Close. Besides bookkeeping it keeps
// a lab reachable: otherwise a program that keeps only namespace names
// (a demo waiting for Ctrl-C) would let the GC finalize the watchdog's
// pipe, and the watchdog would tear the lab down under it.
var live sync.Map // *Lab -> struct{}

// Supported reports why the lab cannot run on this machine, or nil: it needs
// root (namespaces, veths, raw sockets) and the ip command.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("the network lab needs root (network namespaces, veth pairs, raw sockets)")
	}
	if _, err := process.LookIP(); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("the kernel has no network namespaces: %w", err)
	}
	return nil
}

// New builds the lab described by opts: the switch namespace with its
// bridge, then one namespace per host, each with eth0 plugged into the
// bridge. It first sweeps leftovers of dead runs (see Sweep). ctx bounds
// the setup only. On error everything New created is removed again.
func New(ctx context.Context, opts Options) (_ *Lab, retErr error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 0 || opts.Nodes > maxNodes {
		return nil, fmt.Errorf("lab: Nodes = %d, want 1..%d", opts.Nodes, maxNodes)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, newBudget)
		defer cancel()
	}
	n := labSeq.Add(1)
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "t" + strconv.Itoa(os.Getpid())
		if n > 1 {
			prefix += "_" + strconv.FormatInt(n, 10)
		}
	}
	if strings.ContainsAny(prefix, "/ \t\n") || len(prefix) > 64 {
		return nil, fmt.Errorf("lab: invalid Prefix %q", prefix)
	}

	if err := Sweep(""); err != nil {
		opts.Logf("lab: sweeping leftovers: %v", err)
	}

	l := &Lab{opts: opts, prefix: prefix, swNS: prefix + "-sw", started: time.Now()}
	var err error
	if l.runDir, err = claimRunDir(prefix); err != nil {
		return nil, err
	}
	live.Store(l, struct{}{})
	defer func() {
		if retErr != nil {
			if err := l.Close(); err != nil {
				retErr = fmt.Errorf("%w (and cleaning up: %v)", retErr, err)
			}
		}
	}()
	if opts.Dir == "" {
		if l.dir, err = os.MkdirTemp("", "lab-"+prefix+"-"); err != nil {
			return nil, err
		}
		l.ownDir = true
	} else {
		if l.dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return nil, err
		}
	}
	// The watchdog must run before the first namespace exists: from then
	// on, a death of this process at any point is cleaned up.
	if l.watch, err = startWatchdog(l.runDir); err != nil {
		return nil, err
	}

	if opts.Router {
		l.router = l.newHost("router", RouterHostNumber, opts.IPv6)
		l.hosts = append(l.hosts, l.router)
	}
	if opts.FarRouter {
		if !opts.Router {
			return nil, errors.New("lab: FarRouter needs Router")
		}
		// Not one of hosts: it is not on the switch.
		l.far = &Host{lab: l, name: "far", ns: l.prefix + "-far", ipv4: FarRouterAddr, mac: hostMAC(2)}
	}
	for i := 1; i <= opts.Nodes; i++ {
		h := l.newHost("node"+strconv.Itoa(i), FirstNodeNumber+i-1, opts.IPv6)
		l.nodes = append(l.nodes, h)
		l.hosts = append(l.hosts, h)
	}
	if opts.Client {
		l.client = l.newHost("client", ClientHostNumber, opts.IPv6)
		l.hosts = append(l.hosts, l.client)
	}

	if err := l.build(ctx); err != nil {
		return nil, fmt.Errorf("lab %s: %w", prefix, err)
	}
	opts.Logf("lab %s: %d hosts up in %v", prefix, len(l.hosts), time.Since(l.started).Round(time.Millisecond))
	return l, nil
}

func (l *Lab) newHost(name string, number int, v6 bool) *Host {
	h := &Host{lab: l, name: name, ns: l.prefix + "-" + name, number: number}
	h.ipv4 = netip.AddrFrom4([4]byte{203, 0, 113, byte(number)})
	if v6 {
		// The last group spells the same digits as the IPv4 byte: ::11 for .11.
		h.ipv6 = netip.MustParseAddr("2001:db8:1::" + strconv.Itoa(number))
	}
	h.mac = hostMAC(number)
	return h
}

// hostMAC returns 02:00:00:00:0h:tu for host number htu, so the MAC's last
// digits read like the IPv4 address: 02:00:00:00:00:11 for .11 and
// 02:00:00:00:01:00 for .100. 02 is a locally administered unicast prefix.
func hostMAC(number int) net.HardwareAddr {
	bcd := func(d int) byte { return byte((d/10)<<4 | d%10) }
	return net.HardwareAddr{0x02, 0, 0, 0, bcd(number / 100), bcd(number % 100)}
}

// build creates the namespaces and wires them, in an order that matters:
// sysctls before eth0, veths created straight into their namespaces.
func (l *Lab) build(ctx context.Context) error {
	// The switch is a pure layer-2 device: no IPv6 on the bridge, so it
	// sends no solicitations or MLD reports of its own into the LAN.
	if err := l.addNS(ctx, l.swNS); err != nil {
		return err
	}
	if err := setSysctls(l.swNS,
		"net.ipv6.conf.all.disable_ipv6", "1",
		"net.ipv6.conf.default.disable_ipv6", "1",
	); err != nil {
		return err
	}
	sw := []string{
		"link set lo up",
		"link add " + BridgeName + " type bridge stp_state 0 mcast_snooping 0",
		"link set " + BridgeName + " up",
	}
	if _, err := runIP(ctx, l.swNS, sw...); err != nil {
		return fmt.Errorf("switch: %w", err)
	}

	var veths []string
	for _, h := range l.hosts {
		if err := l.addNS(ctx, h.ns); err != nil {
			return err
		}
		if err := setSysctls(h.ns, h.sysctls()...); err != nil {
			return err
		}
		veths = append(veths, fmt.Sprintf("link add eth0 netns %s address %s type veth peer name %s netns %s",
			h.ns, h.mac, h.name, l.swNS))
	}
	// Created from the root namespace, but no end ever lives there: the root
	// namespace of a lab machine has an eth0 of its own.
	if _, err := runIP(ctx, "", veths...); err != nil {
		return fmt.Errorf("veths: %w", err)
	}
	var ports []string
	for _, h := range l.hosts {
		ports = append(ports, "link set "+h.name+" master "+BridgeName, "link set "+h.name+" up")
	}
	if _, err := runIP(ctx, l.swNS, ports...); err != nil {
		return fmt.Errorf("switch ports: %w", err)
	}
	for _, h := range l.hosts {
		cmds := []string{"link set lo up", fmt.Sprintf("addr add %s/24 dev eth0", h.ipv4)}
		if h.ipv6.IsValid() {
			cmds = append(cmds, fmt.Sprintf("addr add %s/64 dev eth0 nodad", h.ipv6))
		}
		cmds = append(cmds, "link set eth0 up")
		if _, err := runIP(ctx, h.ns, cmds...); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
	}
	if l.far != nil {
		return l.buildFar(ctx)
	}
	return nil
}

// buildFar wires the far router to the router's eth1 and routes the two
// networks to each other.
func (l *Lab) buildFar(ctx context.Context) error {
	f := l.far
	if err := l.addNS(ctx, f.ns); err != nil {
		return err
	}
	if err := setSysctls(f.ns, f.sysctls()...); err != nil {
		return err
	}
	bits := BehindRouterV4.Bits()
	if _, err := runIP(ctx, "", fmt.Sprintf("link add eth0 netns %s address %s type veth peer name eth1 netns %s", f.ns, f.mac, l.router.ns)); err != nil {
		return fmt.Errorf("far veth: %w", err)
	}
	if _, err := runIP(ctx, l.router.ns, fmt.Sprintf("addr add %s/%d dev eth1", RouterFarSide, bits), "link set eth1 up"); err != nil {
		return fmt.Errorf("router eth1: %w", err)
	}
	if _, err := runIP(ctx, f.ns, "link set lo up", fmt.Sprintf("addr add %s/%d dev eth0", f.ipv4, bits), "link set eth0 up",
		fmt.Sprintf("route add %s via %s", LANv4, RouterFarSide)); err != nil {
		return fmt.Errorf("far: %w", err)
	}
	for _, n := range l.nodes {
		if _, err := runIP(ctx, n.ns, fmt.Sprintf("route add %s via %s", BehindRouterV4, l.router.ipv4)); err != nil {
			return fmt.Errorf("%s: route to the far router: %w", n.name, err)
		}
	}
	return nil
}

// sysctls returns the host's settings as key, value pairs. IPv4 settings of
// a new namespace are copied from the root namespace
// (net.core.devconf_inherit_init_net=0), so everything that matters is set
// explicitly rather than trusted to be the default.
func (h *Host) sysctls() []string {
	kv := []string{
		// Tentative addresses break ndp.Listen and delay reachability.
		"net.ipv6.conf.all.accept_dad", "0",
		"net.ipv6.conf.default.accept_dad", "0",
		// Interface down/up (Unplug/Plug act on the switch side, but a test
		// may bounce eth0 too) must not lose the lab addresses.
		"net.ipv6.conf.all.keep_addr_on_down", "1",
		"net.ipv6.conf.default.keep_addr_on_down", "1",
		"net.ipv4.conf.all.rp_filter", "0",
		"net.ipv4.conf.default.rp_filter", "0",
	}
	switch {
	case h.number == RouterHostNumber:
		kv = append(kv,
			"net.ipv4.ip_forward", "1",
			"net.ipv6.conf.all.forwarding", "1",
			// Spread ECMP routes by L4 hash, so different client
			// connections reach different nodes.
			"net.ipv4.fib_multipath_hash_policy", "1",
			"net.ipv6.fib_multipath_hash_policy", "1",
			"net.ipv4.conf.all.arp_ignore", "0",
			"net.ipv4.conf.all.arp_announce", "0",
		)
	case h.number == ClientHostNumber:
		kv = append(kv,
			"net.ipv4.ip_forward", "0",
			"net.ipv4.conf.all.arp_ignore", "0",
			"net.ipv4.conf.all.arp_announce", "0",
		)
	default: // a node
		kv = append(kv,
			"net.ipv4.ip_forward", "0",
			// Without these the kernel itself answers ARP for a VIP on lo
			// (and uses it as ARP source), which would hide whether the
			// announcer does its job.
			"net.ipv4.conf.all.arp_ignore", "1",
			"net.ipv4.conf.all.arp_announce", "2",
		)
	}
	return kv
}

func (l *Lab) addNS(ctx context.Context, ns string) error {
	if _, err := runCmd(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.created = append(l.created, ns)
	l.mu.Unlock()
	// Recorded before anything runs inside, for the watchdog and Sweep.
	return appendLine(filepath.Join(l.runDir, namespacesFile), ns)
}

// Prefix returns the namespace name prefix of this lab.
func (l *Lab) Prefix() string { return l.prefix }

// Dir returns the directory that holds the logs of processes started in the
// lab.
func (l *Lab) Dir() string { return l.dir }

// SwitchNS returns the name of the switch namespace, which holds BridgeName
// and one port per host, named like the host.
func (l *Lab) SwitchNS() string { return l.swNS }

// Far returns the far router, or nil without Options.FarRouter.
func (l *Lab) Far() *Host { return l.far }

// Router returns the router, or nil without Options.Router.
func (l *Lab) Router() *Host { return l.router }

// Client returns the client, or nil without Options.Client.
func (l *Lab) Client() *Host { return l.client }

// Nodes returns the nodes, node1 first.
func (l *Lab) Nodes() []*Host { return append([]*Host(nil), l.nodes...) }

// Node returns node i (1-based), or nil if there is no such node.
func (l *Lab) Node(i int) *Host {
	if i < 1 || i > len(l.nodes) {
		return nil
	}
	return l.nodes[i-1]
}

// Hosts returns every host: router, nodes, client (those that exist).
func (l *Lab) Hosts() []*Host { return append([]*Host(nil), l.hosts...) }

// Host returns the host with the given name ("router", "node2", "client"),
// or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// Namespaces returns the names of the namespaces the lab created.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.created...)
}

// Unplug sets the host's switch port down, as if its cable were pulled or
// the machine had died: nothing reaches it and nothing it sends arrives,
// while its processes keep running.
func (l *Lab) Unplug(h *Host) error {
	_, err := runIP(context.Background(), l.swNS, "link set "+h.name+" down")
	return err
}

// Plug sets the host's switch port up again. The host is reachable within
// milliseconds, unless a peer started resolving its address while it was
// unplugged: that neighbour entry waits for its next probe, up to 1 s
// (retrans_time); FlushNeighbors on the peer avoids the wait.
func (l *Lab) Plug(h *Host) error {
	_, err := runIP(context.Background(), l.swNS, "link set "+h.name+" up")
	return err
}

// track registers something Close must close. If the lab is already
// closing it is closed at once and an error returned.
func (l *Lab) track(c io.Closer) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return errors.New("lab is closed")
	}
	l.closers = append(l.closers, c)
	l.mu.Unlock()
	return nil
}

func (l *Lab) trackProcess(p *process.Process) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = p.Kill()
		return errors.New("lab is closed")
	}
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return nil
}

// Processes returns the processes started with Host.Start, for their logs.
func (l *Lab) Processes() []*process.Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*process.Process(nil), l.procs...)
}

// Close tears the lab down: it closes the lab's listeners and forwarders,
// stops the processes started with Host.Start, kills every other process
// still inside a lab namespace, deletes the namespaces and removes the
// lab's bookkeeping (and Dir, if New created it). It is idempotent and
// returns the first error of the first call.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.closeErr
	}
	l.closed = true
	closers, procs := l.closers, l.procs
	l.mu.Unlock()

	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	// Stopped in parallel: each may take its grace period.
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(processStopGrace); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()

	l.mu.Lock()
	created := append([]string(nil), l.created...)
	l.mu.Unlock()
	// Hosts first and the switch last, the reverse of creation.
	nsFailed := false
	for i := len(created) - 1; i >= 0; i-- {
		if err := removeNS(created[i], l.opts.Logf); err != nil {
			errs = append(errs, err)
			nsFailed = true
		}
	}
	if l.watch != nil {
		// After a failure the watchdog gets EOF instead of "ok" and makes
		// its own attempt right away.
		if err := l.watch.release(!nsFailed); err != nil {
			errs = append(errs, err)
		}
	}
	// The run directory is the record of what is left; keep it if a
	// namespace could not be removed, so Sweep retries after this process.
	if l.runDir != "" && !nsFailed {
		if err := os.RemoveAll(l.runDir); err != nil {
			errs = append(errs, err)
		}
	}
	if l.ownDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("lab %s: close: %w", l.prefix, err)
	}
	l.mu.Lock()
	l.closeErr = err
	l.mu.Unlock()
	live.Delete(l)
	return err
}

// removeNS kills every process inside ns, waits until none is left, and
// deletes ns. A namespace that is already gone is not an error.
func removeNS(ns string, logf func(string, ...any)) error {
	if !nsExists(ns) {
		return nil
	}
	deadline := time.Now().Add(killWait)
	for first := true; ; first = false {
		pids, err := pidsIn(ns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		if first {
			logf("lab: killing %d process(es) left in %s: %v", len(pids), ns, pids)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns %s: processes %v survive SIGKILL for %v", ns, pids, killWait)
		}
		for _, pid := range pids {
			_ = killPid(pid)
		}
		time.Sleep(pollInterval)
	}
	if _, err := runCmd(context.Background(), "ip", "netns", "del", ns); err != nil && nsExists(ns) {
		return err
	}
	return nil
}

func nsExists(ns string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, ns))
	return err == nil
}
