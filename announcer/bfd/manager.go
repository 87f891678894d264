package bfd

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"k8s.io/klog/v2"
)

// Ports and TTLs of RFC 5881 (single hop) and RFC 5883 (multihop).
const (
	PortSingleHop = 3784
	PortMultihop  = 4784
	// sourcePortMin and sourcePortMax bound the source port of a
	// session's packets (RFC 5881 4, RFC 5883 5).
	sourcePortMin = 49152
	sourcePortMax = 65535
	// ttlMax is the TTL we send with, and the only one a single-hop
	// packet may arrive with (RFC 5881 5, the GTSM of RFC 5082): a packet
	// from further away cannot forge it.
	ttlMax = 255
	// DefaultMinTTL is the least TTL a multihop packet may arrive with
	// when the profile sets none: one router between us, as MetalLB's
	// default minimum-ttl of 254.
	DefaultMinTTL = 254
)

// rxQueue is how many packets wait for a session's goroutine; more are
// dropped (a peer sending far faster than agreed).
const rxQueue = 16

// Reasons a received packet is dropped: the values of the reason label of
// baremetal_announcer_bfd_packets_dropped_total.
const (
	DropMalformed     = "malformed"
	DropAuth          = "authentication"
	DropTTL           = "ttl"
	DropUnknown       = "unknown_session"
	DropDiscriminator = "discriminator"
	DropQueueFull     = "queue_full"
)

// ManagerConfig says how a Manager runs.
type ManagerConfig struct {
	// Logger receives state changes and problems.
	Logger klog.Logger
	// OnChange is called on every state change of a session, from the
	// session's goroutine: it must not block for long, and must not call
	// Add or Remove for the same peer.
	OnChange func(peer netip.Addr, t Transition)
	// Listen are the addresses to receive on: one IPv4 and one IPv6 at
	// most. Default 0.0.0.0 and ::.
	Listen []netip.Addr
	// Port and MultihopPort are PortSingleHop and PortMultihop when zero;
	// tests change them.
	Port, MultihopPort int
}

// PeerConfig is one session's configuration.
type PeerConfig struct {
	Config
	// Local is the address to send from; invalid means the kernel's
	// choice, which is also what the BGP session uses.
	Local netip.Addr
	// Multihop selects RFC 5883 (port 4784, TTL at least MinTTL) over
	// RFC 5881 (port 3784, TTL exactly 255).
	Multihop bool
	// MinTTL is the least TTL of a multihop packet; DefaultMinTTL when 0.
	MinTTL uint8
}

// Status is what a session looks like now.
type Status struct {
	Peer          netip.Addr
	State         State
	RemoteState   State
	LocalDiag     Diag
	DetectionTime time.Duration
	// Received counts the packets the session accepted; LastReceived is
	// when the last came (zero: never).
	Received     uint64
	LastReceived time.Time
	// Flaps counts the times the session left Up.
	Flaps uint64
	// BadTTL is the TTL of the last packet dropped for it (0: none).
	BadTTL int
}

// Manager runs the BFD sessions of one node: one UDP socket per family and
// kind (single hop, multihop) to receive on, shared by every session, and
// one socket and goroutine per session to send from.
type Manager struct {
	cfg    ManagerConfig
	logger klog.Logger

	mu        sync.Mutex
	sessions  map[netip.Addr]*session
	byDiscr   map[uint32]*session
	listeners map[listenKey]*listener
	closed    bool
}

type listenKey struct {
	v6       bool
	multihop bool
}

// NewManager returns a Manager with no session. Close it when done.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Port == 0 {
		cfg.Port = PortSingleHop
	}
	if cfg.MultihopPort == 0 {
		cfg.MultihopPort = PortMultihop
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(netip.Addr, Transition) {}
	}
	m := &Manager{
		cfg: cfg, logger: cfg.Logger,
		sessions: map[netip.Addr]*session{}, byDiscr: map[uint32]*session{},
		listeners: map[listenKey]*listener{},
	}
	managers.add(m)
	return m
}

