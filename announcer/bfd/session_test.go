package bfd

import (
	"testing"
	"time"
)

var fast = Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}

// peerPacket is what a peer with discriminator 99 sends in state st.
func peerPacket(st State, your uint32) Packet {
	return Packet{Version: Version, State: st, DetectMult: 3, Length: PacketLen, MyDiscriminator: 99, YourDiscriminator: your,
		DesiredMinTxInterval: 100000, RequiredMinRxInterval: 100000}
}

// TestSessionStates drives the state machine of RFC 5880 6.8.6 through the
// transitions of its diagram.
func TestSessionStates(t *testing.T) {
	tests := []struct {
		name     string
		from     State // reached first with the usual handshake
		remote   State
		want     State
		diag     Diag
		adminDwn bool
	}{
		{name: "Down hears Down: Init", from: Down, remote: Down, want: Init},
		{name: "Down hears Init: Up", from: Down, remote: Init, want: Up},
		{name: "Down hears Up: stays Down", from: Down, remote: Up, want: Down},
		{name: "Init hears Init: Up", from: Init, remote: Init, want: Up},
		{name: "Init hears Up: Up", from: Init, remote: Up, want: Up},
		{name: "Init hears Down: stays Init", from: Init, remote: Down, want: Init},
		{name: "Up hears Down: Down, neighbor signaled", from: Up, remote: Down, want: Down, diag: DiagNeighborDown},
		{name: "Up hears Up: stays Up", from: Up, remote: Up, want: Up},
		{name: "Up hears AdminDown: Down, not a failure", from: Up, remote: AdminDown, want: Down, diag: DiagNeighborDown, adminDwn: true},
		{name: "Down hears AdminDown: stays Down", from: Down, remote: AdminDown, want: Down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			s := NewSession(fast, 7)
			switch tt.from {
			case Init:
				s.Receive(peerPacket(Down, 0), now)
			case Up:
				s.Receive(peerPacket(Init, 7), now)
			}
			if s.State() != tt.from {
				t.Fatalf("setup: state %v, want %v", s.State(), tt.from)
			}
			your := uint32(7)
			if tt.remote == Down || tt.remote == AdminDown {
				your = 0
			}
			tr, err := s.Receive(peerPacket(tt.remote, your), now)
			if err != nil {
				t.Fatal(err)
			}
			if tr.From != tt.from || tr.To != tt.want || tr.RemoteAdminDown != tt.adminDwn {
				t.Errorf("transition %+v, want %v -> %v (remote admin down %v)", tr, tt.from, tt.want, tt.adminDwn)
			}
			if tt.diag != DiagNone && tr.Diag != tt.diag {
				t.Errorf("diag %v, want %v", tr.Diag, tt.diag)
			}
		})
	}
}

// TestSessionDetection: silence for the detection time takes an Up
// session Down (control detection time expired), and not a moment before.
func TestSessionDetection(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSession(fast, 7)
	s.Receive(peerPacket(Init, 7), now)
	if s.State() != Up {
		t.Fatalf("state %v", s.State())
	}
	if got := s.DetectionTime(); got != 300*time.Millisecond {
		t.Fatalf("detection time %v, want 300ms", got)
	}
	if tr := s.Expire(now.Add(299 * time.Millisecond)); tr.Changed() {
		t.Fatalf("expired early: %+v", tr)
	}
	tr := s.Expire(now.Add(300 * time.Millisecond))
	if tr.To != Down || tr.Diag != DiagControlDetectExpired {
		t.Fatalf("transition %+v, want Down with control detection time expired", tr)
	}
	if s.RemoteDiscriminator() != 0 {
		t.Errorf("remote discriminator %d kept after the detection time", s.RemoteDiscriminator())
	}
	// Down again: a Down packet from the peer starts over.
	if p := s.Packet(); p.State != Down || p.Diag != DiagControlDetectExpired || p.YourDiscriminator != 0 {
		t.Errorf("packet after expiry %+v", p)
	}
	s.Receive(peerPacket(Down, 0), now.Add(time.Second))
	if s.State() != Init {
		t.Errorf("state %v, want Init", s.State())
	}
}

// TestSessionDetectionUsesSlowerEnd: the detection time is the peer's
// multiplier times the slower of our receive and its transmit interval.
func TestSessionDetectionUsesSlowerEnd(t *testing.T) {
	s := NewSession(Config{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}, 7)
	p := peerPacket(Down, 0)
	p.DetectMult = 5
	p.DesiredMinTxInterval = 1000000 // a peer not Up sends at most once a second
	s.Receive(p, time.Unix(0, 0))
	if got := s.DetectionTime(); got != 5*time.Second {
		t.Errorf("detection time %v, want 5s", got)
	}
}

