package layer2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// ConflictGrace is how long this node must still announce an IP after
// hearing another MAC announce it before that counts as a conflict. Moves
// between live nodes overlap for a gossip round (the new owner announces
// before the old one has heard that it lost the IP), and a node cut off
// from gossip withdraws within the contact window; neither is split brain.
// Two nodes that both keep announcing are.
const ConflictGrace = time.Second

// conflictRepeat is how long one conflict (an IP and a MAC) counts once:
// the other host's gratuitous ARP comes in rounds over three seconds, and
// a conflict that goes on is counted again after this.
const conflictRepeat = 30 * time.Second

// arpConflict says whether an Ethernet frame received on an interface with
// address mac shows another host announcing an IP of announced: an ARP
// reply, or a gratuitous ARP request (sender IP = target IP), with that IP
// as sender IP and another sender MAC. It returns the IP and that MAC.
//
// A raw socket sees only broadcast frames and frames to this host: the
// other host's gratuitous ARP when it takes an IP over, and its replies to
// this host. Replies to other hosts pass by unseen, so this is evidence
// collected at takeovers, not a census.
func arpConflict(frame []byte, mac net.HardwareAddr, announced ipSet) (netip.Addr, net.HardwareAddr, bool) {
	if len(frame) < ethHeaderLen+arpLen || len(mac) != 6 {
		return netip.Addr{}, nil, false
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP || bytes.Equal(frame[6:12], mac) {
		return netip.Addr{}, nil, false
	}
	// Most frames are requests for other addresses: skip the parse for
	// any request that is not gratuitous (sender IP at 28, target IP at
	// 38 for Ethernet and IPv4).
	if op := binary.BigEndian.Uint16(frame[20:22]); op == 1 && !bytes.Equal(frame[28:32], frame[38:42]) {
		return netip.Addr{}, nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(frame[ethHeaderLen:]); err != nil {
		return netip.Addr{}, nil, false
	}
	if p.HardwareType != 1 || p.ProtocolType != etherTypeIP4 || p.HardwareAddrLength != 6 || p.IPLength != 4 {
		return netip.Addr{}, nil, false
	}
	gratuitous := p.Operation == arp.OperationRequest && p.SenderIP == p.TargetIP
	if p.Operation != arp.OperationReply && !gratuitous {
		return netip.Addr{}, nil, false
	}
	if !p.SenderIP.Is4() || !announced.has(p.SenderIP) || bytes.Equal(p.SenderHardwareAddr, mac) || !usableUnicastMAC(p.SenderHardwareAddr) {
		return netip.Addr{}, nil, false
	}
	return p.SenderIP, bytes.Clone(p.SenderHardwareAddr), true
}

// ndpConflict says whether an ICMPv6 message received on the interface
// with index ifIndex and address mac is a neighbor advertisement by
// another host for an IP of announced, with its target link-layer address
// (another MAC). Unsolicited advertisements go to all nodes, so this sees
// another node's takeover, as arpConflict does.
func ndpConflict(req nsRequest, ifIndex int, mac net.HardwareAddr, announced ipSet) (netip.Addr, net.HardwareAddr, bool) {
	if req.ifIndex != 0 && req.ifIndex != ifIndex {
		return netip.Addr{}, nil, false
	}
	if req.hopLimit != ndp.HopLimit || len(req.msg) < 2 || req.msg[0] != byte(ipv6.ICMPTypeNeighborAdvertisement) || req.msg[1] != 0 {
		return netip.Addr{}, nil, false
	}
	m, err := ndp.ParseMessage(req.msg)
	if err != nil {
		return netip.Addr{}, nil, false
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		return netip.Addr{}, nil, false
	}
	target := na.TargetAddress.WithZone("")
	if !target.Is6() || target.Is4In6() || !announced.has(target) {
		return netip.Addr{}, nil, false
	}
	for _, o := range na.Options {
		lla, ok := o.(*ndp.LinkLayerAddress)
		if ok && lla.Direction == ndp.Target && !bytes.Equal(lla.Addr, mac) && usableUnicastMAC(lla.Addr) {
			return target, bytes.Clone(lla.Addr), true
		}
	}
	return netip.Addr{}, nil, false
}

// conflictKey is one IP claimed by one other MAC.
type conflictKey struct {
	ip  netip.Addr
	mac string
}

// conflicts turns sightings of another MAC announcing an IP into counted
// conflicts, after ConflictGrace, if this node still announces the IP.
type conflicts struct {
	grace, repeat time.Duration
	// stillAnnounced says whether the IP is still announced (and the
	// announcer not handing over) when the grace ends.
	stillAnnounced func(netip.Addr) bool
	// confirmed is called for each counted conflict.
	confirmed func(netip.Addr, net.HardwareAddr)

	mu      sync.Mutex
	pending map[conflictKey]*time.Timer
	counted map[conflictKey]time.Time
	closed  bool
}

func newConflicts(grace, repeat time.Duration, still func(netip.Addr) bool, confirmed func(netip.Addr, net.HardwareAddr)) *conflicts {
	return &conflicts{
		grace: grace, repeat: repeat, stillAnnounced: still, confirmed: confirmed,
		pending: map[conflictKey]*time.Timer{}, counted: map[conflictKey]time.Time{},
	}
}

// saw notes that mac announced ip, which this node announces.
func (c *conflicts) saw(ip netip.Addr, mac net.HardwareAddr) {
	k := conflictKey{ip, mac.String()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.pending[k] != nil {
		return
	}
	if at, ok := c.counted[k]; ok && time.Since(at) < c.repeat {
		return
	}
	// One timer per IP and MAC at a time, and a sighting needs a frame
	// from a host on the segment, so this cannot be made to pile up.
	c.pending[k] = time.AfterFunc(c.grace, func() {
		c.mu.Lock()
		delete(c.pending, k)
		closed := c.closed
		c.mu.Unlock()
		if closed || !c.stillAnnounced(ip) {
			return
		}
		c.mu.Lock()
		c.counted[k] = time.Now()
		for old, at := range c.counted {
			if time.Since(at) >= c.repeat {
				delete(c.counted, old)
			}
		}
		c.mu.Unlock()
		c.confirmed(ip, mac)
	})
}

// close stops every pending confirmation.
func (c *conflicts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for k, t := range c.pending {
		t.Stop()
		delete(c.pending, k)
	}
}
