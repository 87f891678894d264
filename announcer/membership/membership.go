// Package membership tells each announcer which other announcers are alive,
// within a fraction of a second, using hashicorp/memberlist (SWIM gossip
// with the Lifeguard extensions).
//
// Kubernetes' own view of node health is far too slow for layer 2
// failover: a Node turns NotReady 40 s or more after its kubelet stops. The
// announcers therefore probe each other directly and agree on the live set
// through gossip. The owner package turns that set into one owner per IP.
//
// Every announcer binds to its node's IP on one port (7946 by default, as
// MetalLB) and joins the other nodes' InternalIPs. Traffic is encrypted
// with AES-256-GCM under a key derived from a shared Secret.
//
// Split brain: when the network partitions, each side declares the other
// dead and takes over its IPs, which is the best a partitioned layer 2
// segment can do. When it heals, the sides must find each other again.
// memberlist keeps gossiping to dead nodes for a while (GossipToTheDeadTime)
// and a node that hears it was declared dead refutes it, which merges short
// partitions by itself; for longer ones, Membership re-joins every known
// peer that is not a live member once a second. Once merged, every node
// computes the same owners again, so two claimants of one IP converge.
package membership

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// DefaultPort is the memberlist port, TCP and UDP, MetalLB's too.
const DefaultPort = 7946

// label is sent with every packet and checked on receipt, so announcers of
// another system on the same port (a MetalLB speaker left running during a
// migration, say) never merge with ours even if they share the key.
const label = "cloud-provider-baremetal"

// rejoinInterval is how often peers that are not live members are joined
// again. It bounds how long two halves of a healed partition stay apart
// once memberlist has stopped gossiping to the nodes it declared dead.
const rejoinInterval = time.Second

// Config says how to start a Membership.
type Config struct {
	// NodeName is this node's name; members are known by their node names.
	NodeName string
	// BindAddr is this node's IP, where peers reach it.
	BindAddr netip.Addr
	// BindPort is the TCP and UDP port; 0 means DefaultPort.
	BindPort int
	// Secret is the shared secret (the Secret's secretkey value). Empty
	// means unencrypted gossip, only sensible in tests.
	Secret []byte
	// Logger receives memberlist's log lines.
	Logger klog.Logger

	// tune, if set, adjusts the memberlist configuration (tests).
	tune func(*memberlist.Config)
}

// Membership is this node's view of the live announcers.
type Membership struct {
	// ml is set once Create returns; memberlist may call the event
	// delegate from its own goroutines before that.
	ml      atomic.Pointer[memberlist.Memberlist]
	changes chan struct{}
	logger  klog.Logger
	port    int

	mu       sync.Mutex
	peers    []netip.Addr
	inFlight map[netip.Addr]bool
	left     bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// Key derives the 32-byte AES-256 key from the Secret's value. Hashing
// means any string works as the secret: `openssl rand -base64 32` and
// `-base64 128` alike, and MetalLB's memberlist secretkey (which MetalLB
// passes to memberlist through the same SHA-256 step).
func Key(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}

// tunedConfig is memberlist's LAN configuration, tuned for failover in well
// under a second on a LAN, for clusters from 1 to a few hundred nodes.
//
// How long it takes for the others to declare a crashed node dead:
//   - Each node probes one peer every ProbeInterval (100 ms), round-robin,
//     so a crashed node is probed by someone within about
//     ProbeInterval × N / (N−1), 100–200 ms.
//   - A probe fails after ProbeTimeout (50 ms, many times a LAN round trip)
//     plus the indirect probes through IndirectChecks other nodes, within
//     the same ProbeInterval.
//   - The node is then suspect for SuspicionMult × max(1, log10 N) ×
//     ProbeInterval: 200 ms up to 10 nodes, 400 ms at 100. SuspicionMult 2
//     also means no peer confirmations are awaited (memberlist waits for
//     SuspicionMult−2 of them), which would stretch the timeout.
//   - The dead message spreads by gossip every GossipInterval (50 ms).
//
// Total: about 0.3–0.5 s, leaving room for gratuitous ARP and the client's
// retry within the 1 s target. A live node that is only slow has the whole
// suspicion timeout to refute (it hears the suspicion within a gossip
// interval or two), and Lifeguard's awareness stretches its own timeouts
// when it misses acks, so a busy node is not declared dead for a GC pause.
//
// A graceful Leave is seen by the others within one or two gossip
// intervals, not a detection time.
func tunedConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	// Keep gossiping to dead nodes for a minute, so a partition shorter
	// than that heals through memberlist's own refutation.
	c.GossipToTheDeadTime = time.Minute
	// Full state sync is the backstop against lost gossip; cheap at this
	// size.
	c.PushPullInterval = 10 * time.Second
	// Joins and push/pull run over TCP; on a LAN one second is plenty,
	// and it bounds a rejoin attempt at a blackholed peer.
	c.TCPTimeout = time.Second
	// A node that comes back with a new address may reuse its name after
	// this long.
	c.DeadNodeReclaimTime = 10 * time.Second
	c.Label = label
	return c
}

