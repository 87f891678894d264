package app

import (
	"net/netip"
	"sync/atomic"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/layer2"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/membership"
)

// claimingLayer2 is the layer2 announcer that publishes, after every
// change of what it announces, this node's claim record (package owner),
// for --layer2-sticky-owners. The membership starts after the controller
// is built, so it is set later; until then nothing is announced anyway.
type claimingLayer2 struct {
	*layer2.Announcer
	members atomic.Pointer[membership.Membership]
	// held is what the controller's pass holds without announcing it;
	// set before SetAnnouncements, by the same goroutine.
	held []netip.Addr
}

// SetHeldClaims sets the IPs this node holds without announcing them,
// published with the next SetAnnouncements.
func (c *claimingLayer2) SetHeldClaims(ips []netip.Addr) {
	c.held = ips
}

// SetAnnouncements announces, then claims what it announces and what it
// holds: a claim never goes out before the node answers for it, and the
// others learn it within a TCP round trip.
func (c *claimingLayer2) SetAnnouncements(m map[netip.Addr]announcer.Announcement) error {
	err := c.Announcer.SetAnnouncements(m)
	if ms := c.members.Load(); ms != nil {
		ips := make([]netip.Addr, 0, len(m))
		for ip := range m {
			ips = append(ips, ip)
		}
		ms.SetClaims(ips, c.held)
	}
	return err
}

var _ announcer.Announcer = (*claimingLayer2)(nil)