// Add starts a session with peer, or restarts it if its configuration
// changed. It fails if the socket to receive on cannot be opened (another
// BFD daemon on the node holds the port) or the session's own cannot.
func (m *Manager) Add(peer netip.Addr, pc PeerConfig) error {
	peer = peer.Unmap()
	if pc.MinTTL == 0 {
		pc.MinTTL = DefaultMinTTL
	}
	if pc.DetectMult == 0 || pc.DesiredMinTx <= 0 || pc.RequiredMinRx <= 0 {
		return fmt.Errorf("bfd: peer %s: intervals and detect multiplier must be positive: %+v", peer, pc.Config)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("bfd: Add after Close")
	}
	if old := m.sessions[peer]; old != nil {
		if old.pc == pc {
			return nil
		}
		m.removeLocked(old)
	}
	key := listenKey{v6: peer.Is6(), multihop: pc.Multihop}
	if m.listeners[key] == nil {
		l, err := m.listen(key)
		if err != nil {
			return err
		}
		m.listeners[key] = l
		go m.serve(l)
	}
	conn, err := dialFrom(peer, pc.Local)
	if err != nil {
		return fmt.Errorf("bfd: peer %s: %w", peer, err)
	}
	port := m.cfg.Port
	if pc.Multihop {
		port = m.cfg.MultihopPort
	}
	s := &session{
		m: m, peer: peer, pc: pc, conn: conn,
		dst:  netip.AddrPortFrom(peer, uint16(port)),
		fsm:  NewSession(pc.Config, m.newDiscr()),
		rx:   make(chan Packet, rxQueue),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	m.sessions[peer] = s
	m.byDiscr[s.fsm.LocalDiscriminator()] = s
	m.logger.Info("BFD session started", "peer", peer, "localAddress", addrOrAny(pc.Local),
		"sourcePort", conn.LocalAddr().(*net.UDPAddr).Port, "multihop", pc.Multihop,
		"transmitInterval", pc.DesiredMinTx, "receiveInterval", pc.RequiredMinRx,
		"detectMultiplier", pc.DetectMult, "passive", pc.Passive)
	go s.run()
	return nil
}

// Remove ends the session with peer, telling the peer it is
// administratively down, which the peer does not count as a failure.
func (m *Manager) Remove(peer netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.sessions[peer.Unmap()]; s != nil {
		m.removeLocked(s)
	}
}

func (m *Manager) removeLocked(s *session) {
	delete(m.sessions, s.peer)
	delete(m.byDiscr, s.fsm.LocalDiscriminator())
	close(s.stop)
	<-s.done
	s.conn.Close()
	m.logger.Info("BFD session removed", "peer", s.peer)
}

// Status returns the state of the session with peer.
func (m *Manager) Status(peer netip.Addr) (Status, bool) {
	m.mu.Lock()
	s := m.sessions[peer.Unmap()]
	m.mu.Unlock()
	if s == nil {
		return Status{}, false
	}
	return s.status(), true
}

// Statuses returns the state of every session, by peer address.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	ss := make([]*session, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	out := make([]Status, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.status())
	}
	slices.SortFunc(out, func(a, b Status) int { return a.Peer.Compare(b.Peer) })
	return out
}

// Close ends every session (administratively down) and closes the sockets.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	for _, s := range m.sessions {
		m.removeLocked(s)
	}
	for _, l := range m.listeners {
		l.conn.Close()
	}
	managers.remove(m)
}

// newDiscr picks a random discriminator that no session of m has. Caller
// holds mu.
func (m *Manager) newDiscr() uint32 {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		d := binary.BigEndian.Uint32(b[:])
		if _, used := m.byDiscr[d]; d != 0 && !used {
			return d
		}
	}
}

