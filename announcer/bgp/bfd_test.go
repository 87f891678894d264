package bgp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/bfd"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// bfdRouter is the BFD end of the loopback router at 127.0.0.1: it takes
// the Speaker's packets on port and answers from a port of its own, as a
// hand-driven state machine the test can silence.
type bfdRouter struct {
	t      *testing.T
	rx, tx *net.UDPConn
	dst    *net.UDPAddr
}

func newBFDRouter(t *testing.T, port int, speaker netip.Addr) *bfdRouter {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ipv4.NewConn(tx).SetTTL(255); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close(); tx.Close() })
	return &bfdRouter{t: t, rx: rx, tx: tx, dst: net.UDPAddrFromAddrPort(netip.AddrPortFrom(speaker, uint16(port)))}
}

// bringUp answers the Speaker's packets until its session is Up.
func (r *bfdRouter) bringUp() {
	r.t.Helper()
	fsm := bfd.NewSession(bfd.Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}, 4242)
	buf := make([]byte, 100)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_ = r.rx.SetReadDeadline(deadline)
		n, err := r.rx.Read(buf)
		if err != nil {
			r.t.Fatal(err)
		}
		p, err := bfd.Parse(buf[:n])
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := fsm.Receive(p, time.Now()); err != nil {
			r.t.Fatal(err)
		}
		out := fsm.Packet()
		if _, err := r.tx.WriteToUDP(out.Marshal(nil), r.dst); err != nil {
			r.t.Fatal(err)
		}
		if p.State == bfd.Up {
			return
		}
	}
	r.t.Fatal("the Speaker's BFD session did not come up")
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port}); err == nil {
			c2.Close()
			return port
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// TestSpeakerBFD: the BGP session of a peer with a bfd-profile is reset as
// soon as BFD goes down (the router fell silent), not after the hold time,
// and comes back; a router that then answers no BFD is reported as such.
func TestSpeakerBFD(t *testing.T) {
	RegisterMetrics()
	r := newRouter(t)
	port := freeUDPPort(t)
	// The Speaker's BFD listens on 127.0.0.2 so that the router's end can
	// have 127.0.0.1, the BGP peer's address, on the same port.
	speakerAddr := netip.MustParseAddr("127.0.0.2")
	br := newBFDRouter(t, port, speakerAddr)
	logger, _ := ktesting.NewTestContext(t)
	s := New(Config{Logger: logger, RouterID: netip.MustParseAddr("192.0.2.4"), ConnectRetry: time.Second,
		NeighborAnswers: func(netip.Addr) bool { return true },
		BFD:             bfd.ManagerConfig{Listen: []netip.Addr{speakerAddr}, Port: port, MultihopPort: port + 1},
		BFDAnswerWait:   time.Second,
	})
	defer s.Close()

	hundred, three, ttl := uint32(100), uint32(3), uint32(254)
	peer := testPeer(r.port, 64512)
	// The profile is added to a peer whose session is up: BGP stays up.
	if err := s.SetPeers([]config.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the BGP session", func() bool { return r.established(t) })
	peer.BFDProfile = "fast"
	peer.BFD = &config.BFDProfile{Name: "fast", ReceiveInterval: &hundred, TransmitInterval: &hundred, DetectMultiplier: &three, MinimumTTL: &ttl}
	if err := s.SetPeers([]config.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	br.bringUp()
	waitFor(t, "BFD Up at the speaker", func() bool {
		st, ok := s.bfd.Status(netip.MustParseAddr("127.0.0.1"))
		return ok && st.State == bfd.Up
	})
	if !r.established(t) {
		t.Fatal("adding a bfd-profile reset the BGP session")
	}

	down := sessionFailures.WithLabelValues("127.0.0.1", ReasonBFDDown)
	noAnswer := sessionFailures.WithLabelValues("127.0.0.1", ReasonBFDNoAnswer)
	downBefore, _ := testutil.GetCounterMetricValue(down)
	noAnswerBefore, _ := testutil.GetCounterMetricValue(noAnswer)
	// The router falls silent on BFD; its BGP keepalives still flow, so
	// only BFD can take the session down.
	waitFor(t, "the BGP session reset by BFD", func() bool { return !r.established(t) })
	if v, _ := testutil.GetCounterMetricValue(down); v != downBefore+1 {
		t.Errorf("bfd_down failures %v, want %v", v, downBefore+1)
	}
	// GoBGP dials again; the router still sends no BFD, which is reported.
	waitFor(t, "the BGP session back", func() bool { return r.established(t) })
	waitFor(t, "bfd_no_answer reported", func() bool {
		v, _ := testutil.GetCounterMetricValue(noAnswer)
		return v > noAnswerBefore
	})

	// Removing the profile ends BFD and leaves BGP up.
	peer.BFDProfile, peer.BFD = "", nil
	if err := s.SetPeers([]config.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.bfd.Status(netip.MustParseAddr("127.0.0.1")); ok {
		t.Error("BFD session kept after its profile was removed")
	}
	if !r.established(t) {
		t.Error("removing the bfd-profile reset the BGP session")
	}
}
