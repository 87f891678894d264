package bgp

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/vishvananda/netlink"
)

// relogInterval is how often a failure that keeps repeating is logged
// again: once per change is enough to find it, once a minute keeps it in
// view of someone reading the recent log.
const relogInterval = time.Minute

// peerStatus is what the Speaker knows about one session. Guarded by
// Speaker.stMu.
type peerStatus struct {
	conf peerConf
	up   bool
	// failure is why the session is not up (or why it last went down);
	// zero while up.
	failure failure
	// notified says the current session's end was explained by a
	// notification already, so GoBGP's "Peer Down" reason is not counted
	// twice.
	notified bool
	logged   time.Time
	// bfdReset says BFD reset the session, so that the notification the
	// reset sends is not counted as a failure of its own.
	bfdReset bool
	// gen counts the times the session came up.
	gen uint64
}

func (s *Speaker) trackStatus(key string, c peerConf) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	s.status[key] = &peerStatus{conf: c}
}

func (s *Speaker) forgetStatus(key string) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	delete(s.status, key)
}

// fail records why a session is not up, counts it and logs it when it is
// news.
func (s *Speaker) fail(key string, f func(*peerStatus) failure) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	st := s.status[key]
	if st == nil {
		return // a peer being removed
	}
	fl := f(st)
	sessionFailures.WithLabelValues(key, fl.reason).Inc()
	now := time.Now()
	if fl != st.failure || now.Sub(st.logged) >= relogInterval {
		s.logger.Error(nil, "BGP session cannot be established", "peer", key, "reason", fl.reason, "detail", fl.detail,
			"peerASN", st.conf.peerASN, "myASN", st.conf.myASN)
		st.logged = now
	} else {
		s.logger.V(4).Info("BGP session still failing", "peer", key, "reason", fl.reason)
	}
	st.failure = fl
}

// onEvent follows GoBGP's session state changes.
func (s *Speaker) onEvent(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	state := pe.GetPeer().GetState()
	key := state.GetNeighborAddress()
	established := state.GetSessionState() == api.PeerState_ESTABLISHED
	s.stMu.Lock()
	defer s.stMu.Unlock()
	st := s.status[key]
	if st == nil {
		return
	}
	switch {
	case established && !st.up:
		st.up, st.failure, st.notified, st.logged, st.bfdReset = true, failure{}, false, time.Time{}, false
		st.gen++
		s.logger.Info("BGP session established", "peer", key, "localAddress", pe.GetPeer().GetTransport().GetLocalAddress(),
			"peerASN", state.GetPeerAsn(), "myASN", state.GetLocalAsn(), "peerRouterID", state.GetRouterId(),
			"holdTime", time.Duration(pe.GetPeer().GetTimers().GetState().GetNegotiatedHoldTime())*time.Second)
		gen, upAt := st.gen, time.Now()
		time.AfterFunc(s.cfg.BFDAnswerWait, func() { s.checkBFDAnswer(key, gen, upAt) })
	case !established && st.up:
		st.up = false
		s.logger.Info("BGP session down", "peer", key, "state", state.GetSessionState().String(),
			"reason", st.failure.reason, "detail", st.failure.detail)
	}
}

// gobgpLogger receives GoBGP's log. It turns the messages that explain a
// failing session into failures, and passes the rest on at high
// verbosity. Its level is Debug because GoBGP reports a failed connection
// attempt, with the error, only at that level.
type gobgpLogger struct{ s *Speaker }

var _ gobgplog.Logger = (*gobgpLogger)(nil)

func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	l.s.logger.Error(nil, "GoBGP: "+msg, flatten(f)...)
	panic(msg)
}
func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) {
	l.s.logger.Error(nil, "GoBGP: "+msg, flatten(f)...)
}
func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) {
	l.s.logger.Error(nil, "GoBGP: "+msg, flatten(f)...)
}

func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields) {
	key, _ := f["Key"].(string)
	switch msg {
	case "received notification":
		code, _ := f["Code"].(uint8)
		sub, _ := f["Subcode"].(uint8)
		l.s.fail(key, func(st *peerStatus) failure {
			st.notified = st.up
			return classifyNotification(false, code, sub, st.conf.myASN, st.conf.peerASN, "")
		})
		return
	case "sent notification":
		if l.s.resetByBFD(key) {
			return // counted as bfd_down
		}
		if e, ok := f["Data"].(*bgp.MessageError); ok {
			l.s.fail(key, func(st *peerStatus) failure {
				st.notified = st.up
				return classifyNotification(true, e.TypeCode, e.SubTypeCode, st.conf.myASN, st.conf.peerASN, e.Message)
			})
			return
		}
	}
	l.s.logger.V(2).Info("GoBGP: "+msg, flatten(f)...)
}

func (l *gobgpLogger) Info(msg string, f gobgplog.Fields) {
	key, _ := f["Key"].(string)
	if msg == "Peer Down" {
		reason, _ := f["Reason"].(string)
		l.s.stMu.Lock()
		st := l.s.status[key]
		counted := st == nil || st.notified
		l.s.stMu.Unlock()
		if !counted {
			l.s.fail(key, func(*peerStatus) failure { return classifyDown(reason) })
		}
		return
	}
	l.s.logger.V(2).Info("GoBGP: "+msg, flatten(f)...)
}

func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) {
	key, _ := f["Key"].(string)
	if msg == "state changed" {
		old, _ := f["old"].(string)
		next, _ := f["new"].(string)
		if fl, ok := classifyOpenFailure(old, next, f["reason"]); ok {
			l.s.fail(key, func(st *peerStatus) failure {
				if old == bgp.BGP_FSM_OPENCONFIRM.String() {
					fl.detail = fmt.Sprintf(fl.detail, st.conf.myASN)
				}
				return fl
			})
		}
		return
	}
	if msg != "failed to connect" {
		return
	}
	err, _ := f["Error"].(error)
	if err == nil {
		return
	}
	addr, _ := netip.ParseAddr(key)
	answers := addr.IsValid() && l.s.cfg.NeighborAnswers(addr)
	l.s.fail(key, func(st *peerStatus) failure {
		return classifyDial(err, key, st.conf.password != "", answers)
	})
}

func (l *gobgpLogger) SetLevel(gobgplog.LogLevel)  {}
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

// flatten turns GoBGP's fields into klog key/value pairs.
func flatten(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		out = append(out, k, fmt.Sprint(v))
	}
	return out
}

// neighborAnswers says whether the kernel's neighbor table has a live
// entry for addr or for the gateway of its route: whether the router, or
// the way to it, answered ARP/NDP lately.
func neighborAnswers(addr netip.Addr) bool {
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil || len(routes) == 0 {
		return false
	}
	target := addr
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && routes[0].Gw != nil {
		target = gw.Unmap()
	}
	family := netlink.FAMILY_V4
	if target.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(routes[0].LinkIndex, family)
	if err != nil {
		return false
	}
	const live = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP
	for _, n := range neighs {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == target {
			return n.State&live != 0
		}
	}
	return false
}
