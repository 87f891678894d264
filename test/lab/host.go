package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// Host is one machine of the lab: a network namespace with lo and eth0,
// eth0 plugged into the switch on a port named like the host.
type Host struct {
	lab    *Lab
	name   string
	ns     string
	number int
	ipv4   netip.Addr
	ipv6   netip.Addr
	mac    net.HardwareAddr
}

// Name returns the host name: "router", "node1", ..., "client". It is also
// the name of the host's switch port.
func (h *Host) Name() string { return h.name }

// NS returns the name of the host's network namespace, for `ip netns exec`
// and process.Spec.Netns.
func (h *Host) NS() string { return h.ns }

// IPv4 returns the host's LAN address.
func (h *Host) IPv4() netip.Addr { return h.ipv4 }

// IPv6 returns the host's LAN IPv6 address, or the zero Addr without
// Options.IPv6.
func (h *Host) IPv6() netip.Addr { return h.ipv6 }

// MAC returns the MAC address of the host's eth0.
func (h *Host) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), h.mac...) }

// Interface returns the name of the host's LAN interface, "eth0".
func (h *Host) Interface() string { return "eth0" }

func (h *Host) String() string { return h.name }

// Exec runs argv inside the host's namespace (`ip netns exec NS argv...`)
// and returns its combined output. Without a deadline on ctx it is bounded
// by 30 s. It is meant for short commands; use Start for daemons.
func (h *Host) Exec(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("lab: Exec without a command")
	}
	return runCmd(ctx, "ip", append([]string{"netns", "exec", h.ns}, argv...)...)
}

// IP runs one ip command inside the host's namespace, e.g.
// h.IP(ctx, "route add 198.51.100.0/24 via 203.0.113.1").
func (h *Host) IP(ctx context.Context, cmd string) (string, error) {
	return runIP(ctx, h.ns, cmd)
}

// Start starts a long-running child process inside the host's namespace
// with package process. Spec.Netns is set to the host's namespace; an empty
// Spec.LogPath becomes <Dir>/logs/<host>-<name>.log. The lab stops the
// process in Close. As with process.Start, canceling ctx kills the child.
func (h *Host) Start(ctx context.Context, spec process.Spec) (*process.Process, error) {
	spec.Netns = h.ns
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	if spec.LogPath == "" {
		spec.LogPath = filepath.Join(h.lab.dir, "logs", h.name+"-"+spec.Name+".log")
	}
	p, err := process.Start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	if err := h.lab.trackProcess(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Sysctl reads a sysctl such as "net.ipv4.conf.eth0.arp_accept" inside the
// host's namespace.
func (h *Host) Sysctl(key string) (string, error) { return readSysctl(h.ns, key) }

// SetSysctl writes a sysctl inside the host's namespace.
func (h *Host) SetSysctl(key, value string) error { return setSysctls(h.ns, key, value) }

// AddVIP puts a service VIP on the host's lo as a /32 or /128, kube-proxy's
// part on a real node: the node accepts traffic for the VIP once something
// (the announcer, a static neighbour entry, a route) brings it there.
// Adding a VIP twice is not an error.
func (h *Host) AddVIP(addr string) error {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("lab: VIP: %w", err)
	}
	cmd := fmt.Sprintf("addr replace %s/%d dev lo", a, a.BitLen())
	if a.Is6() {
		cmd += " nodad"
	}
	_, err = runIP(context.Background(), h.ns, cmd)
	return err
}

// DelVIP removes a VIP from the host's lo. Removing an absent VIP is not an
// error.
func (h *Host) DelVIP(addr string) error {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("lab: VIP: %w", err)
	}
	out, err := runIP(context.Background(), h.ns, fmt.Sprintf("addr del %s/%d dev lo", a, a.BitLen()))
	if err != nil && (strings.Contains(strings.ToLower(out), "address not found") ||
		strings.Contains(out, "Cannot assign requested address")) {
		return nil
	}
	return err
}

// neighEntry is one line of `ip -j neigh show`.
type neighEntry struct {
	Dst    string   `json:"dst"`
	Dev    string   `json:"dev"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// Neighbor returns the MAC and state (REACHABLE, STALE, PERMANENT, FAILED,
// ...) of ip in the host's neighbour table on eth0, or "", "" if there is
// no entry. It reads the kernel's ARP or NDP cache, that is, what the host
// believes right now.
func (h *Host) Neighbor(ip string) (mac, state string, err error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", "", fmt.Errorf("lab: neighbour: %w", err)
	}
	out, err := runCmd(context.Background(), "ip", "-j", "-n", h.ns, "neigh", "show", "to", a.String(), "dev", "eth0")
	if err != nil {
		return "", "", err
	}
	var entries []neighEntry
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			return "", "", fmt.Errorf("lab: parsing neighbours %q: %w", out, err)
		}
	}
	for _, e := range entries {
		if e.Dst == a.String() {
			return e.LLAddr, strings.Join(e.State, ","), nil
		}
	}
	return "", "", nil
}

// SetNeighbor adds a permanent neighbour entry ip -> mac on eth0, which
// makes the host send traffic for ip to mac without asking.
func (h *Host) SetNeighbor(ip string, mac net.HardwareAddr) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("lab: neighbour: %w", err)
	}
	_, err = runIP(context.Background(), h.ns, fmt.Sprintf("neigh replace %s lladdr %s dev eth0 nud permanent", a, mac))
	return err
}

// DelNeighbor removes the neighbour entry for ip; an absent entry is not
// an error.
func (h *Host) DelNeighbor(ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("lab: neighbour: %w", err)
	}
	mac, _, err := h.Neighbor(ip)
	if err != nil || mac == "" {
		return err
	}
	_, err = runIP(context.Background(), h.ns, fmt.Sprintf("neigh del %s dev eth0", a))
	return err
}

// FlushNeighbors empties the host's neighbour table on eth0, IPv4 and
// IPv6, permanent entries included, so the next packet to any neighbour
// starts a fresh ARP or NDP resolution.
func (h *Host) FlushNeighbors() error {
	_, err := runIP(context.Background(), h.ns, "neigh flush dev eth0 nud all")
	return err
}

// Do runs fn on an OS thread that has joined the host's namespace, for
// in-process code that must create its sockets there (a listener, a raw
// ARP socket, a netlink handle, a net.InterfaceByName lookup). Sockets
// created by fn stay in the namespace and may be used from any goroutine
// afterwards; goroutines started by fn do not inherit the namespace.
func (h *Host) Do(fn func() error) error { return inNetns(h.ns, fn) }

// DialContext connects from inside the host's namespace. It fits
// net.Dialer-shaped hooks such as http.Transport.DialContext or
// rest.Config.Dial, to run a client "on" a host within the test process.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, h.ns, network, addr)
}

// Listen opens a listener inside the host's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	return listenIn(h.ns, network, addr)
}
