package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/bfd"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Defaults of Config.
const (
	// DefaultConnectRetry paces connection attempts to a peer whose
	// session is down. GoBGP's default, 120 s, would leave a node without
	// routes for minutes after its router restarts. GoBGP gives each
	// attempt this minus one second to connect.
	DefaultConnectRetry = 3 * time.Second
	// DefaultWithdrawTimeout bounds how long WithdrawAll waits for the
	// withdrawals to be handed to the sessions.
	DefaultWithdrawTimeout = 2 * time.Second
	// idleHoldAfterReset is how long GoBGP waits before dialling again
	// after a session was reset on purpose (by BFD going down): what it
	// waits after any lost session. GoBGP's default is 30 s.
	idleHoldAfterReset = 5
	// DefaultBFDAnswerWait is how long after a BGP session came up the
	// router's first BFD packet must have come, or the node reports that
	// the router answers no BFD. A router starts its BFD session with the
	// BGP session, and sends at least once a second until it is up.
	DefaultBFDAnswerWait = 5 * time.Second
)

// Config says how a Speaker runs.
type Config struct {
	// Logger receives session changes and failures.
	Logger klog.Logger
	// RouterID is the BGP identifier used when no peer sets router-id;
	// the node's IPv4 address. With neither, SetPeers fails.
	RouterID netip.Addr
	// ConnectRetry is DefaultConnectRetry when zero.
	ConnectRetry time.Duration
	// WithdrawTimeout is DefaultWithdrawTimeout when zero.
	WithdrawTimeout time.Duration
	// NeighborAnswers says whether the peer, or the gateway towards it,
	// answers ARP/NDP; it tells a wrong password from a dead router. Nil
	// means asking the kernel's neighbor table.
	NeighborAnswers func(netip.Addr) bool
	// BFD sets where BFD listens; only Listen, Port and MultihopPort are
	// used, and zero values mean the RFC ports on every address. Tests
	// change them.
	BFD bfd.ManagerConfig
	// BFDAnswerWait is DefaultBFDAnswerWait when zero.
	BFDAnswerWait time.Duration
	// Passwords reads the password-secret of peers (peers.go). Nil makes
	// every peer with a password-secret fail to resolve.
	Passwords func(config.SecretKeyRef) (string, error)
}

// globalConf is what GoBGP can only change by restarting: the server's AS
// number and router ID.
type globalConf struct {
	asn      uint32
	routerID netip.Addr
}

// peerConf is a peer's configuration as far as the session is concerned;
// a change of any field re-creates the session.
type peerConf struct {
	address       netip.Addr
	port          uint16
	peerASN       uint32
	myASN         uint32
	hold          time.Duration
	keepalive     time.Duration
	source        netip.Addr
	password      string
	ebgpMultiHop  bool
	routerIDGiven netip.Addr
	// gracefulRestart: see config.Peer.GracefulRestart.
	gracefulRestart bool
}

func peerConfOf(p config.Peer) peerConf {
	return peerConf{
		address: p.Address, port: p.PeerPort, peerASN: p.PeerASN, myASN: p.MyASN,
		hold: p.HoldTime.Duration, keepalive: p.KeepaliveTime.Duration,
		source: p.Source, password: p.Password, ebgpMultiHop: p.EBGPMultiHop,
		routerIDGiven: p.ID, gracefulRestart: p.GracefulRestart,
	}
}

// grRestartTime is the restart time offered with graceful restart: how
// long the router keeps this node's routes while no session is up. FRR's
// default; an announcer restarts in a few seconds.
const grRestartTime = 120

