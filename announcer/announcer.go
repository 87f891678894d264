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
//	  → the layer2 Announcer on the wire (ARP/NDP)
//
// BGP pools have no owner: every eligible node announces their IPs to its
// routers (package bgp), which spread traffic over them by ECMP.
//
// The controller computes, for this node, the complete set of IPs it must
// announce by each protocol, and hands each set to that protocol's
// Announcer with SetAnnouncements; the Announcers are one map keyed by
// config.Protocol. The Announcer diffs against what it announced before,
// so the controller never needs to know how announcing works. What an
// Announcer needs to know of the node beyond its IPs (the BGP speaker's
// peers, chosen by this node's labels) it learns through NodeFollower. The
// controller decides which IPs a protocol gets; everything after that
// belongs to the protocol's package.
package announcer

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
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

// NodeFollower is an Announcer whose setup depends on this node and on the
// cloud-config in effect: the BGP speaker dials the peers whose
// node-selectors match this node's labels. The controller calls SetNode
// before SetAnnouncements in every pass in which it has this node's Node
// object; an error means part of the setup failed, and the next pass
// retries it.
type NodeFollower interface {
	SetNode(cloud *config.Config, nodeLabels map[string]string) error
}
