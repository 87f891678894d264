package bfd

import (
	"errors"
	"fmt"
	"time"
)

// SlowTxInterval is the least interval between packets while a session is
// not Up (RFC 5880 6.8.3: at least one second), which keeps sessions to
// routers that do not answer cheap.
const SlowTxInterval = time.Second

// Config is what one session is asked for: the fields of a bfd-profile.
type Config struct {
	// DesiredMinTx is how often we would like to send once Up
	// (transmit-interval).
	DesiredMinTx time.Duration
	// RequiredMinRx is how often we can take packets (receive-interval).
	RequiredMinRx time.Duration
	// DetectMult is how many intervals without a packet take the
	// session down, as the peer computes it (detect-multiplier).
	DetectMult uint8
	// Passive sessions send nothing until the peer has sent a packet
	// (passive-mode).
	Passive bool
}

// Transition is a change of a session's state.
type Transition struct {
	From, To State
	// Diag says why the session left Up or Init.
	Diag Diag
	// RemoteAdminDown says the peer took its end down on purpose. RFC 5882
	// 3.2: that is no forwarding failure, and the client protocol (BGP)
	// must not be torn down for it.
	RemoteAdminDown bool
}

// Changed says whether the state changed.
func (t Transition) Changed() bool { return t.From != t.To }

// Reasons a received packet is discarded by a session (RFC 5880 6.8.6).
var (
	errWrongDiscriminator = errors.New("bfd: your discriminator is not this session's")
	errAdminDown          = errors.New("bfd: session is administratively down")
)

// Session is the state machine of one BFD session in asynchronous mode
// (RFC 5880 6.2, 6.8). It is pure: it is given packets and the time, and
// says what changed, what to send and until when it may wait. It is not
// safe for concurrent use.
type Session struct {
	cfg   Config
	state State
	diag  Diag

	localDiscr  uint32
	remoteDiscr uint32
	remoteState State

	// desiredTx is bfd.DesiredMinTxInterval: cfg.DesiredMinTx once Up,
	// at least SlowTxInterval before.
	desiredTx        time.Duration
	remoteMinRx      time.Duration // bfd.RemoteMinRxInterval
	remoteMinTx      time.Duration // the peer's Desired Min TX, for the detection time
	remoteDetectMult uint8
	remoteDemand     bool

	// heard says a packet came within the detection time: a passive
	// session sends only then.
	heard bool
	// polling says a Poll Sequence is running (P set until an F comes).
	polling bool
	// final says the next packet answers a Poll (F set).
	final bool
	// detectAt is when the session goes Down without a packet; zero when
	// no packet is awaited.
	detectAt time.Time
}

// NewSession returns a session in state Down with local discriminator
// discr (non-zero, unique on this node).
func NewSession(cfg Config, discr uint32) *Session {
	return &Session{
		cfg: cfg, state: Down, remoteState: Down, localDiscr: discr,
		desiredTx: max(cfg.DesiredMinTx, SlowTxInterval),
		// RFC 5880 6.8.1: one microsecond until the peer says otherwise.
		remoteMinRx: time.Microsecond,
	}
}

// State returns the session state.
func (s *Session) State() State { return s.state }

// LocalDiag is the diagnostic we send: why our session last went down.
func (s *Session) LocalDiag() Diag { return s.diag }

// RemoteState is the state the peer last sent.
func (s *Session) RemoteState() State { return s.remoteState }

// LocalDiscriminator is our discriminator.
func (s *Session) LocalDiscriminator() uint32 { return s.localDiscr }

// RemoteDiscriminator is the peer's, 0 before it is known.
func (s *Session) RemoteDiscriminator() uint32 { return s.remoteDiscr }

// DetectionTime is how long without a packet takes the session down, as
// negotiated: the peer's detect multiplier times the slower of our
// receive interval and its transmit interval (RFC 5880 6.8.4). Zero before
// the peer was heard.
func (s *Session) DetectionTime() time.Duration {
	if s.remoteDetectMult == 0 {
		return 0
	}
	return time.Duration(s.remoteDetectMult) * max(s.cfg.RequiredMinRx, s.remoteMinTx)
}

// DetectDeadline is when Expire takes the session down unless a packet
// comes first; zero when no packet is awaited.
func (s *Session) DetectDeadline() time.Time { return s.detectAt }