// Speaker is an embedded BGP speaker that announces this node's IPs of
// bgp pools to the configured peers. It implements announcer.Announcer.
// The GoBGP server starts with the first peer; a node without peers runs
// no BGP at all.
type Speaker struct {
	cfg    Config
	logger klog.Logger

	// mu serializes changes to the server. It is never held by GoBGP's
	// callbacks (the logger, the watch), which take only stMu: GoBGP waits
	// for its session goroutines when deleting a peer, and those log.
	mu       sync.Mutex
	srv      *server.BgpServer
	running  bool // StartBgp succeeded and StopBgp has not been called
	global   globalConf
	peers    map[string]peerConf // by neighbor address, as GoBGP keys them
	want     routeSet
	have     routeSet // in the server's RIB
	withdraw bool     // WithdrawAll was called: announce nothing any more
	closed   bool
	cancel   context.CancelFunc // of the event watch

	// bfd runs the BFD sessions, from the first peer with a bfd-profile
	// on; bfdPeers are their configurations, by neighbor address.
	bfd      *bfd.Manager
	bfdPeers map[string]bfd.PeerConfig

	stMu   sync.Mutex
	status map[string]*peerStatus

	// pwErrors are the peers' password problems last logged, so that each
	// is logged when it appears and not on every pass (peers.go).
	pwMu     sync.Mutex
	pwErrors map[string]string
}

// New returns a Speaker with no peers. Close it when done.
func New(cfg Config) *Speaker {
	if cfg.ConnectRetry <= 0 {
		cfg.ConnectRetry = DefaultConnectRetry
	}
	if cfg.WithdrawTimeout <= 0 {
		cfg.WithdrawTimeout = DefaultWithdrawTimeout
	}
	if cfg.NeighborAnswers == nil {
		cfg.NeighborAnswers = neighborAnswers
	}
	if cfg.BFDAnswerWait <= 0 {
		cfg.BFDAnswerWait = DefaultBFDAnswerWait
	}
	s := &Speaker{
		cfg: cfg, logger: cfg.Logger,
		peers: map[string]peerConf{}, want: routeSet{}, have: routeSet{},
		bfdPeers: map[string]bfd.PeerConfig{},
		status:   map[string]*peerStatus{},
		pwErrors: map[string]string{},
	}
	speakers.add(s)
	return s
}

var _ announcer.Announcer = (*Speaker)(nil)

// SetAnnouncements sets the complete set of IPs this node announces. Each
// IP's routes follow its Advertisements; only the routes that changed are
// added or withdrawn.
func (s *Speaker) SetAnnouncements(ans map[netip.Addr]announcer.Announcement) error {
	want := desiredRoutes(ans)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdraw || s.closed {
		return nil
	}
	s.want = want
	return s.syncRoutes()
}

// syncRoutes brings the server's RIB to s.want. Caller holds mu.
func (s *Speaker) syncRoutes() error {
	if !s.running {
		return nil
	}
	add, del := diffRoutes(s.have, s.want)
	ctx := context.Background()
	var errs []error
	for _, p := range del {
		// The path is built again rather than kept: GoBGP finds it by
		// prefix, and 5,000 kept paths would cost megabytes.
		path, err := apiPath(p, s.have[p])
		if err == nil {
			err = s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s: %w", p, err))
			continue
		}
		delete(s.have, p)
	}
	for _, p := range add {
		a := s.want[p]
		path, err := apiPath(p, a)
		if err == nil {
			// A path from the same (local) source replaces the one for
			// the same prefix: a change of attributes is one UPDATE.
			_, err = s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announcing %s: %w", p, err))
			continue
		}
		s.have[p] = a
	}
	if len(add)+len(del) > 0 {
		s.logger.V(2).Info("BGP routes changed", "announced", len(add), "withdrawn", len(del), "total", len(s.have))
	}
	return errors.Join(errs...)
}

