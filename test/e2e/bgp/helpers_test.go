package bgp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// peersConfig peers every node with the router over IPv4 and IPv6, with
// the lab router's timers, so a silent node is dropped within 3 s.
const peersConfig = `peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 3s
  keepalive-time: 1s
- peer-address: 2001:db8:1::1
  peer-asn: 64512
  my-asn: 64513
  hold-time: 3s
  keepalive-time: 1s
`

// poolConfig is the lab's BGP pool, routed by the router, never on the
// LAN.
const poolConfig = `address-pools:
- name: routed
  protocol: bgp
  addresses:
  - ` + lab.BGPPoolV4 + `
  - ` + lab.BGPPoolV6 + `
`

const defaultCloudConfig = peersConfig + poolConfig

// vips are pool addresses every node serves on lo, as kube-proxy would
// for every Service IP.
var vips = []string{"198.51.100.10", "198.51.100.11", "198.51.100.12", "2001:db8:2::10", "2001:db8:2::11"}

// Bounds for the waits: generous for a loaded 2-core machine (a BGP
// session needs 1-2 s, gobgp waits 5 s before redialling after a loss).
// The tests log the actual times.
const (
	settleTimeout = 40 * time.Second
	requestWait   = time.Second
	pollEvery     = 50 * time.Millisecond
)

// options change a testbed.
type options struct {
	// cloudConfig is the announcers' cloud-config; default
	// defaultCloudConfig.
	cloudConfig string
	// bgpd is FRR's bgpd.conf; default lab.DefaultBGPDConf("").
	bgpd string
	// bfdd, when set, starts FRR's bfdd too, with this bfdd.conf.
	bfdd string
	// within bounds the whole test; default five minutes.
	within time.Duration
	// farRouter adds the lab's far router (lab.Options.FarRouter).
	farRouter bool
}

// testbed is one test's cluster: a lab with a router running FRR and three
// nodes, Node objects for them, a namespace for Services, and an announcer
// per node.
type testbed struct {
	*e2e.Cluster
	frr  *lab.FRR
	bgpd string
	bfdd string
	// vty holds open connections to FRR's daemons' vty sockets, by
	// daemon; see show.
	vty map[string]*lab.VTYConn
}

func newTestbed(t testing.TB, opts options) *testbed {
	if opts.cloudConfig == "" {
		opts.cloudConfig = defaultCloudConfig
	}
	if opts.bgpd == "" {
		opts.bgpd = lab.DefaultBGPDConf("")
	}
	tb := &testbed{bgpd: opts.bgpd, bfdd: opts.bfdd, vty: map[string]*lab.VTYConn{}, Cluster: e2e.New(t, e2e.Options{
		Lab:             lab.Options{Router: true, IPv6: true, FarRouter: opts.farRouter},
		CloudConfig:     opts.cloudConfig,
		VIPs:            vips,
		NamespacePrefix: "e2e-bgp-",
		AnnouncerArgs:   []string{"--namespace=" + e2e.SystemNamespace},
		Within:          opts.within,
		SettleTimeout:   settleTimeout,
		PollEvery:       pollEvery,
		LogTail:         8000,
	})}
	var err error
	tb.frr, err = tb.startFRR()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.closeVTY)
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := tb.frr.VTY("show bgp summary"); err == nil {
				t.Logf("--- FRR bgp summary ---\n%s", out)
			}
		}
	})
	return tb
}

// startAll starts an announcer on every node and waits until FRR has an
// established session with each, over both families.
func (tb *testbed) startAll() {
	tb.T.Helper()
	start := time.Now()
	for _, h := range tb.Lab.Nodes() {
		tb.StartAnnouncer(h)
	}
	for _, h := range tb.Lab.Nodes() {
		tb.waitSession(h.IPv4(), true)
		tb.waitSession(h.IPv6(), true)
	}
	tb.T.Logf("6 sessions established %v after starting the announcers", time.Since(start).Round(time.Millisecond))
}

// neighbors returns FRR's session state per neighbor address.
func (tb *testbed) neighbors() map[string]string {
	var out map[string]struct {
		State string `json:"bgpState"`
	}
	if err := tb.showJSON("bgpd", "show bgp neighbors json", &out); err != nil {
		tb.T.Logf("show bgp neighbors: %v", err)
		return nil
	}
	states := map[string]string{}
	for addr, n := range out {
		states[addr] = n.State
	}
	return states
}

// waitSession waits until FRR's session with addr is (or is no longer)
// established.
func (tb *testbed) waitSession(addr netip.Addr, up bool) {
	tb.T.Helper()
	tb.Eventually(fmt.Sprintf("FRR session with %s established=%v", addr, up), func() bool {
		return (tb.neighbors()[addr.String()] == "Established") == up
	})
}