// listener is a socket packets arrive on, with the TTL of each.
type listener struct {
	key  listenKey
	conn *net.UDPConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

func (m *Manager) listen(key listenKey) (*listener, error) {
	port := m.cfg.Port
	if key.multihop {
		port = m.cfg.MultihopPort
	}
	var addr netip.Addr
	for _, a := range m.cfg.Listen {
		if a.Is6() == key.v6 {
			addr = a
			break
		}
	}
	if !addr.IsValid() {
		return nil, fmt.Errorf("bfd: no address to listen on for %s", familyName(key.v6))
	}
	network := "udp4"
	if key.v6 {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("bfd: port %d (%s) is taken on this node, by another BFD daemon (FRR's bfdd?): %w", port, familyName(key.v6), err)
		}
		return nil, fmt.Errorf("bfd: listening on %s: %w", netip.AddrPortFrom(addr, uint16(port)), err)
	}
	l := &listener{key: key, conn: conn}
	if key.v6 {
		l.p6 = ipv6.NewPacketConn(conn)
		err = l.p6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst, true)
	} else {
		l.p4 = ipv4.NewPacketConn(conn)
		err = l.p4.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst, true)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("bfd: asking for the TTL of packets: %w", err)
	}
	m.logger.V(2).Info("BFD listening", "address", conn.LocalAddr())
	return l, nil
}

// read returns a packet, its sender and its TTL (-1 if unknown).
func (l *listener) read(b []byte) (int, netip.Addr, int, error) {
	var (
		n   int
		src net.Addr
		ttl = -1
		err error
	)
	if l.p6 != nil {
		var cm *ipv6.ControlMessage
		n, cm, src, err = l.p6.ReadFrom(b)
		if cm != nil {
			ttl = cm.HopLimit
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = l.p4.ReadFrom(b)
		if cm != nil {
			ttl = cm.TTL
		}
	}
	if err != nil {
		return 0, netip.Addr{}, 0, err
	}
	ua, _ := src.(*net.UDPAddr)
	if ua == nil {
		return 0, netip.Addr{}, 0, fmt.Errorf("bfd: sender %v is not UDP", src)
	}
	return n, ua.AddrPort().Addr().Unmap(), ttl, nil
}

// serve reads l until it is closed and hands each packet to its session.
func (m *Manager) serve(l *listener) {
	buf := make([]byte, 1500)
	for {
		n, src, ttl, err := l.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logger.V(2).Info("BFD: reading a packet", "err", err)
			continue
		}
		m.deliver(l.key, buf[:n], src, ttl)
	}
}

// deliver checks a packet and queues it for its session (RFC 5880 6.8.6,
// RFC 5881 3 and 5).
func (m *Manager) deliver(key listenKey, b []byte, src netip.Addr, ttl int) {
	p, err := Parse(b)
	if err != nil {
		reason := DropMalformed
		if errors.Is(err, ErrAuth) {
			reason = DropAuth
		}
		packetsDropped.WithLabelValues(reason).Inc()
		m.logger.V(4).Info("BFD packet dropped", "from", src, "reason", reason, "err", err)
		return
	}
	m.mu.Lock()
	var s *session
	if p.YourDiscriminator != 0 {
		s = m.byDiscr[p.YourDiscriminator]
	} else {
		s = m.sessions[src]
	}
	m.mu.Unlock()
	if s == nil || s.peer != src || s.pc.Multihop != key.multihop {
		packetsDropped.WithLabelValues(DropUnknown).Inc()
		m.logger.V(4).Info("BFD packet for no session dropped", "from", src, "yourDiscriminator", p.YourDiscriminator, "multihop", key.multihop)
		return
	}
	if (!key.multihop && ttl != ttlMax) || (key.multihop && ttl < int(s.pc.MinTTL)) {
		packetsDropped.WithLabelValues(DropTTL).Inc()
		s.badTTL(ttl)
		return
	}
	select {
	case s.rx <- p:
	default:
		packetsDropped.WithLabelValues(DropQueueFull).Inc()
	}
}

