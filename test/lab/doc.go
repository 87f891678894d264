// Package lab builds a small bare-metal network out of Linux network
// namespaces, for the layer-2 and BGP tests of the announcer and for
// `make demo`. Its order of steps (sysctls before addresses, veths
// created straight into their namespaces) is what makes it reliable, and it
// needs root and iproute2; nothing else (no ping, arping, curl or
// socat: those parts are Go).
//
// # Topology
//
//	                 switch namespace <prefix>-sw: bridge br0
//	                 (stp_state 0, mcast_snooping 0, no IPv6 of its own)
//	   port router    port node1 ... port nodeN    port client
//	        |              |               |            |
//	     router          node1    ...    nodeN        client
//	   203.0.113.1    203.0.113.11    .10+N      203.0.113.100
//	 2001:db8:1::1   2001:db8:1::11  ::<10+N>    2001:db8:1::100
//	02:00:00:00:00:01  ...:00:11                 02:00:00:00:01:00
//
// Every host is a namespace <prefix>-<host> with lo and one veth, eth0,
// whose other end is the switch port named like the host. Both ends are
// created straight into their namespaces, so no lab interface or address
// ever exists in the root namespace (which has an eth0 of its own here).
// Only documentation ranges are used: the LAN 203.0.113.0/24 and
// 2001:db8:1::/64, the layer-2 pool 203.0.113.200–.210 and
// 2001:db8:1::200–20f, the BGP pool 198.51.100.0/24 and 2001:db8:2::/120,
// and 192.0.2.0/24 behind the router, the link to the optional far router
// (Options.FarRouter: a BGP peer two hops from the nodes). Nodes have arp_ignore=1 and
// arp_announce=2, so their kernels do not answer ARP for a VIP on lo; the
// router forwards and hashes ECMP on layer 4. IPv6 DAD is off everywhere.
//
// # Use in a test
//
//	l := lab.NewForTest(t, lab.Options{Router: true, Client: true, IPv6: true})
//	n2 := l.Node(2)
//	n2.AddVIP("203.0.113.200")              // kube-proxy's part
//	n2.ServeHTTP(80)                        // answers "node2\n"
//	l.Client().SetNeighbor("203.0.113.200", n2.MAC()) // until the announcer does ARP
//	body, err := l.Client().HTTPGet(ctx, "http://203.0.113.200/", time.Second)
//
// NewForTest skips the test (with the reason) when not root or without
// the ip command, and closes the lab in t.Cleanup. New and Close are the
// same without the testing package, for `make demo`.
//
// The API in short:
//
//	New(ctx, Options) (*Lab, error); NewForTest(t, Options) *Lab; Supported() error
//	(*Lab) Close() error; Prefix, Dir, SwitchNS, Namespaces, Processes
//	(*Lab) Router, Client *Host; Nodes() []*Host; Node(i) *Host; Hosts; Host(name)
//	(*Lab) Unplug(h), Plug(h) error                   switch port down/up: a crash
//	(*Lab) ForwardAPIServer(h, port) (*Forward, error) 127.0.0.1:port in h -> root 127.0.0.1:port
//	(*Lab) Forward(h, listenAddr, targetAddr) (*Forward, error)
//	(*Lab) StartFRR(ctx, bgpdConf) (*FRR, error); StartFRRConfig(ctx, FRRConfig)
//	(*FRR) VTY(cmds...) (string, error); VTYJSON(cmd, v) error; Stop() error
//	DefaultBGPDConf(password) string
//	(*Host) Name, NS, IPv4, IPv6, MAC, Interface
//	(*Host) Exec(ctx, argv...) (string, error)        ip netns exec NS argv...
//	(*Host) IP(ctx, "route add ...") (string, error)  ip -n NS ...
//	(*Host) Start(ctx, process.Spec) (*process.Process, error)
//	(*Host) Sysctl(key) (string, error); SetSysctl(key, value) error
//	(*Host) Do(fn) error; DialContext(ctx, network, addr); Listen(network, addr)  in-process, in the namespace
//	(*Host) AddVIP(addr), DelVIP(addr) error          /32 or /128 on lo
//	(*Host) ServeHTTP(port) (io.Closer, error)        answers "<host>\n"
//	(*Host) HTTPGet(ctx, url, timeout) (string, error)
//	(*Host) Ping(ctx, ip, timeout) error              ICMP echo, IPv4 or IPv6
//	(*Host) Arping(ctx, ip, wait) ([]net.HardwareAddr, error) every MAC that answers ARP/NDP
//	(*Host) Neighbor(ip) (mac, state string, err error); SetNeighbor, DelNeighbor, FlushNeighbors
//	EnsurePackages(ctx, pkgs...) error; Installed(pkg) bool
//	Sweep(prefix) error
//
// # Namespaces from Go
//
// Sockets and /proc/sys/net follow the namespace of the calling OS thread.
// The lab therefore opens listeners, dialers, raw and packet sockets, and
// writes sysctls, on a locked thread that has joined the host's namespace
// and is moved back before it is unlocked (or left locked to die if that
// fails). A socket keeps its namespace for life, so the rest (Accept,
// Read, Write, HTTP serving) runs on ordinary goroutines. This is how
// ServeHTTP, HTTPGet, Ping, Arping and Forward work without any binary.
//
// One trap for code that uses several namespaces in one process: Go maps
// IPv6 zone names ("fe80::1%eth0") to interface indexes through a single
// process-wide cache, filled from whichever namespace asked last, and every
// lab host has an "eth0" with a different index. Use numeric zones (the
// interface index) in such code, as Arping does for NDP.
//
// # Apiserver from a node
//
// The control plane (package controlplane) listens on the root namespace's
// 127.0.0.1 only. ForwardAPIServer(h, port) listens on 127.0.0.1:port inside
// h and carries every connection to 127.0.0.1:port of the root namespace,
// so a node process can use the admin kubeconfig's https://127.0.0.1:port
// with the same certificate. No packet leaves loopback.
//
// # Teardown
//
// Close closes listeners and forwards, stops the processes started with
// Host.Start (SIGTERM, then SIGKILL), kills every other process in the lab's
// namespaces (the `ip netns pids` rule: same namespace inode), deletes the
// namespaces, and is idempotent. New calls it itself when it fails midway,
// and removes only the namespaces it created.
//
// A test binary can also end without running cleanups: Ctrl-C (SIGINT),
// SIGTERM, `go test -timeout`, a panic, SIGKILL, or os.Exit from another
// package's signal handler such as controlplane.RunMain's. For all of these
// each lab has a watchdog: a small shell process in its own session that
// holds the read end of a pipe whose write end only the test process holds.
// When the test process ends, the kernel closes the pipe, the watchdog reads
// EOF and kills and deletes the lab's namespaces (about 0.4 s). Close
// writes "ok" first, and the watchdog exits without touching anything. So
// no signal handler is needed and none is installed; a TestMain that uses
// controlplane.RunMain needs nothing extra:
//
//	func TestMain(m *testing.M) {
//		os.Exit(controlplane.RunMain(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
//	}
//	func TestFailover(t *testing.T) {
//		l := lab.NewForTest(t, lab.Options{Client: true})
//		...
//	}
//
// Children started with Host.Start die with the test anyway (parent-death
// signal, see package process).
//
// As a last resort, every lab records itself in RunBase/<prefix>/ (owner
// pid and start time, the namespaces it created), and New first calls
// Sweep(""), which removes the namespaces of every recorded lab whose owner
// is dead. A namespace no lab recorded is never touched.
//
// # Naming
//
// The default prefix is "t<pid>" ("t<pid>_<n>" for the n-th lab of one
// process), so namespaces read t4242-node1 and parallel test binaries never
// collide. A fixed Options.Prefix (say "demo") is refused while a live
// process owns it.
//
// # FRR
//
// StartFRR runs zebra and bgpd (and bfdd on request) in the router's
// namespace as children of the test, in the foreground with their log in
// Dir/logs, with `--vty_socket RUN -z RUN/zserv.api -P 0` and no watchfrr.
// RUN is RunBase/<prefix>/frr, owned by frr:frr: the daemons drop
// privileges to frr and could not enter a test's private TempDir. The frr
// package is installed with EnsurePackages when missing (about a minute).
// DefaultBGPDConf is the recipe's router configuration: passive, a listen
// range for the LAN, timers 1 3, maximum-paths 8, no
// ebgp-requires-policy.
//
// # Facts measured here
//
//   - New takes 0.1–0.45 s for 5 hosts, Close 0.1–0.3 s; FRR answers
//     0.7–1.4 s after StartFRR.
//   - A VIP on a node's lo gets no ARP answer from the node's kernel
//     (arp_ignore=1) and no NDP answer either (Linux answers neighbour
//     solicitations only for addresses on the receiving interface).
//   - Plug: a host is reachable again within milliseconds, except when a
//     neighbour resolution started while it was unplugged: that entry
//     stays INCOMPLETE until the next probe, up to retrans_time (1 s).
//     FlushNeighbors on the client avoids the wait.
package lab