// Receive applies a packet that passed Parse (RFC 5880 6.8.6). It returns
// the state change, if any, or an error saying why the packet was
// discarded.
func (s *Session) Receive(p Packet, now time.Time) (Transition, error) {
	t := Transition{From: s.state, To: s.state}
	if p.YourDiscriminator != 0 && p.YourDiscriminator != s.localDiscr {
		return t, fmt.Errorf("%w: %d, ours is %d", errWrongDiscriminator, p.YourDiscriminator, s.localDiscr)
	}
	s.remoteDiscr = p.MyDiscriminator
	s.remoteState = p.State
	s.remoteDemand = p.Demand
	s.remoteMinRx = fromMicros(p.RequiredMinRxInterval)
	s.remoteMinTx = fromMicros(p.DesiredMinTxInterval)
	s.remoteDetectMult = p.DetectMult
	if p.Final {
		s.polling = false
	}
	if s.state == AdminDown {
		return t, errAdminDown
	}
	s.heard = true
	s.detectAt = now.Add(s.DetectionTime())
	if p.Poll {
		s.final = true
	}

	switch {
	case p.State == AdminDown:
		if s.state != Down {
			s.setState(Down, DiagNeighborDown)
			t.RemoteAdminDown = true
		}
	case s.state == Down:
		switch p.State {
		case Down:
			s.setState(Init, s.diag)
		case Init:
			s.setState(Up, s.diag)
		}
	case s.state == Init:
		if p.State == Init || p.State == Up {
			s.setState(Up, s.diag)
		}
	case s.state == Up:
		if p.State == Down {
			s.setState(Down, DiagNeighborDown)
		}
	}
	t.To, t.Diag = s.state, s.diag
	return t, nil
}

// Expire takes the session Down if its detection time has passed by now
// without a packet (RFC 5880 6.8.4), and forgets the peer's discriminator
// (6.8.1).
func (s *Session) Expire(now time.Time) Transition {
	t := Transition{From: s.state, To: s.state}
	if s.detectAt.IsZero() || now.Before(s.detectAt) {
		return t
	}
	s.detectAt = time.Time{}
	s.heard = false
	s.remoteDiscr = 0
	s.remoteState = Down
	s.remoteDemand = false
	if s.state == Init || s.state == Up {
		s.setState(Down, DiagControlDetectExpired)
	}
	t.To, t.Diag = s.state, s.diag
	return t
}

// SetAdminDown takes the session administratively down (or back to Down
// when up is true): the peer is told, and does not count it as a failure.
func (s *Session) SetAdminDown(down bool) {
	switch {
	case down && s.state != AdminDown:
		s.setState(AdminDown, DiagAdministrativelyDown)
		s.detectAt = time.Time{}
	case !down && s.state == AdminDown:
		s.setState(Down, DiagNone)
	}
}

// setState changes the state and the transmit interval that goes with it:
// the profile's once Up, announced with a Poll Sequence (RFC 5880 6.8.3),
// and at least SlowTxInterval otherwise.
func (s *Session) setState(next State, diag Diag) {
	s.state, s.diag = next, diag
	want := max(s.cfg.DesiredMinTx, SlowTxInterval)
	if next == Up {
		want = s.cfg.DesiredMinTx
	}
	if want != s.desiredTx {
		s.desiredTx = want
		s.polling = next == Up
	}
	if next != Up {
		s.polling = false
	}
}

// TxInterval is the interval between periodic packets, before jitter
// (RFC 5880 6.8.7): the slower of what we want and what the peer can
// take. Zero means send nothing now: a passive session that has not heard
// the peer, a peer that asks for no packets (Required Min RX 0), or a
// peer in demand mode with both ends Up.
func (s *Session) TxInterval() time.Duration {
	switch {
	case s.cfg.Passive && !s.heard && s.state != AdminDown:
		return 0
	case s.heard && s.remoteMinRx == 0:
		return 0
	case s.remoteDemand && s.state == Up && s.remoteState == Up:
		return 0
	}
	return max(s.desiredTx, s.remoteMinRx)
}

// FinalPending says a Poll came and its answer is due now, whatever the
// periodic schedule (RFC 5880 6.5).
func (s *Session) FinalPending() bool { return s.final }

// Packet returns the control packet to send now, and counts the answer to
// a Poll as sent.
func (s *Session) Packet() Packet {
	p := Packet{
		Version:               Version,
		Diag:                  s.diag,
		State:                 s.state,
		DetectMult:            s.cfg.DetectMult,
		Length:                PacketLen,
		MyDiscriminator:       s.localDiscr,
		YourDiscriminator:     s.remoteDiscr,
		DesiredMinTxInterval:  micros(s.desiredTx),
		RequiredMinRxInterval: micros(s.cfg.RequiredMinRx),
	}
	// P and F are never set together (RFC 5880 6.5): the answer goes
	// first, the Poll with the next packet.
	if s.final {
		p.Final, s.final = true, false
	} else {
		p.Poll = s.polling
	}
	return p
}