// dialFrom opens the socket a session sends from: bound to local (or any
// address), on a random port of 49152-65535, with TTL 255.
func dialFrom(peer, local netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	if peer.Is6() {
		network = "udp6"
	}
	var ip net.IP
	if local.IsValid() {
		ip = local.AsSlice()
	}
	var lastErr error
	// Bounded: with a few sessions per node nearly every port is free.
	for range 64 {
		port := sourcePortMin + mrand.IntN(sourcePortMax-sourcePortMin+1)
		conn, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			lastErr = err
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return nil, fmt.Errorf("opening a socket from %s: %w", addrOrAny(local), err)
		}
		if peer.Is6() {
			err = ipv6.NewConn(conn).SetHopLimit(ttlMax)
		} else {
			err = ipv4.NewConn(conn).SetTTL(ttlMax)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("setting TTL 255: %w", err)
		}
		return conn, nil
	}
	return nil, fmt.Errorf("no free source port in %d-%d: %w", sourcePortMin, sourcePortMax, lastErr)
}

// session is one running session.
type session struct {
	m    *Manager
	peer netip.Addr
	pc   PeerConfig
	conn *net.UDPConn
	dst  netip.AddrPort
	rx   chan Packet
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex // guards what follows
	fsm      *Session
	received uint64
	lastRx   time.Time
	flaps    uint64
	badTTLv  int
	badTTLAt time.Time
}

// badTTLRelog is how often a peer whose packets keep arriving with a bad
// TTL is logged again.
const badTTLRelog = time.Minute

func (s *session) badTTL(ttl int) {
	s.mu.Lock()
	now := time.Now()
	log := ttl != s.badTTLv || now.Sub(s.badTTLAt) >= badTTLRelog
	if log {
		s.badTTLAt = now
	}
	s.badTTLv = ttl
	s.mu.Unlock()
	if !log {
		return
	}
	if s.pc.Multihop {
		s.m.logger.Error(nil, "BFD packets dropped: TTL below minimum-ttl", "peer", s.peer, "ttl", ttl, "minimumTTL", s.pc.MinTTL,
			"detail", fmt.Sprintf("the peer is %d hops away; lower minimum-ttl in the bfd-profile to %d or less", ttlMax-ttl+1, ttl))
		return
	}
	s.m.logger.Error(nil, "BFD packets dropped: single-hop BFD packets must arrive with TTL 255 (RFC 5881)", "peer", s.peer, "ttl", ttl,
		"detail", "the peer is not on this node's link, or sends with a lower TTL; for a peer behind a router set ebgp-multihop, which uses multihop BFD")
}

func (s *session) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		Peer: s.peer, State: s.fsm.State(), RemoteState: s.fsm.RemoteState(), LocalDiag: s.fsm.LocalDiag(),
		DetectionTime: s.fsm.DetectionTime(), Received: s.received, LastReceived: s.lastRx,
		Flaps: s.flaps, BadTTL: s.badTTLv,
	}
}

// jitter shortens an interval by 0-25 % (RFC 5880 6.8.7), by 10-25 % when
// the detect multiplier is 1, so that a packet never comes late.
func jitter(d time.Duration, detectMult uint8) time.Duration {
	lo, span := 0.75, 0.25
	if detectMult == 1 {
		span = 0.15
	}
	return time.Duration(float64(d) * (lo + span*mrand.Float64()))
}

