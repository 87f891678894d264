package layer2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
)

var _ announcer.Announcer = (*Announcer)(nil)

// gratuitousSchedule is when, after taking over an IP, gratuitous ARP and
// unsolicited NA are sent. The first switches every client that has the
// old MAC cached; the repeats cover a lost frame (a switch port that was
// still coming up, a busy client) without keeping up a steady noise.
var gratuitousSchedule = []time.Duration{0, 200 * time.Millisecond, time.Second, 3 * time.Second}

// readBufferSize holds any ARP frame and any neighbor solicitation; longer
// packets are truncated, which makes them fail validation, as they should.
const readBufferSize = 1500

// retryReadAfter is how long a read loop waits after an error that is not
// the socket being closed (the interface going down, say), so a persistent
// error costs one check per interval rather than a busy loop.
const retryReadAfter = 100 * time.Millisecond

// ndpConn is the part of *ndp.Conn the responder uses.
type ndpConn interface {
	ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error)
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	Close() error
}

// Announcer answers ARP and NDP for the IPs it is told to announce, on the
// interfaces each IP names. It implements announcer.Announcer. The zero
// value is not usable; use New.
type Announcer struct {
	logger klog.Logger

	// The system's network, replaced in tests.
	interfaceByName func(string) (*net.Interface, error)
	listenARP       func(*net.Interface) (net.PacketConn, error)
	listenNDP       func(*net.Interface) (ndpConn, error)
	listenGroups    func() (groupConn, error)
	interfaceAddrs  func(index int) ([]ifAddr, error)
	// gratuitousSchedule is the package default, replaced in tests.
	gratuitousSchedule []time.Duration

	mu     sync.Mutex
	links  map[string]*link
	closed bool

	// health signals HealthChanges; asked are the interfaces Usable was
	// asked about (guarded by mu).
	health chan struct{}
	asked  map[string]bool
	// conflicts counts other hosts announcing our IPs; onConflict hears
	// of each one counted.
	conflicts  *conflicts
	onConflict atomic.Pointer[func(netip.Addr, net.HardwareAddr)]

	// Gratuitous announcements waiting to be sent, serviced by one
	// goroutine.
	gmu     sync.Mutex
	pending []gratuitous
	quiet   bool // Quiesce was called
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

// gratuitous is one pending round of gratuitous ARP or unsolicited NA.
type gratuitous struct {
	at   time.Time
	link *link
	ip   netip.Addr
	// round indexes gratuitousSchedule.
	round int
}

// New returns an Announcer that announces nothing yet.
func New(logger klog.Logger) *Announcer {
	a := &Announcer{
		logger:             logger,
		interfaceByName:    net.InterfaceByName,
		listenARP:          listenARP,
		listenNDP:          listenNDP,
		listenGroups:       listenGroups,
		interfaceAddrs:     interfaceAddrs,
		gratuitousSchedule: gratuitousSchedule,
		links:              map[string]*link{},
		health:             make(chan struct{}, 1),
		asked:              map[string]bool{},
		wake:               make(chan struct{}, 1),
		done:               make(chan struct{}),
	}
	a.conflicts = newConflicts(ConflictGrace, conflictRepeat, a.stillAnnounces, a.conflictConfirmed)
	a.wg.Add(1)
	go a.gratuitousLoop()
	return a
}

// SetConflictHandler sets the function told of every conflict counted:
// another MAC announced an IP that this node still announced
// ConflictGrace later. It runs on its own goroutine.
func (a *Announcer) SetConflictHandler(f func(ip netip.Addr, mac net.HardwareAddr)) {
	a.onConflict.Store(&f)
}

// stillAnnounces says whether ip is announced on some interface and the
// announcer is not handing over (after Quiesce the new owners announce
// while this node still answers, on purpose).
func (a *Announcer) stillAnnounces(ip netip.Addr) bool {
	a.gmu.Lock()
	quiet := a.quiet
	a.gmu.Unlock()
	if quiet {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.links {
		if (*l.ips.Load()).has(ip) {
			return true
		}
	}
	return false
}

func (a *Announcer) conflictConfirmed(ip netip.Addr, mac net.HardwareAddr) {
	addressConflicts.WithLabelValues(ip.String()).Inc()
	a.logger.Info("Another host announces an IP this node announces", "ip", ip, "mac", mac)
	if f := a.onConflict.Load(); f != nil {
		(*f)(ip, mac)
	}
}

func listenARP(ifi *net.Interface) (net.PacketConn, error) {
	return packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
}

// listenNDP opens an ICMPv6 socket that sees neighbor solicitations only.
//
// It binds to the unspecified address rather than the interface's
// link-local one: a socket bound to an address only receives packets sent
// to that address or to a joined group, so it would miss the unicast
// solicitations that clients send to the IP itself to re-check a cached
// entry (RFC 4861 neighbor unreachability detection). Because such a
// socket sees every interface, the read loop drops packets from other
// interfaces by the received interface index.
func listenNDP(ifi *net.Interface) (ndpConn, error) {
	c, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return nil, err
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	// Advertisements too: another host's for one of our IPs is evidence
	// of split brain (ndpConflict).
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting ICMPv6 filter: %w", err)
	}
	if err := c.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("asking for control messages: %w", err)
	}
	return c, nil
}