// Start binds to the node's address and starts probing and gossip. The
// node is a cluster of one until Join or SetPeers finds others.
func Start(cfg Config) (*Membership, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("membership needs a node name")
	}
	if !cfg.BindAddr.IsValid() {
		return nil, errors.New("membership needs the node's IP to bind to")
	}
	port := cfg.BindPort
	if port == 0 {
		port = DefaultPort
	}
	m := &Membership{
		changes:  make(chan struct{}, 1),
		logger:   cfg.Logger,
		port:     port,
		inFlight: map[netip.Addr]bool{},
		stop:     make(chan struct{}),
	}
	c := tunedConfig()
	c.Name = cfg.NodeName
	c.BindAddr = cfg.BindAddr.String()
	c.BindPort = port
	c.AdvertiseAddr = cfg.BindAddr.String()
	c.AdvertisePort = port
	if len(cfg.Secret) > 0 {
		c.SecretKey = Key(cfg.Secret)
	}
	c.Events = events{m}
	c.Logger = log.New(logWriter{cfg.Logger}, "", 0)
	if cfg.tune != nil {
		cfg.tune(c)
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(port)), err)
	}
	m.ml.Store(ml)
	members.Set(float64(ml.NumMembers()))
	m.wg.Add(1)
	go m.rejoinLoop()
	return m, nil
}

// Join contacts peers (node IPs; the port is ours) and merges their view
// of the cluster into ours. It returns how many it reached. Reaching none
// is not an error when there are none to reach.
func (m *Membership) Join(peers []netip.Addr) (int, error) {
	var addrs []string
	for _, p := range peers {
		addrs = append(addrs, net.JoinHostPort(p.String(), strconv.Itoa(m.port)))
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	return m.ml.Load().Join(addrs)
}

// SetPeers sets the node IPs that should be members. Every rejoin interval,
// those that are not live members are joined again.
func (m *Membership) SetPeers(peers []netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = slices.Clone(peers)
}

// Members returns the names of the live members, this node included,
// sorted. A suspect node is still live: it owns its IPs until it is
// declared dead.
func (m *Membership) Members() []string {
	nodes := m.ml.Load().Members()
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	members.Set(float64(len(out)))
	return out
}

// Changes delivers a value after the member set changed. Values are
// coalesced: one value may stand for several changes, so read Members
// after receiving.
func (m *Membership) Changes() <-chan struct{} {
	return m.changes
}

// Leave tells the others that this node is going away, so they take over
// its IPs at once instead of after a failure detection. It waits up to
// timeout for the message to go out. The node keeps gossiping until
// Shutdown, so it can still be asked.
func (m *Membership) Leave(timeout time.Duration) error {
	m.mu.Lock()
	m.left = true
	m.mu.Unlock()
	select {
	case <-m.stop:
		return errors.New("membership is shut down")
	default:
	}
	return m.ml.Load().Leave(timeout)
}

// Shutdown stops all gossip and closes the sockets.
func (m *Membership) Shutdown() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.wg.Wait()
	return m.ml.Load().Shutdown()
}

// rejoinLoop joins, once per interval, every peer that is not a live
// member. Each peer has at most one join in flight, so a blackholed peer
// costs one goroutine waiting out TCPTimeout, never a pile of them.
func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		live := map[netip.Addr]bool{}
		for _, n := range m.ml.Load().Members() {
			if ip, ok := netip.AddrFromSlice(n.Addr); ok {
				live[ip.Unmap()] = true
			}
		}
		m.mu.Lock()
		if m.left {
			m.mu.Unlock()
			return
		}
		for _, p := range m.peers {
			if live[p] || m.inFlight[p] {
				continue
			}
			m.inFlight[p] = true
			m.wg.Add(1)
			go func(p netip.Addr) {
				defer m.wg.Done()
				n, err := m.Join([]netip.Addr{p})
				if n > 0 {
					m.logger.V(2).Info("Joined peer", "peer", p)
				} else {
					m.logger.V(5).Info("Peer not reachable", "peer", p, "err", err)
				}
				m.mu.Lock()
				delete(m.inFlight, p)
				m.mu.Unlock()
			}(p)
		}
		m.mu.Unlock()
	}
}

// events turns memberlist's notifications into Changes. The members
// gauge is updated by Members, which the controller calls after every
// change.
type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.m.logger.Info("Member joined", "member", n.Name, "addr", n.Address())
	e.changed()
}

func (e events) NotifyLeave(n *memberlist.Node) {
	e.m.logger.Info("Member left", "member", n.Name, "addr", n.Address())
	e.changed()
}

func (e events) NotifyUpdate(*memberlist.Node) { e.changed() }

// changed must not call into memberlist: memberlist calls the event
// delegate with its node lock held.
func (e events) changed() {
	select {
	case e.m.changes <- struct{}{}:
	default:
	}
}

// logWriter sends memberlist's "[LEVEL] memberlist: ..." lines to klog:
// errors and warnings as they are, the rest at high verbosity.
type logWriter struct{ logger klog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		w.logger.Info("memberlist error", "msg", strings.TrimSpace(strings.TrimPrefix(line, "[ERR]")))
	case strings.HasPrefix(line, "[WARN]"):
		w.logger.V(2).Info("memberlist warning", "msg", strings.TrimSpace(strings.TrimPrefix(line, "[WARN]")))
	case strings.HasPrefix(line, "[INFO]"):
		w.logger.V(2).Info("memberlist", "msg", strings.TrimSpace(strings.TrimPrefix(line, "[INFO]")))
	default:
		w.logger.V(5).Info("memberlist", "msg", line)
	}
	return len(p), nil
}

var _ io.Writer = logWriter{}