// run sends the session's packets and feeds it what arrives, until stop.
func (s *session) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 0, PacketLen)
	var nextTx time.Time // zero: send as soon as the interval allows
	sendNow := true
	for {
		now := time.Now()
		s.mu.Lock()
		tr := s.fsm.Expire(now)
		if tr.Changed() {
			sendNow = true
		}
		interval := s.fsm.TxInterval()
		send := s.fsm.FinalPending() || (interval > 0 && (sendNow || !now.Before(nextTx)))
		if send {
			p := s.fsm.Packet()
			buf = p.Marshal(buf[:0])
		}
		detect := s.fsm.DetectDeadline()
		s.mu.Unlock()
		if tr.Changed() {
			s.changed(tr)
		}
		if send {
			s.write(buf)
			sendNow = false
			if interval > 0 && (nextTx.IsZero() || !now.Before(nextTx)) {
				nextTx = now.Add(jitter(interval, s.pc.DetectMult))
			}
		}
		if interval == 0 {
			nextTx = time.Time{}
		}

		wake := now.Add(time.Hour)
		if !nextTx.IsZero() && nextTx.Before(wake) {
			wake = nextTx
		}
		if !detect.IsZero() && detect.Before(wake) {
			wake = detect
		}
		timer.Reset(time.Until(wake))
		select {
		case <-s.stop:
			s.mu.Lock()
			s.fsm.SetAdminDown(true)
			p := s.fsm.Packet()
			s.mu.Unlock()
			// Twice: one may be lost, and the peer would then take our
			// going away for a failure.
			b := p.Marshal(nil)
			s.write(b)
			s.write(b)
			return
		case p := <-s.rx:
			now := time.Now()
			s.mu.Lock()
			tr, err := s.fsm.Receive(p, now)
			if err == nil {
				s.received++
				s.lastRx = now
			}
			next := s.fsm.TxInterval()
			s.mu.Unlock()
			if err != nil {
				packetsDropped.WithLabelValues(DropDiscriminator).Inc()
				s.m.logger.V(4).Info("BFD packet dropped by the session", "peer", s.peer, "err", err)
				continue
			}
			if tr.Changed() {
				s.changed(tr)
				sendNow = true
			}
			// Faster now (the session came Up, or the peer can take
			// more): do not wait out the slow interval.
			if next > 0 && (nextTx.IsZero() || nextTx.Sub(now) > next) {
				nextTx = now.Add(jitter(next, s.pc.DetectMult))
			}
		case <-timer.C:
		}
	}
}

func (s *session) write(b []byte) {
	if _, err := s.conn.WriteToUDPAddrPort(b, s.dst); err != nil {
		s.m.logger.V(4).Info("BFD: sending", "peer", s.peer, "err", err)
	}
}

// changed records and reports a state change.
func (s *session) changed(t Transition) {
	s.mu.Lock()
	if t.From == Up {
		s.flaps++
	}
	detection := s.fsm.DetectionTime()
	s.mu.Unlock()
	peer := s.peer.String()
	if t.From == Up {
		reason := flapReason(t)
		sessionFlaps.WithLabelValues(peer, reason).Inc()
		s.m.logger.Info("BFD session down", "peer", peer, "state", t.To, "reason", reason, "diag", t.Diag.String())
	} else {
		s.m.logger.Info("BFD session state changed", "peer", peer, "from", t.From, "to", t.To, "detectionTime", detection)
	}
	s.m.cfg.OnChange(s.peer, t)
}

// Reasons a session left Up: the values of the reason label of
// baremetal_announcer_bfd_session_flaps_total.
const (
	FlapDetectionTimeExpired = "detection_time_expired"
	FlapNeighborDown         = "neighbor_signaled_down"
	FlapNeighborAdminDown    = "neighbor_admin_down"
	FlapAdminDown            = "admin_down"
)

func flapReason(t Transition) string {
	switch {
	case t.RemoteAdminDown:
		return FlapNeighborAdminDown
	case t.Diag == DiagControlDetectExpired:
		return FlapDetectionTimeExpired
	case t.To == AdminDown:
		return FlapAdminDown
	}
	return FlapNeighborDown
}

func addrOrAny(a netip.Addr) string {
	if !a.IsValid() {
		return "any"
	}
	return a.String()
}

func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}