// SetAnnouncements implements announcer.Announcer.
func (a *Announcer) SetAnnouncements(ann map[netip.Addr]announcer.Announcement) error {
	want := map[string]ipSet{}
	for ip, an := range ann {
		ip = ip.Unmap().WithZone("")
		for _, name := range an.Interfaces {
			if want[name] == nil {
				want[name] = ipSet{}
			}
			want[name][ip] = struct{}{}
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("layer2 announcer is closed")
	}
	var errs []error
	for name, l := range a.links {
		if _, ok := want[name]; !ok || l.broken() {
			a.logger.V(2).Info("Closing interface", "interface", name, "broken", l.broken())
			l.close()
			delete(a.links, name)
		}
	}
	for name, ips := range want {
		l := a.links[name]
		if l == nil {
			ifi, err := a.interfaceByName(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("interface %s: %w", name, err))
				continue
			}
			l = newLink(a, ifi)
			a.links[name] = l
		}
		added, err := l.set(ips)
		if err != nil {
			errs = append(errs, fmt.Errorf("interface %s: %w", name, err))
		}
		for _, ip := range added {
			a.schedule(l, ip)
		}
	}
	return errors.Join(errs...)
}

// Close stops answering for every IP and closes every socket.
func (a *Announcer) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	for name, l := range a.links {
		l.close()
		delete(a.links, name)
	}
	a.mu.Unlock()
	a.conflicts.close()
	close(a.done)
	a.wg.Wait()
}

// Quiesce stops every gratuitous announcement, pending or future, while
// requests are still answered until Close. It is the first step of a
// handover: the node leaving must not send a late gratuitous ARP that
// pulls clients back from the new owner (and resets their connections),
// yet a client asking meanwhile should still get an answer.
func (a *Announcer) Quiesce() {
	a.gmu.Lock()
	defer a.gmu.Unlock()
	a.quiet = true
	clear(a.pending)
	a.pending = nil
}

