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
// with AES-256-GCM under keys derived from a shared Secret (package
// keyring), which SetKeys switches at run time for a rotation.
//
// Besides the live set, a Membership reports what the split-brain guard
// (package quorum) needs: which members left on purpose, whether this
// node has heard from any other member within ContactWindow, and every
// member's metadata (package nodemeta), which SetMeta publishes for this
// node.
//
// It also carries the claim records of package owner (claims.go): which
// layer 2 IPs each node announces, so that an IP stays with its holder
// when a node returns.
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
	"bytes"
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

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/keyring"
)

// DefaultPort is the memberlist port, TCP and UDP, MetalLB's too.
const DefaultPort = 7946

// label is sent with every packet and checked on receipt, so announcers of
// another system on the same port (a MetalLB speaker left running during a
// migration, say) never merge with ours even if they share the key.
const label = "cloud-provider-baremetal"

// ContactWindow is how recently a node must have heard from another
// member (an acknowledged probe, a probe received) for View's Contact.
// contactLoop confirms a lapse at its next check, so a node whose gossip
// is cut loses contact 250–300 ms after the cut: by then the others can
// at most just be declaring it dead (a probe interval plus the 200 ms
// suspicion timeout, see tunedConfig), so it falls silent before they
// take over its IPs. A healthy node hears from its peers every 50 ms or
// so.
const ContactWindow = 200 * time.Millisecond

// metaTimeout bounds the wait for a metadata update to be sent.
const metaTimeout = time.Second

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
	// Keys are the gossip keys. Nil means unencrypted gossip, only
	// sensible in tests.
	Keys *keyring.Set
	// Meta is this node's metadata at the start (see SetMeta).
	Meta []byte
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
	name    string
	port    int

	// keyring is memberlist's, nil without encryption; keysMu serializes
	// SetKeys.
	keyring *memberlist.Keyring
	keysMu  sync.Mutex

	// meta is this node's metadata; metaChanged asks the updater to
	// publish it.
	meta        atomic.Pointer[[]byte]
	metaChanged chan struct{}

	// lastContact is when another member was last heard from (Unix
	// nanoseconds); stale says whether that was longer ago than
	// ContactWindow when last checked.
	lastContact atomic.Int64
	stale       atomic.Bool

	// claims are the claim records, this node's and the others' (claims.go).
	claims *claims

	mu       sync.Mutex
	peers    []netip.Addr
	inFlight map[netip.Addr]bool
	// stopping is set by Leave; rejoins stop then.
	stopping bool
	// live are the live members by name, kept from memberlist's events,
	// which it delivers under its own lock: the Nodes that Members
	// returns are memberlist's own and change under a reader's feet.
	live map[string]member
	// left are members that left on purpose and have not come back;
	// leaving are live members that said they are about to. (memberlist
	// itself does not tell its callers a leave from a death.)
	left    map[string]bool
	leaving map[string]bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// member is what is known of one live member.
type member struct {
	addr netip.Addr
	port uint16
	meta []byte
}

// View is this node's view of the cluster, for the split-brain guard.
type View struct {
	// Members are the live members, this node included, with their
	// metadata. A suspected member is live until it is declared dead.
	Members map[string][]byte
	// Left are the members that left on purpose (a graceful shutdown)
	// and have not joined again.
	Left map[string]bool
	// Contact says whether this node heard from another member within
	// ContactWindow.
	Contact bool
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
		changes:     make(chan struct{}, 1),
		metaChanged: make(chan struct{}, 1),
		logger:      cfg.Logger,
		name:        cfg.NodeName,
		port:        port,
		inFlight:    map[netip.Addr]bool{},
		live:        map[string]member{},
		left:        map[string]bool{},
		leaving:     map[string]bool{},
		stop:        make(chan struct{}),
		claims:      newClaims(cfg.NodeName, time.Now()),
	}
	meta := slices.Clone(cfg.Meta)
	m.meta.Store(&meta)
	m.stale.Store(true)
	c := tunedConfig()
	c.Name = cfg.NodeName
	c.BindAddr = cfg.BindAddr.String()
	c.BindPort = port
	c.AdvertiseAddr = cfg.BindAddr.String()
	c.AdvertisePort = port
	if cfg.Keys != nil {
		ring, err := memberlist.NewKeyring(cfg.Keys.Accepted, cfg.Keys.Primary)
		if err != nil {
			return nil, fmt.Errorf("memberlist keys: %w", err)
		}
		c.Keyring = ring
		m.keyring = ring
		recordKeys(ring.GetKeys())
	}
	c.Events = events{m}
	c.Delegate = delegate{m}
	c.Ping = pings{m}
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
	m.wg.Add(4)
	go m.rejoinLoop()
	go m.metaLoop()
	go m.contactLoop()
	go m.claimLoop()
	return m, nil
}