// createService creates a LoadBalancer Service and writes its status IPs,
// as the cloud-controller-manager would.
func (tb *testbed) createService(name string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	tb.T.Helper()
	return tb.CreateService(lbService(name, etp), ips...)
}

// lbService is e2e.LoadBalancer without node ports: the node port range
// (2,768 ports) would not hold the benchmarks' thousands of Services; the
// lab reaches the VIP directly anyway.
func lbService(name string, etp corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	svc := e2e.LoadBalancer(name, etp)
	noNodePorts := false
	svc.Spec.AllocateLoadBalancerNodePorts = &noNodePorts
	return svc
}

// hostPrefix is the /32 or /128 of an IP.
func hostPrefix(ip string) string {
	a := netip.MustParseAddr(ip)
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// bgpPath is one path of a prefix in FRR's BGP table, with the attributes
// the tests look at.
type bgpPath struct {
	Nexthops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
	LocalPref *uint32 `json:"locPrf"`
	LocalPrf2 *uint32 `json:"localpref"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	Multipath bool `json:"multipath"`
}

// localPref is the path's LOCAL_PREF as FRR shows it, 0 if none.
func (p bgpPath) localPref() uint32 {
	switch {
	case p.LocalPref != nil:
		return *p.LocalPref
	case p.LocalPrf2 != nil:
		return *p.LocalPrf2
	}
	return 0
}

// bgpPaths returns FRR's BGP paths for prefix (none if absent).
func (tb *testbed) bgpPaths(prefix string) ([]bgpPath, string) {
	af := "ipv4"
	if strings.Contains(prefix, ":") {
		af = "ipv6"
	}
	out, err := tb.show("bgpd", fmt.Sprintf("show bgp %s unicast %s json", af, prefix))
	if err != nil {
		tb.T.Logf("vtysh: %v", err)
		return nil, out
	}
	var r struct {
		Paths []bgpPath `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		tb.T.Logf("decoding %q: %v", out, err)
	}
	return r.Paths, out
}