// Reannounce starts the gratuitous schedule again for every IP announced
// now. The controller calls it when a node joins: a node that was cut off,
// or had a partial view while starting, may have announced some of this
// node's IPs for a moment. A client that heard its gratuitous ARP keeps its
// MAC for as long as that node's kube-proxy answers, and this node, whose
// own view never changed, would otherwise have no reason to announce again.
func (a *Announcer) Reannounce() {
	now := time.Now()
	var all []gratuitous
	a.mu.Lock()
	for _, l := range a.links {
		for ip := range *l.ips.Load() {
			all = append(all, gratuitous{at: now, link: l, ip: ip})
		}
	}
	a.mu.Unlock()
	a.gmu.Lock()
	if !a.quiet {
		for i := range all {
			all[i].at = a.firstRound(now)
		}
		// An IP already pending restarts its schedule rather than getting
		// a second one, so that repeated joins never pile up rounds.
		type key struct {
			l  *link
			ip netip.Addr
		}
		pending := make(map[key]int, len(a.pending))
		for i, g := range a.pending {
			pending[key{g.link, g.ip}] = i
		}
		for _, g := range all {
			if i, ok := pending[key{g.link, g.ip}]; ok {
				a.pending[i] = g
				continue
			}
			a.pending = append(a.pending, g)
		}
	}
	a.gmu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Announcer) schedule(l *link, ip netip.Addr) {
	a.gmu.Lock()
	if !a.quiet {
		a.pending = append(a.pending, gratuitous{at: a.firstRound(time.Now()), link: l, ip: ip})
	}
	a.gmu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// firstRound is when the first round of a schedule started at now falls
// due: the schedule's first step counts from now like the others (the
// shipped one starts at 0). Called with gmu held.
func (a *Announcer) firstRound(now time.Time) time.Time {
	if len(a.gratuitousSchedule) == 0 {
		return now
	}
	return now.Add(a.gratuitousSchedule[0])
}

// gratuitousLoop sends the gratuitous announcements as they fall due. One
// goroutine for all IPs: a list scan per wake-up is cheap next to the
// packets it sends.
func (a *Announcer) gratuitousLoop() {
	defer a.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var due []gratuitous
		next := time.Time{}
		a.gmu.Lock()
		keep := a.pending[:0]
		for _, g := range a.pending {
			if !g.at.After(now) {
				due = append(due, g)
				if sched := a.gratuitousSchedule; g.round+1 < len(sched) {
					g.at = g.at.Add(sched[g.round+1] - sched[g.round])
					g.round++
				} else {
					continue
				}
			}
			keep = append(keep, g)
			if next.IsZero() || g.at.Before(next) {
				next = g.at
			}
		}
		clear(a.pending[len(keep):])
		a.pending = keep
		a.gmu.Unlock()

		for _, g := range due {
			g.link.sendGratuitous(g.ip)
		}

		wait := time.Hour
		if !next.IsZero() {
			wait = max(0, time.Until(next))
		}
		timer.Reset(wait)
		select {
		case <-a.done:
			return
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// link is one interface: its sockets, read loops and announced IPs.
type link struct {
	a   *Announcer
	ifi *net.Interface
	log klog.Logger

	ips atomic.Pointer[ipSet]
	// addrs are the interface's IPv6 addresses, the sources of its
	// neighbor advertisements.
	addrs *addrCache

	// Guarded by a.mu.
	arp    net.PacketConn
	ndp    ndpConn
	groups *memberships

	// failed is set by a read loop that cannot go on; the next
	// SetAnnouncements replaces the link.
	failed atomic.Bool
	// openErr is why a socket the announced IPs need failed to open at
	// the last set, or empty.
	openErr atomic.Pointer[string]
	// closing is set before the sockets are closed, so the read loops
	// know their errors are expected, whatever form they take.
	closing atomic.Bool
	wg      sync.WaitGroup
}

func newLink(a *Announcer, ifi *net.Interface) *link {
	l := &link{
		a:      a,
		ifi:    ifi,
		log:    a.logger.WithValues("interface", ifi.Name),
		groups: newMemberships(ifi, a.listenGroups),
		addrs:  &addrCache{index: ifi.Index, read: a.interfaceAddrs},
	}
	l.ips.Store(&ipSet{})
	return l
}

func (l *link) broken() bool { return l.failed.Load() }

// set replaces the link's announced IPs, opening the sockets a family
// needs, and returns the IPs that are new. The IPs are published even if a
// socket fails to open, so the other family keeps working.
func (l *link) set(ips ipSet) (added []netip.Addr, err error) {
	v4, v6 := ips.families()
	var errs, openErrs []error
	if v4 && l.arp == nil {
		c, err := l.a.listenARP(l.ifi)
		if err != nil {
			socketErrors.WithLabelValues(protoARP).Inc()
			err = fmt.Errorf("opening ARP socket on %s: %w", l.ifi.Name, err)
			errs, openErrs = append(errs, err), append(openErrs, err)
		} else {
			l.arp = c
			l.wg.Add(1)
			go l.readARP(c)
		}
	}
	if v6 && l.ndp == nil {
		c, err := l.a.listenNDP(l.ifi)
		if err != nil {
			socketErrors.WithLabelValues(protoNDP).Inc()
			err = fmt.Errorf("opening NDP socket on %s: %w", l.ifi.Name, err)
			errs, openErrs = append(errs, err), append(openErrs, err)
		} else {
			l.ndp = c
			l.wg.Add(1)
			go l.readNDP(c)
		}
	}
	if l.ndp != nil {
		if err := l.joinGroups(ips); err != nil {
			errs = append(errs, err)
		}
	}

	msg := ""
	if len(openErrs) > 0 {
		msg = errors.Join(openErrs...).Error()
	}
	if prev := l.openErr.Swap(&msg); prev == nil && msg != "" || prev != nil && *prev != msg {
		l.a.healthChanged()
	}

	old := *l.ips.Load()
	l.ips.Store(&ips)
	for ip := range ips {
		if !old.has(ip) {
			added = append(added, ip)
		}
	}
	if len(added) > 0 || len(old) != len(ips) {
		l.log.V(2).Info("Announced IPs changed", "count", len(ips), "added", len(added))
	}
	return added, errors.Join(errs...)
}

// joinGroups makes the interface receive the solicited-node multicast
// group of every announced IPv6 address, and leaves the others. Without
// the membership, the kernel drops solicitations for the IP before any
// socket sees them. Several IPs can share a group.
func (l *link) joinGroups(ips ipSet) error {
	want := map[netip.Addr]bool{}
	for ip := range ips {
		if ip.Is6() {
			if g, err := ndp.SolicitedNodeMulticast(ip); err == nil {
				want[g] = true
			}
		}
	}
	if err := l.groups.set(want); err != nil {
		socketErrors.WithLabelValues(protoNDP).Inc()
		return err
	}
	return nil
}

func (l *link) close() {
	l.closing.Store(true)
	l.ips.Store(&ipSet{})
	if l.arp != nil {
		l.arp.Close()
	}
	if l.ndp != nil {
		l.ndp.Close()
	}
	l.groups.close()
	l.wg.Wait()
}

// sendGratuitous announces ip if the link still announces it.
func (l *link) sendGratuitous(ip netip.Addr) {
	if !(*l.ips.Load()).has(ip) {
		return
	}
	l.a.mu.Lock()
	arpConn, ndpConn := l.arp, l.ndp
	l.a.mu.Unlock()
	if ip.Is4() && arpConn != nil {
		for _, f := range gratuitousARP(ip, l.ifi.HardwareAddr) {
			if _, err := arpConn.WriteTo(f, &packet.Addr{HardwareAddr: broadcastMAC}); err != nil {
				socketErrors.WithLabelValues(protoARP).Inc()
				l.log.V(2).Info("Sending gratuitous ARP failed", "ip", ip, "err", err)
				return
			}
		}
		gratuitousSent.WithLabelValues(protoARP).Inc()
	}
	if ip.Is6() && ndpConn != nil {
		if err := l.sendNA(ndpConn, unsolicitedNA(ip, l.ifi.HardwareAddr), allNodes); err != nil {
			socketErrors.WithLabelValues(protoNDP).Inc()
			l.log.V(2).Info("Sending unsolicited neighbor advertisement failed", "ip", ip, "err", err)
			return
		}
		gratuitousSent.WithLabelValues(protoNDP).Inc()
	}
}

func (l *link) readARP(c net.PacketConn) {
	defer l.wg.Done()
	buf := make([]byte, readBufferSize)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if l.readFailed(protoARP, err) {
				return
			}
			continue
		}
		announced := *l.ips.Load()
		if ip, mac, ok := arpConflict(buf[:n], l.ifi.HardwareAddr, announced); ok {
			l.a.conflicts.saw(ip, mac)
			continue
		}
		reply := arpReply(buf[:n], l.ifi.HardwareAddr, announced)
		if reply == nil {
			continue
		}
		if _, err := c.WriteTo(reply, &packet.Addr{HardwareAddr: net.HardwareAddr(reply[0:6])}); err != nil {
			socketErrors.WithLabelValues(protoARP).Inc()
			l.log.V(4).Info("Sending ARP reply failed", "err", err)
			continue
		}
		requestsAnswered.WithLabelValues(protoARP).Inc()
	}
}

func (l *link) readNDP(c ndpConn) {
	defer l.wg.Done()
	buf := make([]byte, readBufferSize)
	for {
		n, cm, src, err := c.ReadRaw(buf)
		if err != nil {
			if l.readFailed(protoNDP, err) {
				return
			}
			continue
		}
		req := nsRequest{msg: buf[:n], src: src.WithZone(""), hopLimit: -1}
		if cm != nil {
			req.hopLimit = cm.HopLimit
			req.ifIndex = cm.IfIndex
			if d, ok := netip.AddrFromSlice(cm.Dst); ok {
				req.dst = d
			}
		}
		announced := *l.ips.Load()
		if ip, mac, ok := ndpConflict(req, l.ifi.Index, l.ifi.HardwareAddr, announced); ok {
			l.a.conflicts.saw(ip, mac)
			continue
		}
		reply := ndpReply(req, l.ifi.Index, l.ifi.HardwareAddr, announced)
		if reply == nil {
			continue
		}
		if err := l.sendNA(c, reply.msg, reply.dst); err != nil {
			socketErrors.WithLabelValues(protoNDP).Inc()
			l.log.V(4).Info("Sending neighbor advertisement failed", "err", err)
			continue
		}
		requestsAnswered.WithLabelValues(protoNDP).Inc()
	}
}

// readFailed handles a read error and says whether the loop must end:
// when the socket was closed, or when the interface is gone or was
// replaced (its index changed), since a socket bound to the old index
// will never see a packet again. Other errors (the link going down and up)
// are waited out.
func (l *link) readFailed(proto string, err error) (stop bool) {
	if l.closing.Load() || errors.Is(err, net.ErrClosed) {
		return true
	}
	socketErrors.WithLabelValues(proto).Inc()
	// The link may have gone down (ENETDOWN): let the controller look.
	l.a.healthChanged()
	ifi, lookupErr := l.a.interfaceByName(l.ifi.Name)
	if lookupErr != nil || ifi.Index != l.ifi.Index || ifi.HardwareAddr.String() != l.ifi.HardwareAddr.String() {
		l.log.Info("Interface is gone or was replaced; reopening on the next sync", "protocol", proto, "err", err)
		l.failed.Store(true)
		return true
	}
	l.log.V(2).Info("Read failed; retrying", "protocol", proto, "err", err)
	time.Sleep(retryReadAfter)
	return false
}

// maxSourceTries bounds the addresses tried for one advertisement when the
// kernel refuses a source (an address removed since it was read).
const maxSourceTries = 3

// sendNA sends na to dst from an address of this interface (naSources),
// trying the next candidate if the kernel refuses one, and reading the
// addresses again once if none worked. Only when the interface has no
// usable IPv6 address at all does the kernel choose: an answer from an odd
// source still resolves the IP, silence would not.
func (l *link) sendNA(c ndpConn, na *ndp.NeighborAdvertisement, dst netip.Addr) error {
	announced := *l.ips.Load()
	var err error
	for _, fresh := range []bool{false, true} {
		addrs, rerr := l.addrs.get(time.Now(), fresh)
		if rerr != nil {
			l.log.V(2).Info("Reading the interface's addresses failed", "err", rerr)
		}
		srcs := naSources(dst, addrs, announced)
		for _, src := range srcs[:min(len(srcs), maxSourceTries)] {
			cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: src.AsSlice(), IfIndex: l.ifi.Index}
			if err = c.WriteTo(na, cm, dst); err == nil {
				return nil
			}
			l.log.V(4).Info("Sending a neighbor advertisement failed", "src", src, "dst", dst, "err", err)
		}
		if fresh && len(srcs) == 0 {
			l.log.V(2).Info("No IPv6 address on the interface to send a neighbor advertisement from; the kernel chooses", "dst", dst)
			return c.WriteTo(na, nil, dst)
		}
	}
	return err
}