// SetKeys makes keys the gossip keys: keys.Primary encrypts, every key
// decrypts, and keys no longer listed are dropped (package keyring says in
// which order, and why that is safe while packets are being decrypted).
// It fails if gossip was started without encryption, which cannot be
// turned on at run time.
func (m *Membership) SetKeys(keys keyring.Set) error {
	if m.keyring == nil {
		return errors.New("gossip runs without encryption (no --memberlist-secret at start); restart to use keys")
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	steps := keyring.Plan(m.keyring.GetKeys(), keys)
	for _, st := range steps {
		var err error
		switch st.Op {
		case keyring.Add:
			err = m.keyring.AddKey(st.Key)
		case keyring.Use:
			err = m.keyring.UseKey(st.Key)
		case keyring.Remove:
			err = m.keyring.RemoveKey(st.Key)
		}
		if err != nil {
			return fmt.Errorf("memberlist keyring: %v key %s: %w", st.Op, keyring.Fingerprint(st.Key), err)
		}
	}
	if len(steps) > 0 {
		keys := m.keyring.GetKeys()
		m.logger.Info("Memberlist keys changed", "primary", keyring.Fingerprint(keys[0]), "keys", len(keys))
		recordKeys(keys)
	}
	return nil
}

// SetMeta sets this node's metadata (at most memberlist.MetaMaxSize
// bytes) and, if it changed, publishes it to the others in the background.
func (m *Membership) SetMeta(meta []byte) {
	if len(meta) > memberlist.MetaMaxSize {
		m.logger.Error(nil, "Node metadata too long; not published", "bytes", len(meta), "max", memberlist.MetaMaxSize)
		return
	}
	if bytes.Equal(*m.meta.Load(), meta) {
		return
	}
	meta = slices.Clone(meta)
	m.meta.Store(&meta)
	select {
	case m.metaChanged <- struct{}{}:
	default:
	}
}

// metaLoop publishes metadata changes, one at a time, outside the caller:
// UpdateNode waits until the update has been sent.
func (m *Membership) metaLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.metaChanged:
		}
		if err := m.ml.Load().UpdateNode(metaTimeout); err != nil {
			m.logger.V(2).Info("Publishing node metadata", "err", err)
		}
	}
}

// contacted notes that another member was heard from.
func (m *Membership) contacted() {
	m.lastContact.Store(time.Now().UnixNano())
	if m.stale.Swap(false) {
		m.changed()
	}
}

// contactCheck is how often contactLoop looks.
const contactCheck = ContactWindow / 5

// contactLoop notices when contact goes stale, a few times per window.
//
// A lapse counts only if it is still there at the next check: on a busy
// machine the members' packets often arrive a little late, together, and
// are read a few milliseconds after the window ran out. And a gap that
// this process itself slept through (starved of CPU, its own checks came
// late) is no evidence of a cut at all: the packets that arrived meanwhile
// wait in the socket buffers, and the loop gives memberlist two checks'
// time to read them before it judges. A node whose gossip is really cut
// keeps running and checking on time, so this adds one check, which
// ContactWindow allows for.
func (m *Membership) contactLoop() {
	defer m.wg.Done()
	t := time.NewTicker(contactCheck)
	defer t.Stop()
	last, holdUntil := time.Now(), time.Time{}
	lapsed := false
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		if now.Sub(last) > 3*contactCheck {
			holdUntil = now.Add(2 * contactCheck)
		}
		last = now
		if now.Before(holdUntil) || m.stale.Load() {
			lapsed = false
			continue
		}
		if now.Sub(time.Unix(0, m.lastContact.Load())) <= ContactWindow {
			lapsed = false
			continue
		}
		if !lapsed {
			lapsed = true
			continue
		}
		lapsed = false
		if !m.stale.Swap(true) {
			m.changed()
		}
	}
}

// View returns this node's view of the cluster.
func (m *Membership) View() View {
	v := View{Members: map[string][]byte{}, Left: map[string]bool{}}
	// contactLoop decides when contact is lost (it forgives gaps this
	// process slept through); contacted when it is back.
	v.Contact = !m.stale.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, mb := range m.live {
		v.Members[name] = mb.meta
	}
	for name := range m.left {
		v.Left[name] = true
	}
	return v
}

// changed signals Changes without blocking.
func (m *Membership) changed() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
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
	n, err := m.ml.Load().Join(addrs)
	if n > 0 {
		// A join is a push/pull over TCP with a member, which proves
		// contact as well as a probe does.
		m.contacted()
	}
	return n, err
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
	m.mu.Lock()
	out := make([]string, 0, len(m.live))
	for name := range m.live {
		out = append(out, name)
	}
	m.mu.Unlock()
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
//
// Before the leave itself it tells every live member that it is leaving,
// so that they count it as gone on purpose (View's Left) and not as a
// node that may be alive behind a partition.
func (m *Membership) Leave(timeout time.Duration) error {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	select {
	case <-m.stop:
		return errors.New("membership is shut down")
	default:
	}
	m.announceLeave(min(timeout/2, leaveNoticeTimeout))
	return m.ml.Load().Leave(timeout)
}