// bgpNexthops returns the sorted peers of FRR's BGP paths for prefix.
func (tb *testbed) bgpNexthops(prefix string) []string {
	paths, _ := tb.bgpPaths(prefix)
	var out []string
	for _, p := range paths {
		for _, nh := range p.Nexthops {
			if nh.Scope != "link-local" {
				out = append(out, nh.IP)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ribNexthops returns the sorted next hops of FRR's selected, installed
// route for prefix (zebra's RIB).
func (tb *testbed) ribNexthops(prefix string) []string {
	cmd := "show ip route " + prefix + " json"
	if strings.Contains(prefix, ":") {
		cmd = "show ipv6 route " + prefix + " json"
	}
	var r map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	if err := tb.showJSON("zebra", cmd, &r); err != nil {
		tb.T.Logf("%v", err)
		return nil
	}
	var out []string
	for _, route := range r[prefix] {
		if route.Protocol != "bgp" || !route.Selected || !route.Installed {
			continue
		}
		for _, nh := range route.Nexthops {
			if nh.Active {
				out = append(out, nh.IP)
			}
		}
	}
	slices.Sort(out)
	return out
}

// kernelNexthops returns the sorted gateways of the router's kernel route
// for prefix.
func (tb *testbed) kernelNexthops(prefix string) []string {
	fam := "-4"
	if strings.Contains(prefix, ":") {
		fam = "-6"
	}
	out, err := tb.Lab.Router().Exec(tb.Ctx, "ip", fam, "-j", "route", "show", prefix)
	if err != nil {
		tb.T.Logf("ip route: %v: %s", err, out)
		return nil
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		tb.T.Logf("decoding %q: %v", out, err)
		return nil
	}
	var gws []string
	for _, r := range routes {
		if r.Gateway != "" {
			gws = append(gws, r.Gateway)
		}
		for _, nh := range r.Nexthops {
			gws = append(gws, nh.Gateway)
		}
	}
	slices.Sort(gws)
	return gws
}

// nodeAddrs returns the sorted addresses of the named nodes in ip's
// family: the next hops a route to ip should have.
func (tb *testbed) nodeAddrs(ip string, names ...string) []string {
	v6 := strings.Contains(ip, ":")
	var out []string
	for _, n := range names {
		h := tb.Lab.Host(n)
		if v6 {
			out = append(out, h.IPv6().String())
		} else {
			out = append(out, h.IPv4().String())
		}
	}
	slices.Sort(out)
	return out
}

// waitRoute waits until FRR's BGP table, FRR's RIB and the router's
// kernel all route ip to exactly the named nodes (none: no route), and
// returns how long it took.
func (tb *testbed) waitRoute(ip string, nodes ...string) time.Duration {
	tb.T.Helper()
	start := time.Now()
	prefix := hostPrefix(ip)
	want := tb.nodeAddrs(ip, nodes...)
	var bgp, rib, kernel []string
	tb.Eventuallyf(func() string {
		return fmt.Sprintf("route %s via %v: BGP table %v, RIB %v, kernel %v", prefix, want, bgp, rib, kernel)
	}, func() bool {
		bgp, rib, kernel = tb.bgpNexthops(prefix), tb.ribNexthops(prefix), tb.kernelNexthops(prefix)
		return slices.Equal(bgp, want) && slices.Equal(rib, want) && slices.Equal(kernel, want)
	})
	return time.Since(start)
}

// get asks the VIP from the router and returns the node that answered.
func (tb *testbed) get(ip string) (string, error) {
	body, err := tb.Lab.Router().HTTPGet(tb.Ctx, e2e.URL(ip), requestWait)
	return strings.TrimSpace(body), err
}

// hasMetric says whether the announcer of h exports a sample whose line
// starts with prefix (name and labels) and whose value is not 0.
func (tb *testbed) hasMetric(h *lab.Host, prefix string) bool {
	body, err := tb.Scrape(h, "/metrics", 2*time.Second)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) && !strings.HasSuffix(line, " 0") {
			return true
		}
	}
	return false
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// numCPU is the machine's CPU count, for benchmark headers.
func numCPU() int { return runtime.NumCPU() }

// show runs a command on an FRR daemon over a vty socket connection kept
// open, which answers in about a millisecond where a vtysh process takes
// tens: the waits and benchmarks poll FRR often. A failed connection is
// dropped and dialled again on the next call.
func (tb *testbed) show(daemon, cmd string) (string, error) {
	v := tb.vty[daemon]
	if v == nil {
		var err error
		if v, err = tb.frr.Dial(daemon); err != nil {
			return "", err
		}
		tb.vty[daemon] = v
	}
	out, err := v.Do(tb.Ctx, cmd)
	var status *lab.VTYStatusError
	switch {
	case errors.As(err, &status) && status.Status == 1:
		// A warning, such as zebra's for a route it does not have; the
		// output ("{}") is still the answer.
		return out, nil
	case err != nil && !errors.As(err, &status):
		v.Close()
		delete(tb.vty, daemon)
	}
	return out, err
}

// showJSON is show for a command ending in "json", decoded into out.
func (tb *testbed) showJSON(daemon, cmd string, out any) error {
	text, err := tb.show(daemon, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		return fmt.Errorf("%s %q: decoding %q: %w", daemon, cmd, text, err)
	}
	return nil
}

// closeVTY closes the vty connections.
func (tb *testbed) closeVTY() {
	for d, v := range tb.vty {
		v.Close()
		delete(tb.vty, d)
	}
}

// restartFRR stops FRR and starts it again with the same configuration.
func (tb *testbed) restartFRR() {
	tb.T.Helper()
	tb.closeVTY()
	if err := tb.frr.Stop(); err != nil {
		tb.T.Fatal(err)
	}
	var err error
	if tb.frr, err = tb.startFRR(); err != nil {
		tb.T.Fatal(err)
	}
}

// startFRR starts zebra and bgpd, and bfdd if the testbed has a bfdd.conf.
func (tb *testbed) startFRR() (*lab.FRR, error) {
	return tb.Lab.StartFRRConfig(tb.Ctx, lab.FRRConfig{BGPD: tb.bgpd, BFD: tb.bfdd != "", BFDD: tb.bfdd})
}

// drainsFirst sends SIGTERM to node's announcer and checks that its next
// hop leaves FRR's BGP table for prefix while its session is still
// established: the router drained the node before the session closed. It
// returns how long the withdrawal took.
func (tb *testbed) drainsFirst(node, prefix string) time.Duration {
	tb.T.Helper()
	addr := tb.Lab.Host(node).IPv4().String()
	start := time.Now()
	if err := tb.Announcers[node].Signal(syscall.SIGTERM); err != nil {
		tb.T.Fatal(err)
	}
	// Read the BGP table, then the session: a table without the node while
	// the session is still established means the withdrawal came first.
	var withdrawn time.Duration
	var stateThen string
	tb.Eventually(node+" withdrawn from "+prefix, func() bool {
		if slices.Contains(tb.bgpNexthops(prefix), addr) {
			return false
		}
		withdrawn, stateThen = time.Since(start), tb.neighbors()[addr]
		return true
	})
	if stateThen != "Established" {
		tb.T.Errorf("%s's route went with its session (state %q when the route was gone): no graceful withdrawal", node, stateThen)
	}
	return withdrawn
}
