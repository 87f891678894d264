package bgp

import (
	"context"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/bfd"
)

var (
	sessionFailures = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "bgp",
		Name:           "session_failures_total",
		Help:           "Failed connection attempts and lost sessions, by peer and reason: connection_refused, password_mismatch, no_answer, connect_timeout, unreachable, my_asn_rejected, peer_asn_mismatch, open_rejected, hold_timer_expired, peer_shutdown, connection_closed, notification_received, notification_sent, connect_error, other; with BFD: bfd_down (BFD reset the session), bfd_no_answer (the router runs no BFD for this node), bfd_error.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"peer", "reason"})

	sessionUpDesc = metrics.NewDesc("baremetal_announcer_bgp_session_up",
		"1 when the BGP session with the peer is established, else 0.",
		[]string{"peer"}, nil, metrics.ALPHA, "")
	prefixesDesc = metrics.NewDesc("baremetal_announcer_bgp_announced_prefixes",
		"Prefixes this node currently advertises to the peer.",
		[]string{"peer"}, nil, metrics.ALPHA, "")
	updatesDesc = metrics.NewDesc("baremetal_announcer_bgp_updates_sent_total",
		"BGP UPDATE messages sent to the peer since its session was configured.",
		[]string{"peer"}, nil, metrics.ALPHA, "")
)

// speakerSet holds the live Speakers, which the collector asks at scrape
// time.
type speakerSet struct {
	mu  sync.Mutex
	set map[*Speaker]struct{}
}

var speakers = &speakerSet{set: map[*Speaker]struct{}{}}

func (ss *speakerSet) add(s *Speaker) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.set[s] = struct{}{}
}

func (ss *speakerSet) remove(s *Speaker) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.set, s)
}

func (ss *speakerSet) list() []*Speaker {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*Speaker, 0, len(ss.set))
	for s := range ss.set {
		out = append(out, s)
	}
	return out
}

// collector reads session state, advertised prefixes and update counts
// from GoBGP when scraped, so the figures are GoBGP's own and a removed
// peer leaves no stale series.
type collector struct {
	metrics.BaseStableCollector
}

func (collector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- sessionUpDesc
	ch <- prefixesDesc
	ch <- updatesDesc
}

// scrapeTimeout bounds a scrape's questions to GoBGP.
const scrapeTimeout = 2 * time.Second

func (collector) CollectWithStability(ch chan<- metrics.Metric) {
	for _, s := range speakers.list() {
		for _, p := range s.peerStates() {
			addr := p.GetState().GetNeighborAddress()
			up, prefixes := 0.0, 0.0
			if p.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
				up = 1
				for _, af := range p.GetAfiSafis() {
					prefixes += float64(af.GetState().GetAdvertised())
				}
			}
			ch <- metrics.NewLazyConstMetric(sessionUpDesc, metrics.GaugeValue, up, addr)
			ch <- metrics.NewLazyConstMetric(prefixesDesc, metrics.GaugeValue, prefixes, addr)
			ch <- metrics.NewLazyConstMetric(updatesDesc, metrics.CounterValue,
				float64(p.GetState().GetMessages().GetSent().GetUpdate()), addr)
		}
	}
}

// peerStates lists the sessions with their advertised counts.
func (s *Speaker) peerStates() []*api.Peer {
	s.mu.Lock()
	srv, running := s.srv, s.running
	s.mu.Unlock()
	if !running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var out []*api.Peer
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) { out = append(out, p) })
	return out
}

var registerOnce sync.Once

// RegisterMetrics registers this package's metrics with the legacy
// registry served on /metrics.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(sessionFailures)
		legacyregistry.CustomMustRegister(&collector{})
		bfd.RegisterMetrics()
	})
}