// SetPeers sets the peers this node talks to (those whose node-selectors
// match it), with passwords resolved. Sessions of peers that are gone are
// closed, new ones are dialled, and changed ones are re-created.
func (s *Speaker) SetPeers(peers []config.Peer) error {
	want := map[string]peerConf{}
	wantBFD := map[string]bfd.PeerConfig{}
	var order []string
	for _, p := range peers {
		key := p.Address.String()
		if _, dup := want[key]; dup {
			// Config validation allows one address twice only with
			// different node-selectors; a node matching both gets the
			// first, as GoBGP has one session per address.
			s.logger.Error(nil, "Two peers with the same address match this node; using the first", "peer", key)
			continue
		}
		if p.HoldTime.Duration == 0 {
			// GoBGP reads a zero hold time as "use the default".
			s.logger.Error(nil, "Hold-time 0s (no keepalives) is not supported by the embedded speaker; proposing 90s", "peer", key)
		}
		want[key] = peerConfOf(p)
		if p.BFD != nil {
			wantBFD[key] = bfdConfOf(p)
		}
		order = append(order, key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp: SetPeers after Close")
	}
	if len(want) == 0 {
		if s.running {
			s.logger.Info("No BGP peer for this node any more; stopping the BGP speaker")
			s.stopServer()
		}
		return s.syncBFD(nil)
	}

	g, err := s.globalFor(want, order)
	if err != nil {
		return err
	}
	if s.running && g != s.global {
		s.logger.Info("BGP AS number or router ID changed; restarting the BGP speaker", "asn", g.asn, "routerID", g.routerID)
		s.stopServer()
	}
	if !s.running {
		if err := s.startServer(g); err != nil {
			return err
		}
	}

	ctx := context.Background()
	var errs []error
	for key, have := range s.peers {
		if w, ok := want[key]; ok && w == have {
			continue
		}
		// Forgotten first: closing the session on purpose is no failure.
		s.forgetStatus(key)
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: key}); err != nil {
			errs = append(errs, fmt.Errorf("removing peer %s: %w", key, err))
			continue
		}
		delete(s.peers, key)
		s.logger.Info("BGP peer removed", "peer", key)
	}
	for _, key := range order {
		w := want[key]
		if _, ok := s.peers[key]; ok {
			continue
		}
		s.trackStatus(key, w)
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(w)}); err != nil {
			errs = append(errs, fmt.Errorf("adding peer %s: %w", key, err))
			continue
		}
		s.peers[key] = w
		s.logger.Info("BGP peer added", "peer", key, "port", w.port, "peerASN", w.peerASN, "myASN", w.myASN,
			"holdTime", w.hold, "keepalive", w.keepalive, "sourceAddress", addrOrEmpty(w.source),
			"password", w.password != "", "ebgpMultihop", w.ebgpMultiHop, "gracefulRestart", w.gracefulRestart)
	}
	if err := s.syncBFD(wantBFD); err != nil {
		errs = append(errs, err)
	}
	if err := s.syncRoutes(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// globalFor picks the server's AS and router ID for a set of peers: the
// first peer's my-asn (GoBGP sets each session's own AS apart), and the
// first router-id a peer gives, else Config.RouterID.
func (s *Speaker) globalFor(peers map[string]peerConf, order []string) (globalConf, error) {
	g := globalConf{asn: peers[order[0]].myASN, routerID: s.cfg.RouterID}
	ids := map[netip.Addr]bool{}
	for _, key := range order {
		if id := peers[key].routerIDGiven; id.IsValid() {
			if len(ids) == 0 {
				g.routerID = id
			}
			ids[id] = true
		}
	}
	if len(ids) > 1 {
		s.logger.Error(nil, "Peers of this node give different router-id values; one BGP speaker has one, using the first", "routerID", g.routerID)
	}
	if !g.routerID.IsValid() || !g.routerID.Is4() {
		return g, errors.New("bgp: no router ID: the node has no IPv4 address; set router-id on its peers")
	}
	return g, nil
}

// startServer starts GoBGP with g and no peers. Caller holds mu.
func (s *Speaker) startServer(g globalConf) error {
	if s.srv == nil {
		// GoBGP's Serve never returns, so one server serves the
		// Speaker's whole life; StopBgp and StartBgp reset it.
		s.srv = server.NewBgpServer(server.LoggerOption(&gobgpLogger{s: s}))
		go s.srv.Serve()
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		if err := s.srv.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.onEvent); err != nil {
			return fmt.Errorf("bgp: watching sessions: %w", err)
		}
	}
	err := s.srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn:      g.asn,
		RouterId: g.routerID.String(),
		// Never listen: the speaker dials out to its peers, as
		// MetalLB's does, so it needs no port 179 of its own and cannot
		// clash with a routing daemon on the node.
		ListenPort: -1,
	}})
	if err != nil {
		return fmt.Errorf("bgp: starting the speaker (AS %d, router ID %s): %w", g.asn, g.routerID, err)
	}
	s.running, s.global = true, g
	s.logger.Info("BGP speaker started", "asn", g.asn, "routerID", g.routerID)
	// The new RIB is empty.
	clear(s.have)
	return nil
}

