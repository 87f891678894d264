package lab

import (
	"strings"
	"testing"
	"time"
)

// TestFRRSmoke starts FRR in the router's namespace and checks that bgpd
// answers on its vty socket and listens on the router's LAN address.
func TestFRRSmoke(t *testing.T) {
	if testing.Short() && !Installed("frr") {
		t.Skip("-short: FRR is not installed and installing it takes a while")
	}
	ctx := testCtx(t)
	l := NewForTest(t, Options{Router: true, Nodes: 1, IPv6: true})
	begin := time.Now()
	frr, err := l.StartFRR(ctx, DefaultBGPDConf(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FRR answering %v after start", time.Since(begin).Round(time.Millisecond))

	var bgp struct {
		RouterID string `json:"routerId"`
		LocalAS  int    `json:"localAS"`
	}
	if err := frr.VTYJSON("show ip bgp json", &bgp); err != nil {
		t.Fatal(err)
	}
	if bgp.RouterID != "203.0.113.1" || bgp.LocalAS != RouterASN {
		t.Errorf("show ip bgp json: %+v", bgp)
	}
	if out, err := frr.VTY("show bgp ipv6 json"); err != nil || !strings.Contains(out, `"localAS"`) {
		t.Errorf("show bgp ipv6 json: %q, %v", out, err)
	}
	// Configuration through vtysh reaches bgpd.
	if _, err := frr.VTY("configure terminal", "router bgp 64512", "neighbor NODES description lab nodes"); err != nil {
		t.Fatal(err)
	}
	if out, err := frr.VTY("show running-config"); err != nil || !strings.Contains(out, "description lab nodes") {
		t.Errorf("running config lacks the change: %v\n%s", err, out)
	}

	// bgpd lives in the router's namespace: node1 reaches port 179 there
	// over the LAN, for both families.
	for _, addr := range []string{"203.0.113.1:179", "[2001:db8:1::1]:179"} {
		c, err := dialIn(ctx, l.Node(1).NS(), "tcp", addr)
		if err != nil {
			t.Errorf("node1 -> bgpd %s: %v", addr, err)
			continue
		}
		c.Close()
	}

	if err := frr.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range frr.Processes() {
		if p.Running() {
			t.Errorf("%s still running after Stop", p.Name())
		}
	}
	if _, err := frr.VTY("show version"); err == nil {
		t.Error("vtysh still answers after Stop")
	}
}

// TestFRRVTYConn asks bgpd over its vty socket directly, as a poller
// would, and checks that a refused command is an error.
func TestFRRVTYConn(t *testing.T) {
	if testing.Short() && !Installed("frr") {
		t.Skip("-short: FRR is not installed and installing it takes a while")
	}
	ctx := testCtx(t)
	l := NewForTest(t, Options{Router: true, Nodes: 1})
	frr, err := l.StartFRR(ctx, DefaultBGPDConf(""))
	if err != nil {
		t.Fatal(err)
	}
	v, err := frr.Dial("bgpd")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for range 3 { // the connection serves one command after another
		var bgp struct {
			LocalAS int `json:"localAS"`
		}
		begin := time.Now()
		if err := v.DoJSON(ctx, "show ip bgp json", &bgp); err != nil {
			t.Fatal(err)
		}
		if bgp.LocalAS != RouterASN {
			t.Errorf("localAS %d, want %d", bgp.LocalAS, RouterASN)
		}
		t.Logf("show ip bgp json over the vty socket: %v", time.Since(begin))
	}
	if out, err := v.Do(ctx, "show no-such-thing"); err == nil {
		t.Errorf("a bad command succeeded: %q", out)
	}
}
