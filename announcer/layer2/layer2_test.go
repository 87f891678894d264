package layer2

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
	"k8s.io/klog/v2/ktesting"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
)

// fakeARP is a raw socket: frames pushed into in are read, frames written
// land in out.
type fakeARP struct {
	in     chan []byte
	out    chan []byte
	once   sync.Once
	closed chan struct{}
}

func newFakeARP() *fakeARP {
	return &fakeARP{in: make(chan []byte, 16), out: make(chan []byte, 64), closed: make(chan struct{})}
}

func (c *fakeARP) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		return copy(b, f), nil, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeARP) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case c.out <- slices.Clone(b):
	default: // a test that does not read drops frames
	}
	return len(b), nil
}

func (c *fakeARP) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *fakeARP) LocalAddr() net.Addr              { return nil }
func (c *fakeARP) SetDeadline(time.Time) error      { return nil }
func (c *fakeARP) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeARP) SetWriteDeadline(time.Time) error { return nil }

type sentNA struct {
	na  *ndp.NeighborAdvertisement
	dst netip.Addr
	// cm is the control message sent with it: nil lets the kernel
	// choose the source.
	cm *ipv6.ControlMessage
}

// src is the source address the NA was sent from, invalid if the kernel
// chose.
func (s sentNA) src() netip.Addr {
	if s.cm == nil {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(s.cm.Src)
	return a
}

type fakeNDP struct {
	in     chan nsRequest
	out    chan sentNA
	once   sync.Once
	closed chan struct{}

	mu sync.Mutex
	// refuse are sources the kernel refuses (EINVAL: not an address
	// of the host any more).
	refuse map[netip.Addr]bool
}

func newFakeNDP() *fakeNDP {
	return &fakeNDP{in: make(chan nsRequest, 16), out: make(chan sentNA, 64), closed: make(chan struct{})}
}

func (c *fakeNDP) ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error) {
	select {
	case r := <-c.in:
		return copy(b, r.msg), &ipv6.ControlMessage{HopLimit: r.hopLimit, IfIndex: r.ifIndex}, r.src, nil
	case <-c.closed:
		return 0, nil, netip.Addr{}, net.ErrClosed
	}
}

func (c *fakeNDP) WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error {
	sent := sentNA{m.(*ndp.NeighborAdvertisement), dst, cm}
	c.mu.Lock()
	refused := c.refuse[sent.src()]
	c.mu.Unlock()
	if refused {
		return errors.New("invalid argument")
	}
	select {
	case c.out <- sent:
	default:
	}
	return nil
}

// fakeGroups is a membership socket; all of them share one set, as the
// interface's memberships do.
type fakeGroups struct {
	mu     *sync.Mutex
	groups map[netip.Addr]int
	n      int
}

func (c *fakeGroups) JoinGroup(_ *net.Interface, g net.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= groupsPerSocket {
		return errors.New("cannot allocate memory")
	}
	c.n++
	c.groups[netip.MustParseAddr(g.String())]++
	return nil
}

func (c *fakeGroups) LeaveGroup(_ *net.Interface, g net.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	a := netip.MustParseAddr(g.String())
	if c.groups[a]--; c.groups[a] == 0 {
		delete(c.groups, a)
	}
	return nil
}

func (c *fakeGroups) Close() error {
	return nil
}

func (c *fakeNDP) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// fakeNet is a machine with interfaces eth0 (index 7) and eth1 (index 8).
type fakeNet struct {
	mu      sync.Mutex
	arp     map[string]*fakeARP
	ndp     map[string]*fakeNDP
	groups  map[netip.Addr]int
	sockets int
	// addrs are the IPv6 addresses of each interface by index.
	addrs map[int][]ifAddr
}

// ourLL and ourGlobal are eth0's addresses.
var (
	ourLL     = netip.MustParseAddr("fe80::ff:fe00:11")
	ourGlobal = netip.MustParseAddr("2001:db8:1::11")
)

func (fn *fakeNet) joined() []netip.Addr {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	var out []netip.Addr
	for g := range fn.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// announced returns the IPs answered for on each interface. It lives with
// the tests because only they read the set back.
func (a *Announcer) announced() map[string][]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]netip.Addr{}
	for name, l := range a.links {
		for ip := range *l.ips.Load() {
			out[name] = append(out[name], ip)
		}
	}
	return out
}