// stopServer closes every session and empties the RIB. Caller holds mu.
func (s *Speaker) stopServer() {
	if !s.running {
		return
	}
	// Forgotten first: closing the sessions on purpose is no failure.
	for key := range s.peers {
		s.forgetStatus(key)
	}
	if err := s.srv.StopBgp(context.Background(), &api.StopBgpRequest{}); err != nil {
		s.logger.Error(err, "Stopping the BGP speaker")
	}
	s.running = false
	clear(s.peers)
	clear(s.have)
}

// apiPeer is the GoBGP configuration of a peer.
func (s *Speaker) apiPeer(p peerConf) *api.Peer {
	family := familyV4
	if p.address.Is6() {
		family = familyV6
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.address.String(),
			PeerAsn:         p.peerASN,
			LocalAsn:        p.myASN,
			AuthPassword:    p.password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(s.cfg.ConnectRetry / time.Second),
			HoldTime:               uint64(p.hold / time.Second),
			KeepaliveInterval:      uint64(p.keepalive / time.Second),
			IdleHoldTimeAfterReset: idleHoldAfterReset,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.port)},
		// Each family over a session of its own family, as MetalLB: the
		// next hop of a route is the session's local address, which must
		// be of the route's family.
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}},
	}
	if p.source.IsValid() {
		ap.Transport.LocalAddress = p.source.String()
	}
	if p.ebgpMultiHop {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.gracefulRestart {
		// Every session of this process opens as a restart: the R bit, and
		// the F bit per family (GoBGP sets it when restarting), which is
		// true of a node whose announcer stopped: kube-proxy kept
		// forwarding. A router that kept our routes as stale then keeps
		// them until our End-of-RIB; one that did not just learns them. A
		// deferral of 0 sends our routes at once instead of waiting for the
		// router's End-of-RIB: we take no routes from it.
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: grRestartTime, LocalRestarting: true}
		ap.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	return ap
}

// WithdrawAll withdraws every route and waits, at most
// Config.WithdrawTimeout or until ctx ends, until no established session
// has a route left to withdraw; the sessions stay up, so routers drain
// the node before it goes. Later SetAnnouncements calls announce nothing.
func (s *Speaker) WithdrawAll(ctx context.Context) error {
	s.mu.Lock()
	s.withdraw = true
	s.want = routeSet{}
	n := len(s.have)
	err := s.syncRoutes()
	srv, running := s.srv, s.running
	s.mu.Unlock()
	if !running {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WithdrawTimeout)
	defer cancel()
	start := time.Now()
	for {
		left := advertisedTotal(ctx, srv)
		if left == 0 {
			s.logger.Info("BGP routes withdrawn", "routes", n, "after", time.Since(start).Round(time.Millisecond))
			return err
		}
		select {
		case <-ctx.Done():
			s.logger.Error(nil, "BGP routes still advertised when the wait ended", "left", left)
			return errors.Join(err, context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// advertisedTotal counts the routes the established sessions still
// advertise.
func advertisedTotal(ctx context.Context, srv *server.BgpServer) uint64 {
	var n uint64
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.GetState().GetSessionState() != api.PeerState_ESTABLISHED {
			return
		}
		for _, af := range p.GetAfiSafis() {
			n += af.GetState().GetAdvertised()
		}
	})
	return n
}

// Close closes every session (with a BGP Cease) and stops the speaker.
// Call WithdrawAll first for a graceful stop.
func (s *Speaker) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	// BGP first: its Cease tells the router we are going; BFD's
	// administratively-down packets then end BFD without a failure.
	s.stopServer()
	if s.bfd != nil {
		s.bfd.Close()
		clear(s.bfdPeers)
	}
	if s.cancel != nil {
		s.cancel()
	}
	speakers.remove(s)
}

// SetDefaultRouterID sets Config.RouterID, which the node may only know
// once its Node object is read. It applies from the next SetPeers.
func (s *Speaker) SetDefaultRouterID(id netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.RouterID = id
}