// leaveNoticeTimeout bounds the wait for the leave notices.
const leaveNoticeTimeout = 300 * time.Millisecond

// leaveNotice starts the user message saying that a node is leaving; the
// node's name follows.
const leaveNotice = 'L'

// announceLeave sends the leave notice to every live member over TCP, in
// parallel, and waits for the sends up to timeout.
func (m *Membership) announceLeave(timeout time.Duration) {
	ml := m.ml.Load()
	msg := append([]byte{leaveNotice}, m.name...)
	var others []memberlist.Node
	m.mu.Lock()
	for name, mb := range m.live {
		if name != m.name {
			others = append(others, memberlist.Node{Name: name, Addr: mb.addr.AsSlice(), Port: mb.port})
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, to := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ml.SendReliable(&to, msg); err != nil {
				m.logger.V(2).Info("Telling a member that this node leaves", "member", to.Name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
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
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			return
		}
		live := map[netip.Addr]bool{}
		for _, mb := range m.live {
			live[mb.addr] = true
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

// events turns memberlist's notifications into Changes and keeps the live
// set. The members gauge is updated by Members, which the controller calls
// after every change.
//
// memberlist calls these with its node lock held, so they copy what they
// need from the Node and must not call into memberlist.
type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.m.logger.Info("Member joined", "member", n.Name, "addr", n.Address())
	e.m.mu.Lock()
	e.m.live[n.Name] = memberOf(n)
	delete(e.m.left, n.Name)
	delete(e.m.leaving, n.Name)
	e.m.mu.Unlock()
	if n.Name != e.m.name {
		e.m.claims.sendTo(n.Name)
	}
	e.m.changed()
}

func (e events) NotifyLeave(n *memberlist.Node) {
	e.m.mu.Lock()
	left := e.m.leaving[n.Name]
	delete(e.m.live, n.Name)
	delete(e.m.leaving, n.Name)
	if left {
		e.m.left[n.Name] = true
	}
	e.m.mu.Unlock()
	// Whatever it claimed is void; its next process sends a new record.
	e.m.claims.table.Forget(n.Name)
	e.m.logger.Info("Member left", "member", n.Name, "addr", n.Address(), "onPurpose", left)
	e.m.changed()
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	e.m.mu.Lock()
	e.m.live[n.Name] = memberOf(n)
	e.m.mu.Unlock()
	e.m.changed()
}

func memberOf(n *memberlist.Node) member {
	ip, _ := netip.AddrFromSlice(n.Addr)
	return member{addr: ip.Unmap(), port: n.Port, meta: slices.Clone(n.Meta)}
}

// delegate gives memberlist this node's metadata and claim record, and
// hears leave notices and the others' claim records. Broadcasts are
// unused.
type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	meta := *d.m.meta.Load()
	if len(meta) > limit {
		return nil
	}
	return meta
}

// NotifyMsg hears leave notices (see Leave). One that arrives after the
// member is gone already still marks it as left.
func (d delegate) NotifyMsg(b []byte) {
	if d.m.receiveClaims(b) {
		d.m.changed()
		return
	}
	if len(b) < 2 || b[0] != leaveNotice {
		return
	}
	name := string(b[1:])
	d.m.mu.Lock()
	if _, live := d.m.live[name]; live {
		d.m.leaving[name] = true
	} else {
		d.m.left[name] = true
	}
	d.m.mu.Unlock()
	d.m.changed()
}

func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is this node's claim record, which push/pull carries.
func (d delegate) LocalState(join bool) []byte { return d.m.claims.localState() }

// MergeRemoteState takes the peer's claim record.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	if d.m.receiveClaims(buf) {
		d.m.changed()
	}
}

// pings hears about probes: an ack to this node's probe, or a probe it
// acknowledges, means another member got through to it.
type pings struct{ m *Membership }

func (p pings) AckPayload() []byte {
	p.m.contacted()
	return nil
}

func (p pings) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) { p.m.contacted() }

// logWriter sends memberlist's "[LEVEL] memberlist: ..." lines to klog:
// errors and warnings as they are, the rest at high verbosity.
type logWriter struct{ logger klog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.HasPrefix(line, "[ERR]") && strings.Contains(strings.ToLower(line), "decrypt"):
		// A peer with a key this node does not hold: a rotation step
		// skipped, or a node with the wrong Secret.
		decryptErrors.Inc()
		w.logger.Info("memberlist error", "msg", strings.TrimSpace(strings.TrimPrefix(line, "[ERR]")))
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

var (
	_ io.Writer                = logWriter{}
	_ memberlist.EventDelegate = events{}
	_ memberlist.Delegate      = delegate{}
	_ memberlist.PingDelegate  = pings{}
)