func newTestAnnouncer(t *testing.T) (*Announcer, *fakeNet) {
	t.Helper()
	fn := &fakeNet{arp: map[string]*fakeARP{}, ndp: map[string]*fakeNDP{}, groups: map[netip.Addr]int{},
		addrs: map[int][]ifAddr{ourIndex: addrs("fe80::ff:fe00:11/64", "2001:db8:1::11/64")}}
	a := New(ktesting.NewLogger(t, ktesting.NewConfig()))
	a.interfaceByName = func(name string) (*net.Interface, error) {
		switch name {
		case "eth0":
			return &net.Interface{Name: name, Index: ourIndex, HardwareAddr: ourMAC}, nil
		case "eth1":
			return &net.Interface{Name: name, Index: ourIndex + 1, HardwareAddr: otherMAC}, nil
		}
		return nil, errors.New("no such network interface")
	}
	a.listenARP = func(ifi *net.Interface) (net.PacketConn, error) {
		fn.mu.Lock()
		defer fn.mu.Unlock()
		c := newFakeARP()
		fn.arp[ifi.Name] = c
		return c, nil
	}
	a.listenNDP = func(ifi *net.Interface) (ndpConn, error) {
		fn.mu.Lock()
		defer fn.mu.Unlock()
		c := newFakeNDP()
		fn.ndp[ifi.Name] = c
		return c, nil
	}
	a.interfaceAddrs = func(index int) ([]ifAddr, error) {
		fn.mu.Lock()
		defer fn.mu.Unlock()
		return slices.Clone(fn.addrs[index]), nil
	}
	a.listenGroups = func() (groupConn, error) {
		fn.mu.Lock()
		defer fn.mu.Unlock()
		fn.sockets++
		return &fakeGroups{mu: &fn.mu, groups: fn.groups}, nil
	}
	t.Cleanup(a.Close)
	return a, fn
}

func (fn *fakeNet) arpConn(name string) *fakeARP {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.arp[name]
}

func (fn *fakeNet) ndpConn(name string) *fakeNDP {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.ndp[name]
}

func on(ifaces ...string) announcer.Announcement {
	return announcer.Announcement{Pool: "default", Interfaces: ifaces}
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

func none[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestAnnouncerAnswersAndAnnounces(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0}

	err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("eth0"), vip6: on("eth0")})
	if err != nil {
		t.Fatal(err)
	}
	arpc, ndpc := fn.arpConn("eth0"), fn.ndpConn("eth0")
	if arpc == nil || ndpc == nil {
		t.Fatalf("sockets not opened: arp %v ndp %v", arpc, ndpc)
	}

	// Takeover: gratuitous ARP request and reply, and an unsolicited NA.
	for range 2 {
		f := recv(t, arpc.out, "gratuitous ARP")
		if r := arpReply(f, ourMAC, set(vip.String())); r != nil {
			t.Error("gratuitous ARP looks like a request we would answer")
		}
	}
	na := recv(t, ndpc.out, "unsolicited NA")
	if na.dst != allNodes {
		t.Errorf("unsolicited NA sent to %s, want %s", na.dst, allNodes)
	}
	checkNA(t, na.na, vip6, false)
	if got, want := fn.joined(), []netip.Addr{snm(t, vip6)}; !slices.Equal(got, want) {
		t.Errorf("joined groups %v, want %v", got, want)
	}

	// Requests are answered.
	req := request(t, broadcastMAC, vip)
	arpc.in <- req
	checkARPReply(t, recv(t, arpc.out, "ARP reply"), req)
	ndpc.in <- nsRequest{msg: nsBytes(t, vip6, sourceLLA(clientMAC)), src: client6, hopLimit: 255, ifIndex: ourIndex}
	got := recv(t, ndpc.out, "NA")
	if got.dst != client6 {
		t.Errorf("NA sent to %s, want %s", got.dst, client6)
	}
	checkNA(t, got.na, vip6, true)

	// After the IPs are withdrawn, nothing is answered and the sockets
	// are closed.
	if err := a.SetAnnouncements(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arpc.closed:
	default:
		t.Error("ARP socket of an unused interface is still open")
	}
	if len(a.announced()) != 0 {
		t.Errorf("announced() = %v after withdrawing everything", a.announced())
	}
}

