package bfd

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"k8s.io/klog/v2/ktesting"
)

// waitFor bounds every wait of these tests: generous, as the machine may
// be loaded; no test asserts a time.
const waitFor = 30 * time.Second

var (
	addrA = netip.MustParseAddr("127.0.0.1")
	addrB = netip.MustParseAddr("127.0.0.2")
)

// freePort finds a UDP port free on both loopback addresses.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addrA.AsSlice()})
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addrB.AsSlice(), Port: port})
		if err == nil {
			c2.Close()
			return port
		}
	}
	t.Fatal("no UDP port free on 127.0.0.1 and 127.0.0.2")
	return 0
}

// changes collects a Manager's transitions.
type changes chan Transition

func (c changes) wait(t *testing.T, what string, ok func(Transition) bool) Transition {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case tr := <-c:
			if ok(tr) {
				return tr
			}
		case <-deadline:
			t.Fatalf("no transition %s within %v", what, waitFor)
		}
	}
}

func newManager(t *testing.T, listen netip.Addr, port int) (*Manager, changes) {
	t.Helper()
	ch := make(changes, 64)
	m := NewManager(ManagerConfig{
		Logger: ktesting.NewLogger(t, ktesting.NewConfig()), Listen: []netip.Addr{listen}, Port: port, MultihopPort: port + 1,
		OnChange: func(_ netip.Addr, tr Transition) { ch <- tr },
	})
	t.Cleanup(m.Close)
	return m, ch
}

// TestManagersComeUp: two managers on loopback bring a session Up, and
// removing one end takes the other Down as administratively down, which
// is no failure for BGP.
func TestManagersComeUp(t *testing.T) {
	port := freePort(t)
	a, chA := newManager(t, addrA, port)
	b, chB := newManager(t, addrB, port)
	if err := a.Add(addrB, PeerConfig{Config: fast, Local: addrA}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(addrA, PeerConfig{Config: fast, Local: addrB}); err != nil {
		t.Fatal(err)
	}
	up := func(tr Transition) bool { return tr.To == Up }
	chA.wait(t, "A Up", up)
	chB.wait(t, "B Up", up)
	st, ok := a.Status(addrB)
	if !ok || st.State != Up || st.Received == 0 || st.DetectionTime == 0 {
		t.Errorf("A's status %+v", st)
	}
	// The same configuration again changes nothing.
	if err := a.Add(addrB, PeerConfig{Config: fast, Local: addrA}); err != nil {
		t.Fatal(err)
	}
	b.Remove(addrA)
	tr := chA.wait(t, "A Down", func(tr Transition) bool { return tr.To == Down })
	if !tr.RemoteAdminDown {
		t.Errorf("A's transition %+v: the peer went away administratively", tr)
	}
	if st, _ := a.Status(addrB); st.Flaps != 1 {
		t.Errorf("flaps %d, want 1", st.Flaps)
	}
}

// fakePeer is a hand-driven peer at 127.0.0.2: it receives on the BFD
// port and sends from a port of its own.
type fakePeer struct {
	t    *testing.T
	rx   *net.UDPConn
	tx   *net.UDPConn
	dst  *net.UDPAddr
	pktx *ipv4.Conn
}

func newFakePeer(t *testing.T, port int) *fakePeer {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addrB.AsSlice(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addrB.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close(); tx.Close() })
	f := &fakePeer{t: t, rx: rx, tx: tx, dst: &net.UDPAddr{IP: addrA.AsSlice(), Port: port}, pktx: ipv4.NewConn(tx)}
	f.ttl(255)
	return f
}

func (f *fakePeer) ttl(n int) {
	if err := f.pktx.SetTTL(n); err != nil {
		f.t.Fatal(err)
	}
}

// next returns the next packet from the manager in state st.
func (f *fakePeer) next(st State) Packet {
	f.t.Helper()
	buf := make([]byte, 100)
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		_ = f.rx.SetReadDeadline(deadline)
		n, from, err := f.rx.ReadFromUDP(buf)
		if err != nil {
			f.t.Fatal(err)
		}
		if from.Port < sourcePortMin {
			f.t.Errorf("packet from source port %d, outside 49152-65535", from.Port)
		}
		p, err := Parse(buf[:n])
		if err != nil {
			f.t.Fatal(err)
		}
		if p.State == st {
			return p
		}
	}
	f.t.Fatalf("no packet in state %v within %v", st, waitFor)
	return Packet{}
}

func (f *fakePeer) send(p Packet) {
	if _, err := f.tx.WriteToUDP(p.Marshal(nil), f.dst); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		f.t.Fatal(err)
	}
}

// TestManagerSilentPeer: a peer that falls silent takes the session Down
// after the detection time (control detection time expired) and counts a
// flap; packets with a TTL below 255 are dropped (RFC 5881 GTSM).
func TestManagerSilentPeer(t *testing.T) {
	port := freePort(t)
	peer := newFakePeer(t, port)
	a, ch := newManager(t, addrA, port)
	if err := a.Add(addrB, PeerConfig{Config: fast, Local: addrA}); err != nil {
		t.Fatal(err)
	}
	first := peer.next(Down)
	mine := first.MyDiscriminator

	// From further away than one hop: dropped.
	peer.ttl(64)
	peer.send(peerPacket(Down, 0))
	deadline := time.Now().Add(waitFor)
	for st, _ := a.Status(addrB); st.BadTTL != 64; st, _ = a.Status(addrB) {
		if time.Now().After(deadline) {
			t.Fatalf("packet with TTL 64 not dropped as such: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, _ := a.Status(addrB); st.State != Down || st.Received != 0 {
		t.Fatalf("a packet with TTL 64 was taken: %+v", st)
	}

	peer.ttl(255)
	peer.send(peerPacket(Down, 0))
	ch.wait(t, "Init", func(tr Transition) bool { return tr.To == Init })
	peer.next(Init)
	peer.send(peerPacket(Up, mine))
	ch.wait(t, "Up", func(tr Transition) bool { return tr.To == Up })
	// Silence.
	tr := ch.wait(t, "Down", func(tr Transition) bool { return tr.To == Down })
	if tr.Diag != DiagControlDetectExpired || tr.RemoteAdminDown {
		t.Errorf("transition %+v, want control detection time expired", tr)
	}
	if st, _ := a.Status(addrB); st.Flaps != 1 {
		t.Errorf("status %+v, want 1 flap", st)
	}
	peer.next(Down)
}

// TestManagerPortTaken: a node where another BFD daemon holds the port
// gets an error that says so.
func TestManagerPortTaken(t *testing.T) {
	port := freePort(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addrA.AsSlice(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, _ := newManager(t, addrA, port)
	err = a.Add(addrB, PeerConfig{Config: fast})
	if err == nil {
		t.Fatal("Add succeeded with the port taken")
	}
	t.Log(err)
}
