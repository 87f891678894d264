package bgp

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// router is a GoBGP server on loopback playing the router: AS 64512,
// listening on a free port, accepting 127.0.0.1 as AS 64513.
type router struct {
	srv  *server.BgpServer
	port int
}

func newRouter(t *testing.T) *router {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := server.NewBgpServer()
	go srv.Serve()
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 64512, RouterId: "192.0.2.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 64513},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	return &router{srv: srv, port: port}
}

// routes returns the prefixes the router learnt, with their communities.
func (r *router) routes(t *testing.T) map[string][]uint32 {
	t.Helper()
	out := map[string][]uint32{}
	err := r.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: familyV4}, func(d *api.Destination) {
		for _, p := range d.Paths {
			var comms []uint32
			for _, a := range p.Pattrs {
				var c api.CommunitiesAttribute
				if a.UnmarshalTo(&c) == nil {
					comms = c.Communities
				}
			}
			out[d.Prefix] = comms
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *router) established(t *testing.T) bool {
	t.Helper()
	up := false
	_ = r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		up = p.GetState().GetSessionState() == api.PeerState_ESTABLISHED
	})
	return up
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// peerAddrs returns the addresses of the speaker's peers, sorted.
func peerAddrs(s *Speaker) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.peers))
}

func testPeer(port int, peerASN uint32) config.Peer {
	return config.Peer{
		PeerAddress: "127.0.0.1", Address: netip.MustParseAddr("127.0.0.1"), PeerPort: uint16(port),
		PeerASN: peerASN, MyASN: 64513,
		HoldTime: &config.Duration{Duration: 3 * time.Second}, KeepaliveTime: &config.Duration{Duration: time.Second},
	}
}

// TestSpeaker runs the Speaker against a GoBGP router on loopback: routes
// follow SetAnnouncements, WithdrawAll withdraws them with the session
// still up, and Close ends the session.
func TestSpeaker(t *testing.T) {
	RegisterMetrics()
	r := newRouter(t)
	logger, _ := ktesting.NewTestContext(t)
	s := New(Config{Logger: logger, RouterID: netip.MustParseAddr("192.0.2.2"), ConnectRetry: time.Second,
		NeighborAnswers: func(netip.Addr) bool { return true }})
	defer s.Close()

	ip := netip.MustParseAddr("198.51.100.10")
	adv := config.BGPAdvertisement{ParsedCommunities: []uint32{65000<<16 | 1}}
	if err := s.SetAnnouncements(map[netip.Addr]announcer.Announcement{ip: {Pool: "p", Advertisements: []config.BGPAdvertisement{adv}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPeers([]config.Peer{testPeer(r.port, 64512)}); err != nil {
		t.Fatal(err)
	}
	if got := peerAddrs(s); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("peers %v", got)
	}
	waitFor(t, "the route at the router", func() bool {
		c, ok := r.routes(t)["198.51.100.10/32"]
		return ok && slices.Equal(c, []uint32{65000<<16 | 1})
	})

	// New attributes replace the route; a new IP adds one.
	adv.ParsedCommunities = []uint32{65000<<16 | 2}
	ip2 := netip.MustParseAddr("198.51.100.11")
	if err := s.SetAnnouncements(map[netip.Addr]announcer.Announcement{
		ip:  {Pool: "p", Advertisements: []config.BGPAdvertisement{adv}},
		ip2: {Pool: "p", Advertisements: []config.BGPAdvertisement{{}}},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the changed route and the new one", func() bool {
		rs := r.routes(t)
		c, ok := rs["198.51.100.10/32"]
		_, ok2 := rs["198.51.100.11/32"]
		return ok && ok2 && slices.Equal(c, []uint32{65000<<16 | 2})
	})
	// The collector reads GoBGP's state at scrape time.
	waitFor(t, "session_up 1 and 2 announced prefixes in /metrics", func() bool {
		return gauge(t, "baremetal_announcer_bgp_session_up") == 1 && gauge(t, "baremetal_announcer_bgp_announced_prefixes") == 2
	})
	// Setting the same peers again changes nothing.
	if err := s.SetPeers([]config.Peer{testPeer(r.port, 64512)}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WithdrawAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no route at the router", func() bool { return len(r.routes(t)) == 0 })
	if !r.established(t) {
		t.Error("WithdrawAll closed the session")
	}
	// After WithdrawAll nothing is announced any more.
	if err := s.SetAnnouncements(map[netip.Addr]announcer.Announcement{ip: {Pool: "p", Advertisements: []config.BGPAdvertisement{{}}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	waitFor(t, "the session closed", func() bool { return !r.established(t) })
	if len(r.routes(t)) != 0 {
		t.Errorf("routes after WithdrawAll and Close: %v", r.routes(t))
	}
}

// TestSpeakerExplainsFailures checks that failures reach the counter with
// their reason: a refused connection, and a router whose AS is not
// peer-asn.
func TestSpeakerExplainsFailures(t *testing.T) {
	RegisterMetrics() // component-base metrics count only once registered
	r := newRouter(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	tests := []struct {
		name   string
		peer   config.Peer
		reason string
	}{
		{"refused", testPeer(closedPort, 64512), ReasonConnectionRefused},
		{"router's AS is not peer-asn", testPeer(r.port, 65000), ReasonPeerASNMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			s := New(Config{Logger: logger, RouterID: netip.MustParseAddr("192.0.2.3"), ConnectRetry: time.Second,
				NeighborAnswers: func(netip.Addr) bool { return true }})
			defer s.Close()
			counter := sessionFailures.WithLabelValues("127.0.0.1", tc.reason)
			before, _ := testutil.GetCounterMetricValue(counter)
			if err := s.SetPeers([]config.Peer{tc.peer}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "failure "+tc.reason+" on port "+strconv.Itoa(int(tc.peer.PeerPort)), func() bool {
				v, _ := testutil.GetCounterMetricValue(counter)
				return v > before
			})
		})
	}
}

// gauge returns the value of a metric of peer 127.0.0.1 from the legacy
// registry, -1 if absent.
func gauge(t *testing.T, name string) float64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && l.GetValue() == "127.0.0.1" {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestAPIPeerGracefulRestart: graceful-restart offers RFC 4724 as a
// restarting speaker (R and F bits) for the session's family, with the
// documented restart time; without it nothing is offered.
func TestAPIPeerGracefulRestart(t *testing.T) {
	s := &Speaker{}
	for _, tt := range []struct {
		name string
		addr string
		gr   bool
	}{
		{"off", "203.0.113.1", false},
		{"IPv4", "203.0.113.1", true},
		{"IPv6", "2001:db8:1::1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ap := s.apiPeer(peerConf{address: netip.MustParseAddr(tt.addr), gracefulRestart: tt.gr})
			gr, mp := ap.GetGracefulRestart(), ap.GetAfiSafis()[0].GetMpGracefulRestart()
			if !tt.gr {
				if gr != nil || mp != nil {
					t.Fatalf("graceful restart offered without the option: %v, %v", gr, mp)
				}
				return
			}
			if !gr.GetEnabled() || !gr.GetLocalRestarting() || gr.GetRestartTime() != grRestartTime || !mp.GetConfig().GetEnabled() {
				t.Fatalf("graceful restart = %v, family %v; want enabled, restarting, %d s, for the family", gr, mp, grRestartTime)
			}
		})
	}
}