func TestAnnouncerStopsAnsweringWithdrawnIP(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0}
	other := netip.MustParseAddr("203.0.113.201")
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("eth0"), other: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	arpc := fn.arpConn("eth0")
	for range 4 {
		recv(t, arpc.out, "gratuitous ARP")
	}
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{other: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	none(t, arpc.out, "gratuitous ARP for an IP already announced")
	arpc.in <- request(t, broadcastMAC, vip)
	none(t, arpc.out, "reply for a withdrawn IP")
	req := request(t, broadcastMAC, other)
	arpc.in <- req
	checkARPReply(t, recv(t, arpc.out, "ARP reply"), req)
}

func TestAnnouncerInterfaces(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0}
	err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{
		vip:                                  on("eth0", "eth1"),
		netip.MustParseAddr("203.0.113.201"): on("eth9"),
	})
	if err == nil {
		t.Error("no error for a missing interface")
	}
	got := a.announced()
	if !slices.Equal(got["eth0"], []netip.Addr{vip}) || !slices.Equal(got["eth1"], []netip.Addr{vip}) || len(got) != 2 {
		t.Errorf("announced() = %v, want %s on eth0 and eth1", got, vip)
	}
	// eth1 answers with its own MAC; a v4-only interface has no NDP socket.
	c := fn.arpConn("eth1")
	for range 2 {
		f := recv(t, c.out, "gratuitous ARP on eth1")
		if src := net.HardwareAddr(f[6:12]); src.String() != otherMAC.String() {
			t.Errorf("eth1 frame from %s, want %s", src, otherMAC)
		}
	}
	if fn.ndpConn("eth0") != nil {
		t.Error("NDP socket opened for an IPv4-only interface")
	}
}

func TestGratuitousRepeats(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond}
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	c := fn.arpConn("eth0")
	for i := range 6 {
		recv(t, c.out, "gratuitous ARP "+string(rune('0'+i)))
	}
	none(t, c.out, "gratuitous ARP beyond the schedule")
}

func TestQuiesceStopsGratuitousOnly(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0, 100 * time.Millisecond}
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	c := fn.arpConn("eth0")
	for range 2 {
		recv(t, c.out, "gratuitous ARP")
	}
	a.Quiesce()
	none(t, c.out, "gratuitous ARP after Quiesce")
	req := request(t, broadcastMAC, vip)
	c.in <- req
	checkARPReply(t, recv(t, c.out, "ARP reply after Quiesce"), req)
}

// TestReannounceRepeatsTheSchedule: Reannounce sends the gratuitous
// announcements of every announced IP again, once per IP even if called
// twice in a row, and nothing after Quiesce.
func TestReannounceRepeatsTheSchedule(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0}
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip: on("eth0"), vip6: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	arpc, ndpc := fn.arpConn("eth0"), fn.ndpConn("eth0")
	for range 2 {
		recv(t, arpc.out, "gratuitous ARP")
	}
	recv(t, ndpc.out, "unsolicited NA")
	none(t, arpc.out, "gratuitous ARP beyond the schedule")

	// Two calls while the first round is still pending make one
	// schedule, not two. The first step is late enough that the second
	// call comes before it even on a loaded machine; with a step at 0 the
	// sender could already have sent it, and the second call would then
	// rightly start a new schedule.
	a.gratuitousSchedule = []time.Duration{500 * time.Millisecond, 550 * time.Millisecond}
	a.Reannounce()
	a.Reannounce()
	for range 4 { // request and reply, twice
		recv(t, arpc.out, "gratuitous ARP after Reannounce")
	}
	for range 2 {
		recv(t, ndpc.out, "unsolicited NA after Reannounce")
	}
	none(t, arpc.out, "gratuitous ARP beyond one schedule")

	a.Quiesce()
	a.Reannounce()
	none(t, arpc.out, "gratuitous ARP after Quiesce")
}

