package demo

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// get asks ip from the client over a new connection and returns the node
// that answered.
func (d *demo) get(ctx context.Context, ip string, timeout time.Duration) (string, error) {
	body, err := d.lab.Client().HTTPGet(ctx, "http://"+ip+"/", timeout)
	return strings.TrimSpace(body), err
}

// tally sends n requests to ip from the client, each on a new connection,
// and counts the answers by node; failures count under "error".
func (d *demo) tally(ctx context.Context, ip string, n int) map[string]int {
	out := map[string]int{}
	for range n {
		got, err := d.get(ctx, ip, requestTimeout)
		if err != nil {
			got = "error"
		}
		out[got]++
	}
	return out
}

// formatTally writes a tally as "node1 ×10, node2 ×9", nodes in name order.
func formatTally(t map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, t[k]))
	}
	return strings.Join(parts, ", ")
}

// curl runs the real curl in the client's namespace and shows it.
func (d *demo) curl(ctx context.Context, ip string) error {
	args := []string{"curl", "-s", "-m", "5", "http://" + ip + "/"}
	fmt.Fprintf(d.out, "client$ %s\n", strings.Join(args, " "))
	out, err := d.lab.Client().Exec(ctx, args...)
	fmt.Fprint(d.out, out)
	return err
}

// exec runs a command in h's namespace and shows it with h's name as the
// prompt.
func (d *demo) exec(ctx context.Context, h *lab.Host, args ...string) (string, error) {
	fmt.Fprintf(d.out, "%s$ %s\n", h.Name(), shellJoin(args))
	out, err := h.Exec(ctx, args...)
	fmt.Fprint(d.out, out)
	return out, err
}

// hostByMAC names the lab host with mac, or returns mac itself.
func (d *demo) hostByMAC(mac string) string {
	for _, h := range d.lab.Hosts() {
		if h.MAC().String() == mac {
			return h.Name()
		}
	}
	return mac
}

// hostByIP names the lab host with ip, or returns ip itself.
func (d *demo) hostByIP(ip string) string {
	for _, h := range d.lab.Hosts() {
		if h.IPv4().String() == ip {
			return h.Name()
		}
	}
	return ip
}

func (d *demo) curlLayer2(ctx context.Context) error {
	ip := d.report.ExternalIP
	client := d.lab.Client()
	// Wait until the announcers have settled: the client reaches a node
	// and its ARP entry holds that node's MAC.
	var owner string
	err := d.eventually(ctx, ip+" to answer the client", func() (bool, error) {
		got, err := d.get(ctx, ip, requestTimeout)
		if err != nil || got == "" {
			return false, nil
		}
		mac, _, err := client.Neighbor(ip)
		if err != nil || d.hostByMAC(mac) != got {
			return false, nil
		}
		owner = got
		return true, nil
	})
	if err != nil {
		return err
	}
	d.report.L2Owner = owner
	if err := d.curl(ctx, ip); err != nil {
		return err
	}
	if _, err := d.exec(ctx, client, "ip", "neigh", "show", ip); err != nil {
		return err
	}
	macs, err := client.Arping(ctx, ip, 300*time.Millisecond)
	if err != nil {
		return err
	}
	var who []string
	for _, m := range macs {
		who = append(who, d.hostByMAC(m.String()))
	}
	d.printf("ARP who-has %s from the client: answered by %s (%s is %s's MAC)", ip, strings.Join(who, ", "), d.lab.Host(owner).MAC(), owner)
	if !slices.Equal(who, []string{owner}) {
		return fmt.Errorf("%s answered ARP for %s, want only %s", strings.Join(who, ", "), ip, owner)
	}
	t := d.tally(ctx, ip, tallyRequests)
	d.report.L2Answers = t
	d.printf("%d more requests, each on a new connection: %s", tallyRequests, formatTally(t))
	if len(t) != 1 || t[owner] != tallyRequests {
		return fmt.Errorf("layer 2: requests to %s answered by %s, want all by %s", ip, formatTally(t), owner)
	}
	return nil
}

func (d *demo) failover(ctx context.Context) error {
	ip := d.report.ExternalIP
	victim := d.report.L2Owner
	p := d.announcers[victim]
	if p == nil {
		return fmt.Errorf("no announcer runs on %s", victim)
	}
	d.printf("%s answers for %s; the client keeps asking while %s's announcer (pid %d) gets SIGKILL", victim, ip, victim, p.Pid())
	d.report.FailoverFrom = victim

	start := time.Now()
	if err := p.Kill(); err != nil {
		return err
	}
	var (
		requests, errs int
		lastVictim     time.Duration
		next           string
		took           time.Duration
	)
	// Each request has a short timeout, so a request sent to a node that
	// no longer answers costs at most that; the loop ends at the first
	// answer from another node.
	for time.Since(start) < failoverWindow && ctx.Err() == nil {
		got, err := d.get(ctx, ip, failoverTimeout)
		requests++
		switch {
		case err != nil:
			errs++
		case got == victim:
			lastVictim = time.Since(start)
		default:
			next, took = got, time.Since(start)
		}
		if next != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if next == "" {
		return fmt.Errorf("no other node answered %s within %v of the kill (%d requests, %d failed)", ip, failoverWindow, requests, errs)
	}
	d.report.FailoverTo, d.report.FailoverTook = next, took
	d.report.FailoverRequests, d.report.FailoverErrors = requests, errs
	if lastVictim > 0 {
		d.printf("%d requests: %s (its web server still up) answered until %.2fs, %s from %.2fs; %d failed",
			requests, victim, lastVictim.Seconds(), next, took.Seconds(), errs)
	} else {
		d.printf("%d requests: %s answered from %.2fs; %d failed", requests, next, took.Seconds(), errs)
	}
	d.printf("the switch took %.2fs: the other announcers found %s dead (memberlist probes) and %s sent gratuitous ARP", took.Seconds(), victim, next)
	if err := d.curl(ctx, ip); err != nil {
		return err
	}
	if _, err := d.exec(ctx, d.lab.Client(), "ip", "neigh", "show", ip); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "get", "events", "--field-selector", "involvedObject.name=nginx"); err != nil {
		return err
	}
	if d.bgp && d.report.BGPIP != "" {
		return d.bgpAfterFailover(ctx, victim)
	}
	return nil
}
