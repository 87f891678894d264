package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/bfd"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// BFD and BGP: a BFD session runs beside the BGP session of every peer
// with a bfd-profile. It is kept apart from the session's configuration
// (peerConf), so that adding, changing or removing a profile restarts
// only BFD and never drops the BGP session (MetalLB cannot add BFD to an
// existing peer).
//
// When BFD goes from Up to Down, because nothing came from the router for
// the detection time or the router said its end went down, the BGP
// session is reset at once (a Cease, "BFD down"), and its routes leave the
// router with it. GoBGP dials again after idleHoldAfterReset, as after any
// lost session, and BFD comes back up with it. Dialling is not held back
// until BFD is up: a router's BFD session for a peer it accepts by listen
// range exists only while that peer's BGP session does, so waiting would
// never end. A router that takes its end administratively down is no
// failure (RFC 5882 3.2) and leaves BGP alone.

// bfdConfOf is the BFD session of a peer with a profile.
func bfdConfOf(p config.Peer) bfd.PeerConfig {
	ms := func(v *uint32) time.Duration { return time.Duration(*v) * time.Millisecond }
	return bfd.PeerConfig{
		Config: bfd.Config{
			DesiredMinTx:  ms(p.BFD.TransmitInterval),
			RequiredMinRx: ms(p.BFD.ReceiveInterval),
			DetectMult:    uint8(*p.BFD.DetectMultiplier),
			Passive:       p.BFD.PassiveMode,
		},
		Local:    p.Source,
		Multihop: p.EBGPMultiHop,
		MinTTL:   uint8(*p.BFD.MinimumTTL),
	}
}

// syncBFD brings the BFD sessions to want. Caller holds mu.
func (s *Speaker) syncBFD(want map[string]bfd.PeerConfig) error {
	for key := range s.bfdPeers {
		if _, ok := want[key]; !ok {
			s.bfd.Remove(netip.MustParseAddr(key))
			delete(s.bfdPeers, key)
		}
	}
	if len(want) == 0 {
		return nil
	}
	if s.bfd == nil {
		mc := s.cfg.BFD
		mc.Logger = s.logger.WithName("bfd")
		mc.OnChange = s.onBFD
		s.bfd = bfd.NewManager(mc)
	}
	var errs []error
	for key, pc := range want {
		if have, ok := s.bfdPeers[key]; ok && have == pc {
			continue
		}
		if err := s.bfd.Add(netip.MustParseAddr(key), pc); err != nil {
			s.logger.Error(err, "BFD session cannot be started; the BGP session runs without it", "peer", key)
			sessionFailures.WithLabelValues(key, ReasonBFDError).Inc()
			errs = append(errs, fmt.Errorf("BFD with %s: %w", key, err))
			continue
		}
		s.bfdPeers[key] = pc
	}
	return errors.Join(errs...)
}

// onBFD follows BFD's state changes; it runs on the BFD session's
// goroutine, which must not wait for GoBGP.
func (s *Speaker) onBFD(peer netip.Addr, t bfd.Transition) {
	if t.From != bfd.Up || t.To == bfd.Up || t.RemoteAdminDown {
		return
	}
	go s.bfdDown(peer.String(), t)
}

// bfdDown resets the BGP session with a peer whose BFD session went down.
func (s *Speaker) bfdDown(key string, t bfd.Transition) {
	fl := failure{ReasonBFDDown, fmt.Sprintf("BFD session went down (%s): the path to the router is gone; the BGP session is closed at once, not after the hold time", t.Diag)}
	s.stMu.Lock()
	st := s.status[key]
	if st == nil {
		s.stMu.Unlock()
		return // a peer being removed
	}
	// The reset's own notification and "Peer Down" are this failure.
	st.failure, st.notified, st.bfdReset = fl, true, true
	sessionFailures.WithLabelValues(key, fl.reason).Inc()
	st.logged = time.Now()
	s.stMu.Unlock()
	s.logger.Error(nil, "BGP session reset: BFD says the peer is unreachable", "peer", key, "reason", fl.reason, "detail", fl.detail)

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	if _, ok := s.peers[key]; !ok {
		return
	}
	err := s.srv.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: key, Communication: "BFD down"})
	if err != nil {
		s.logger.Error(err, "Resetting the BGP session after BFD went down", "peer", key)
	}
}

// resetByBFD says, once, whether the session's end was a reset by BFD.
func (s *Speaker) resetByBFD(key string) bool {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	st := s.status[key]
	if st == nil || !st.bfdReset {
		return false
	}
	st.bfdReset = false
	return true
}

// checkBFDAnswer runs BFDAnswerWait after a BGP session came up (the
// session numbered gen): if the peer has a BFD session that has heard
// nothing since, the router answers no BFD for this node, and the session
// is not protected.
func (s *Speaker) checkBFDAnswer(key string, gen uint64, upAt time.Time) {
	s.mu.Lock()
	m := s.bfd
	_, has := s.bfdPeers[key]
	s.mu.Unlock()
	if m == nil || !has {
		return
	}
	st, ok := m.Status(netip.MustParseAddr(key))
	if !ok || st.LastReceived.After(upAt) {
		return
	}
	s.stMu.Lock()
	defer s.stMu.Unlock()
	ps := s.status[key]
	if ps == nil || !ps.up || ps.gen != gen {
		return
	}
	detail := fmt.Sprintf("the BGP session has been up for %v and the router has sent no BFD packet: it runs no BFD for this node (FRR: run bfdd and set `neighbor <node> bfd` or a bfd profile on the neighbor or its peer group), or a firewall drops UDP port %d; the session is not protected: a silent node is dropped after the hold time only",
		s.cfg.BFDAnswerWait, bfd.PortSingleHop)
	if s.bfdPeers[key].Multihop {
		detail = fmt.Sprintf("the BGP session has been up for %v and the router has sent no multihop BFD packet (UDP port %d): it runs no BFD for this node (FRR: bfdd and `neighbor <node> bfd` with multihop), or a firewall drops it; the session is not protected",
			s.cfg.BFDAnswerWait, bfd.PortMultihop)
	}
	if s.bfdPeers[key].Passive {
		detail += "; this node's bfd-profile has passive-mode, so it waits for the router's first packet: a router in passive mode too means neither end starts"
	}
	if st.BadTTL != 0 {
		detail = fmt.Sprintf("the router's BFD packets arrive with TTL %d and are dropped (see the BFD log): set ebgp-multihop for a router further away, or lower minimum-ttl", st.BadTTL)
	}
	sessionFailures.WithLabelValues(key, ReasonBFDNoAnswer).Inc()
	s.logger.Error(nil, "BFD: the router does not answer", "peer", key, "reason", ReasonBFDNoAnswer, "detail", detail)
}
