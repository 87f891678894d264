// Package announcer is the seam between deciding which load-balancer IPs a
// node announces and putting those announcements on the wire.
//
// The baremetal-announcer DaemonSet runs on every node. Its data flows one
// way:
//
//	Service status IPs (controller), each under the pool that covers it
//	    or last covered it (coverage)
//	  → eligible nodes (eligibility)
//	  → those live members that share the pool's definition and can
//	    serve it (agreement, over the metadata of nodemeta)
//	  → one owner per IP (owner), claimed only while this node sees a
//	    majority of the announcers (quorum, the split-brain guard)
//	  → an Announcer on the wire (layer2: ARP/NDP)
//
// BGP pools have no owner: every eligible node announces their IPs to its
// routers (package bgp), which spread traffic over them by ECMP.
//
// The controller computes, for this node, the complete set of IPs it must
// announce and hands it to every Announcer with SetAnnouncements. The
// Announcer diffs against what it announced before, so the controller never
// needs to know how announcing works, and a BGP Announcer can be added
// beside layer2 without touching the controller's logic.
package announcer

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Protocol says how an IP is made reachable.
type Protocol string

// The protocols an Announcer may implement. They match config.Protocol.
const (
	Layer2 Protocol = "layer2"
	BGP    Protocol = "bgp"
)

// Announcement is what an Announcer needs to know about one IP this node
// announces.
type Announcement struct {
	// Pool is the name of the address pool the IP belongs to.
	Pool string
	// Interfaces are the network interfaces to answer on (layer2). The
	// controller resolves the default (the interface holding the node's
	// IP), so this is never empty for a layer2 announcement.
	Interfaces []string
	// Services are the Services that have this IP in their status; more
	// than one when the IP is shared.
	Services []types.NamespacedName
	// Advertisements say how a bgp pool's IP is announced (prefix length,
	// communities, local preference); never empty for a bgp announcement,
	// since config validation gives every bgp pool one.
	Advertisements []config.BGPAdvertisement
}

// Announcer makes IPs reachable from outside the cluster.
type Announcer interface {
	// SetAnnouncements replaces the complete set of IPs announced by this
	// node. IPs absent from the map stop being announced; IPs new to it are
	// announced at once (for layer2, with gratuitous ARP or unsolicited
	// neighbor advertisements). The map is not modified and not retained.
	//
	// An error means some announcements could not be set up (an interface
	// is missing, a socket failed); the others are in effect, and calling
	// again retries the failed ones.
	SetAnnouncements(map[netip.Addr]Announcement) error
}
