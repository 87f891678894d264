package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// bgpSupport says why the announcer cannot announce bgp pools yet, or ""
// when it can. The demo runs from a checkout and the announcer binary is
// built from it: it speaks BGP once its command (announcer/app) uses the
// BGP speaker package, announcer/bgp.
func bgpSupport(root string) string {
	const pkg = `"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/bgp"`
	files, _ := filepath.Glob(filepath.Join(root, "announcer", "app", "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), pkg) {
			return ""
		}
	}
	return "announcer/app does not use announcer/bgp"
}

// routeEntry is one route of vtysh's `show ip route A.B.C.D/M json`.
type routeEntry struct {
	Protocol string `json:"protocol"`
	Selected bool   `json:"selected"`
	Nexthops []struct {
		IP     string `json:"ip"`
		Active bool   `json:"active"`
		FIB    bool   `json:"fib"`
	} `json:"nexthops"`
}

// bgpNextHops returns the router's installed BGP next hops for ip/32,
// sorted.
func (d *demo) bgpNextHops(ip string) ([]string, error) {
	var routes map[string][]routeEntry
	if err := d.frr.VTYJSON("show ip route "+ip+"/32 json", &routes); err != nil {
		return nil, err
	}
	return installedNextHops(routes[ip+"/32"]), nil
}

// installedNextHops returns the next hops of the selected BGP route that
// are in the kernel's FIB, sorted.
func installedNextHops(routes []routeEntry) []string {
	var out []string
	for _, r := range routes {
		if r.Protocol != "bgp" || !r.Selected {
			continue
		}
		for _, nh := range r.Nexthops {
			if nh.FIB && nh.IP != "" && !slices.Contains(out, nh.IP) {
				out = append(out, nh.IP)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (d *demo) curlBGP(ctx context.Context) error {
	if !d.bgp {
		d.report.BGPSkipped = "announcer has no BGP support yet"
		fmt.Fprintf(d.out, "BGP step skipped: announcer has no BGP support yet (%s)\n", d.bgpWhy)
		return nil
	}
	client := d.lab.Client()
	// The client shares the LAN with the nodes: the router must not send
	// it ICMP redirects to one node, which would bypass ECMP for that IP.
	for _, k := range []string{"net.ipv4.conf.all.send_redirects", "net.ipv4.conf.eth0.send_redirects"} {
		if err := d.lab.Router().SetSysctl(k, "0"); err != nil {
			return err
		}
	}
	// The client's only route to the bgp pool is the router, which
	// learns each Service IP from the nodes.
	if _, err := d.exec(ctx, client, "ip", "route", "add", lab.BGPPoolV4, "via", routerIPv4); err != nil {
		return err
	}
	ip, err := d.applyLBService(ctx, "tutorial-bgp.yaml", "nginx-bgp", nginxBGPService)
	if err != nil {
		return err
	}
	d.report.BGPIP = ip
	var nodeIPs []string
	for _, h := range d.lab.Nodes() {
		nodeIPs = append(nodeIPs, h.IPv4().String())
	}
	var hops []string
	err = d.eventually(ctx, "the router to route "+ip+" to every node", func() (bool, error) {
		hops, _ = d.bgpNextHops(ip)
		return slices.Equal(hops, nodeIPs), nil
	})
	if err != nil {
		return fmt.Errorf("%w (next hops now: %v)", err, hops)
	}
	d.report.BGPNextHops = hops
	var names []string
	for _, h := range hops {
		names = append(names, d.hostByIP(h))
	}
	d.printf("every announcer announces %s/32 to the router, which installs %d equal-cost next hops: %s", ip, len(hops), strings.Join(names, ", "))
	if err := d.vtysh("show bgp ipv4 unicast " + ip); err != nil {
		return err
	}
	if err := d.vtysh("show ip route " + ip); err != nil {
		return err
	}
	if err := d.curl(ctx, ip); err != nil {
		return err
	}
	t := d.tally(ctx, ip, tallyRequests)
	d.report.BGPAnswers = t
	d.printf("%d more requests through the router, each on a new connection (ECMP hashes on ports): %s", tallyRequests, formatTally(t))
	if t["error"] > 0 || len(t) < 2 {
		return fmt.Errorf("bgp: requests to %s answered by %s, want several nodes and no error", ip, formatTally(t))
	}
	return nil
}

// bgpAfterFailover shows the router dropping the dead announcer's route.
func (d *demo) bgpAfterFailover(ctx context.Context, victim string) error {
	ip := d.report.BGPIP
	gone := d.lab.Host(victim).IPv4().String()
	var hops []string
	err := d.eventually(ctx, "the router to drop "+victim+"'s route to "+ip, func() (bool, error) {
		hops, _ = d.bgpNextHops(ip)
		return len(hops) > 0 && !slices.Contains(hops, gone), nil
	})
	if err != nil {
		return fmt.Errorf("%w (next hops now: %v)", err, hops)
	}
	d.report.BGPNextHopsAfterFailover = hops
	d.printf("BGP: %s's session is gone, so the router sends %s to the others only", victim, ip)
	if err := d.vtysh("show ip route " + ip); err != nil {
		return err
	}
	t := d.tally(ctx, ip, tallyRequests)
	d.printf("%d requests to %s through the router: %s", tallyRequests, ip, formatTally(t))
	if t["error"] > 0 || t[victim] > 0 {
		return fmt.Errorf("bgp after failover: %s", formatTally(t))
	}
	return nil
}

// vtysh runs one command on the router's FRR and shows it.
func (d *demo) vtysh(cmd string) error {
	fmt.Fprintf(d.out, "router$ vtysh -c '%s'\n", cmd)
	out, err := d.frr.VTY(cmd)
	// vtysh ends some tables with a blank line; the session reads better
	// without it.
	if out = strings.TrimRight(out, "\n "); out != "" {
		fmt.Fprintln(d.out, out)
	}
	return err
}