// TestManyIPv6AddressesNeedSeveralSockets announces more IPv6 addresses
// than one socket may hold memberships for.
func TestManyIPv6AddressesNeedSeveralSockets(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = nil
	ann := map[netip.Addr]announcer.Announcement{}
	base := vip6.As16()
	const n = 3*groupsPerSocket + 7
	for i := range n {
		b := base
		b[13], b[14], b[15] = byte(i>>16), byte(i>>8), byte(i)
		ann[netip.AddrFrom16(b)] = on("eth0")
	}
	if err := a.SetAnnouncements(ann); err != nil {
		t.Fatal(err)
	}
	if got := len(fn.joined()); got != n {
		t.Errorf("joined %d groups, want %d", got, n)
	}
	if fn.sockets != 4 {
		t.Errorf("used %d sockets, want 4", fn.sockets)
	}
	// Withdrawing all but one leaves one group.
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip6: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	if got := fn.joined(); !slices.Equal(got, []netip.Addr{snm(t, vip6)}) {
		t.Errorf("joined %v, want only %s", got, snm(t, vip6))
	}
}

func TestNewWiresTheSystem(t *testing.T) {
	a := New(ktesting.NewLogger(t, ktesting.NewConfig()))
	defer a.Close()
	if a.interfaceByName == nil || a.listenARP == nil || a.listenNDP == nil || a.listenGroups == nil || a.interfaceAddrs == nil {
		t.Fatal("New left a system hook unset")
	}
}

// TestNASentFromTheInterfacesAddress: every advertisement leaves from an
// address of the interface it is sent on, of the destination's scope
// (RFC 4861 section 4.4), with hop limit 255 and that interface's index;
// never from the announced IP. A source the kernel refuses is replaced by
// the next; with no address at all the kernel chooses rather than the
// client getting no answer.
func TestNASentFromTheInterfacesAddress(t *testing.T) {
	a, fn := newTestAnnouncer(t)
	a.gratuitousSchedule = []time.Duration{0}
	if err := a.SetAnnouncements(map[netip.Addr]announcer.Announcement{vip6: on("eth0")}); err != nil {
		t.Fatal(err)
	}
	c := fn.ndpConn("eth0")
	check := func(what string, got sentNA, dst, src netip.Addr) {
		t.Helper()
		if got.dst != dst || got.src() != src {
			t.Errorf("%s: sent %s -> %s, want %s -> %s", what, got.src(), got.dst, src, dst)
		}
		if got.cm != nil && (got.cm.HopLimit != ndp.HopLimit || got.cm.IfIndex != ourIndex) {
			t.Errorf("%s: control message %+v, want hop limit 255 on interface %d", what, got.cm, ourIndex)
		}
	}
	check("unsolicited NA", recv(t, c.out, "unsolicited NA"), allNodes, ourLL)

	ask := func(src, dst netip.Addr) sentNA {
		t.Helper()
		c.in <- nsRequest{msg: nsBytes(t, vip6, sourceLLA(clientMAC)), src: src, dst: dst, hopLimit: 255, ifIndex: ourIndex}
		return recv(t, c.out, "NA")
	}
	check("multicast solicitation from a global address", ask(client6, snm(t, vip6)), client6, ourGlobal)
	check("reachability check from a global address", ask(client6, vip6), client6, ourGlobal)
	check("reachability check from a link-local address", ask(clientLL, vip6), clientLL, ourLL)

	c.mu.Lock()
	c.refuse = map[netip.Addr]bool{ourGlobal: true}
	c.mu.Unlock()
	check("global source refused", ask(client6, vip6), client6, ourLL)

	// ageCache makes the link's cached addresses look read d ago.
	ageCache := func(d time.Duration) {
		a.mu.Lock()
		cache := a.links["eth0"].addrs
		a.mu.Unlock()
		cache.mu.Lock()
		cache.at = time.Now().Add(-d)
		cache.mu.Unlock()
	}
	// Both cached addresses are gone and the interface has a new one: the
	// failed sends read the addresses again.
	renumbered := netip.MustParseAddr("2001:db8:1::12")
	c.mu.Lock()
	c.refuse[ourLL] = true
	c.mu.Unlock()
	fn.mu.Lock()
	fn.addrs[ourIndex] = addrs("2001:db8:1::12/64")
	fn.mu.Unlock()
	ageCache(addrForcedRefresh)
	check("renumbered interface", ask(client6, vip6), client6, renumbered)

	fn.mu.Lock()
	fn.addrs[ourIndex] = nil
	fn.mu.Unlock()
	ageCache(addrRefresh)
	check("no address on the interface", ask(client6, vip6), client6, netip.Addr{})
}
