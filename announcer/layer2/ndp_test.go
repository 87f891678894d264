package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

var (
	vip6     = netip.MustParseAddr("2001:db8:1::200")
	client6  = netip.MustParseAddr("2001:db8:1::100")
	clientLL = netip.MustParseAddr("fe80::64")
)

const ourIndex = 7

func nsBytes(t testing.TB, target netip.Addr, opts ...ndp.Option) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sourceLLA(mac net.HardwareAddr) ndp.Option {
	return &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
}

func snm(t testing.TB, ip netip.Addr) netip.Addr {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestNDPReply(t *testing.T) {
	announced := set("2001:db8:1::200", "203.0.113.200")
	good := func() nsRequest {
		return nsRequest{msg: nsBytes(t, vip6, sourceLLA(clientMAC)), src: client6, dst: snm(t, vip6), hopLimit: 255, ifIndex: ourIndex}
	}
	mod := func(f func(*nsRequest)) nsRequest {
		r := good()
		f(&r)
		return r
	}
	withByte := func(i int, b byte) nsRequest {
		return mod(func(r *nsRequest) { r.msg = bytes.Clone(r.msg); r.msg[i] = b })
	}
	tests := []struct {
		name      string
		req       nsRequest
		wantDst   netip.Addr // invalid: no answer
		solicited bool
	}{
		{name: "multicast solicitation for an announced IP", req: good(), wantDst: client6, solicited: true},
		{name: "unicast solicitation (reachability check)", req: mod(func(r *nsRequest) { r.dst = vip6 }), wantDst: client6, solicited: true},
		{name: "from a link-local source", req: mod(func(r *nsRequest) { r.src = clientLL }), wantDst: clientLL, solicited: true},
		{name: "without source link-layer option", req: mod(func(r *nsRequest) { r.msg = nsBytes(t, vip6) }), wantDst: client6, solicited: true},
		{name: "interface unknown", req: mod(func(r *nsRequest) { r.ifIndex = 0 }), wantDst: client6, solicited: true},
		{name: "duplicate address detection: to all nodes", req: mod(func(r *nsRequest) { r.src = netip.IPv6Unspecified(); r.msg = nsBytes(t, vip6) }), wantDst: allNodes},
		{name: "DAD with a source link-layer option is invalid", req: mod(func(r *nsRequest) { r.src = netip.IPv6Unspecified() })},
		{name: "DAD not to the solicited-node group is invalid", req: mod(func(r *nsRequest) { r.src = netip.IPv6Unspecified(); r.msg = nsBytes(t, vip6); r.dst = vip6 })},
		{name: "other interface", req: mod(func(r *nsRequest) { r.ifIndex = ourIndex + 1 })},
		{name: "hop limit 254 (routed, so off-link)", req: mod(func(r *nsRequest) { r.hopLimit = 254 })},
		{name: "hop limit unknown", req: mod(func(r *nsRequest) { r.hopLimit = -1 })},
		{name: "IP not announced", req: mod(func(r *nsRequest) { r.msg = nsBytes(t, netip.MustParseAddr("2001:db8:1::201"), sourceLLA(clientMAC)) })},
		{name: "a node's address", req: mod(func(r *nsRequest) { r.msg = nsBytes(t, netip.MustParseAddr("2001:db8:1::11"), sourceLLA(clientMAC)) })},
		{name: "multicast target", req: mod(func(r *nsRequest) { r.msg = nsBytes(t, netip.MustParseAddr("ff02::1"), sourceLLA(clientMAC)) })},
		{name: "multicast source", req: mod(func(r *nsRequest) { r.src = allNodes })},
		{name: "IPv4 source", req: mod(func(r *nsRequest) { r.src = clientIP })},
		{name: "code not zero", req: withByte(1, 1)},
		{name: "neighbor advertisement, not solicitation", req: withByte(0, 136)},
		{name: "echo request", req: withByte(0, 128)},
		{name: "truncated before the target", req: mod(func(r *nsRequest) { r.msg = r.msg[:20] })},
		{name: "truncated option", req: mod(func(r *nsRequest) { r.msg = r.msg[:len(r.msg)-1] })},
		{name: "option of length zero", req: withByte(25, 0)},
		{name: "empty", req: mod(func(r *nsRequest) { r.msg = nil })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ndpReply(tt.req, ourIndex, ourMAC, announced)
			if !tt.wantDst.IsValid() {
				if got != nil {
					t.Fatalf("answered %+v to %s", got.msg, got.dst)
				}
				return
			}
			if got == nil {
				t.Fatal("no answer")
			}
			if got.dst != tt.wantDst {
				t.Errorf("sent to %s, want %s", got.dst, tt.wantDst)
			}
			checkNA(t, got.msg, vip6, tt.solicited)
		})
	}
}

func checkNA(t *testing.T, na *ndp.NeighborAdvertisement, target netip.Addr, solicited bool) {
	t.Helper()
	if na.TargetAddress != target || !na.Override || na.Router || na.Solicited != solicited {
		t.Errorf("NA %+v, want target %s, override, not router, solicited=%v", na, target, solicited)
	}
	if len(na.Options) != 1 {
		t.Fatalf("NA options %v, want only the target link-layer address", na.Options)
	}
	lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
	if !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, ourMAC) {
		t.Errorf("NA option %+v, want target link-layer address %s", na.Options[0], ourMAC)
	}
	// It must also marshal: a reply that cannot be sent is no reply.
	if _, err := ndp.MarshalMessage(na); err != nil {
		t.Errorf("NA does not marshal: %v", err)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	checkNA(t, unsolicitedNA(vip6, ourMAC), vip6, false)
}