// TestSessionTransmit: slow until Up, then the profile's interval,
// announced by a Poll that the peer's Final ends; a Poll from the peer is
// answered by a Final, never with P and F together.
func TestSessionTransmit(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSession(fast, 7)
	if got := s.TxInterval(); got != SlowTxInterval {
		t.Errorf("interval while Down %v, want %v", got, SlowTxInterval)
	}
	if p := s.Packet(); p.DesiredMinTxInterval != 1000000 || p.RequiredMinRxInterval != 100000 || p.Poll {
		t.Errorf("Down packet %+v", p)
	}
	s.Receive(peerPacket(Init, 7), now)
	if got := s.TxInterval(); got != 100*time.Millisecond {
		t.Errorf("interval when Up %v, want 100ms", got)
	}
	p := s.Packet()
	if !p.Poll || p.DesiredMinTxInterval != 100000 {
		t.Errorf("first Up packet %+v, want a Poll announcing 100ms", p)
	}
	final := peerPacket(Up, 7)
	final.Final = true
	s.Receive(final, now)
	if p := s.Packet(); p.Poll {
		t.Errorf("Poll after the Final: %+v", p)
	}
	poll := peerPacket(Up, 7)
	poll.Poll = true
	s.Receive(poll, now)
	if !s.FinalPending() {
		t.Fatal("no Final due after a Poll")
	}
	if p := s.Packet(); !p.Final || p.Poll {
		t.Errorf("answer %+v, want F without P", p)
	}
	if s.FinalPending() {
		t.Error("Final still due after it was sent")
	}
	// The peer asks for slower packets: we follow.
	slow := peerPacket(Up, 7)
	slow.RequiredMinRxInterval = 500000
	s.Receive(slow, now)
	if got := s.TxInterval(); got != 500*time.Millisecond {
		t.Errorf("interval %v, want the peer's 500ms", got)
	}
	// Back Down: slow again.
	s.Receive(peerPacket(Down, 0), now)
	if got := s.TxInterval(); got != SlowTxInterval {
		t.Errorf("interval after Down %v", got)
	}
}

// TestSessionPassive: a passive session sends nothing until it heard the
// peer, and nothing again once the peer fell silent.
func TestSessionPassive(t *testing.T) {
	now := time.Unix(1000, 0)
	cfg := fast
	cfg.Passive = true
	s := NewSession(cfg, 7)
	if got := s.TxInterval(); got != 0 {
		t.Fatalf("passive session sends before hearing the peer: every %v", got)
	}
	s.Receive(peerPacket(Down, 0), now)
	if s.TxInterval() == 0 || s.State() != Init {
		t.Fatalf("after hearing the peer: interval %v, state %v", s.TxInterval(), s.State())
	}
	s.Expire(now.Add(time.Hour))
	if got := s.TxInterval(); got != 0 {
		t.Errorf("passive session still sends after the peer went silent: every %v", got)
	}
}

// TestSessionDiscards: a packet for another discriminator, or any packet
// while administratively down, changes nothing.
func TestSessionDiscards(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSession(fast, 7)
	if _, err := s.Receive(peerPacket(Init, 8), now); err == nil || s.State() != Down {
		t.Errorf("packet for discriminator 8 accepted: %v, state %v", err, s.State())
	}
	s.SetAdminDown(true)
	if p := s.Packet(); p.State != AdminDown || p.Diag != DiagAdministrativelyDown {
		t.Errorf("admin down packet %+v", p)
	}
	if _, err := s.Receive(peerPacket(Down, 0), now); err == nil || s.State() != AdminDown {
		t.Errorf("packet accepted while admin down: %v, state %v", err, s.State())
	}
	s.SetAdminDown(false)
	if s.State() != Down {
		t.Errorf("state %v after admin up", s.State())
	}
}

// TestSessionDemand: a peer in demand mode, with both ends Up, gets no
// periodic packets.
func TestSessionDemand(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSession(fast, 7)
	s.Receive(peerPacket(Init, 7), now)
	p := peerPacket(Up, 7)
	p.Demand = true
	s.Receive(p, now)
	if got := s.TxInterval(); got != 0 {
		t.Errorf("interval %v to a peer in demand mode", got)
	}
}
