package lab

import (
	"context"
	"fmt"
	"net"
	"strings"
)

// AddPort gives the host a second interface named name, plugged into the
// same switch on a port named "<host>-<name>", and returns its MAC:
// 02:00:00:01:0h:tu for host number htu, eth0's MAC with a 1 in the
// fourth byte. It has no address: it is a data interface on which an
// announcer answers ARP for VIPs (a pool's interfaces), while gossip and
// the API stay on eth0, so a test can break one without the other. The
// port goes with the lab.
func (l *Lab) AddPort(ctx context.Context, h *Host, name string) (net.HardwareAddr, error) {
	port := h.name + "-" + name
	if len(port) > 15 || len(name) > 15 || strings.ContainsAny(name, "/ \t") {
		return nil, fmt.Errorf("lab: port name %q too long or invalid", port)
	}
	mac := h.MAC()
	mac[3] = 1
	if _, err := runIP(ctx, "", fmt.Sprintf("link add %s netns %s address %s type veth peer name %s netns %s", name, h.ns, mac, port, l.swNS)); err != nil {
		return nil, fmt.Errorf("%s: adding %s: %w", h.name, name, err)
	}
	if _, err := runIP(ctx, l.swNS, "link set "+port+" master "+BridgeName, "link set "+port+" up"); err != nil {
		return nil, fmt.Errorf("%s: plugging %s: %w", h.name, name, err)
	}
	if _, err := runIP(ctx, h.ns, "link set "+name+" up"); err != nil {
		return nil, fmt.Errorf("%s: %s up: %w", h.name, name, err)
	}
	return mac, nil
}
