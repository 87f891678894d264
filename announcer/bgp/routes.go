package bgp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// attrs are the path attributes of one announced prefix that come from the
// configuration. Origin and next hop are the same for every route.
type attrs struct {
	// localPref is sent to iBGP peers only (GoBGP strips it for eBGP);
	// hasLocalPref false means the default, 100.
	hasLocalPref bool
	localPref    uint32
	// communities and large are sorted and without duplicates, so that
	// equal attributes compare equal.
	communities []uint32
	large       []config.LargeCommunity
}

func (a attrs) equal(b attrs) bool {
	return a.hasLocalPref == b.hasLocalPref && a.localPref == b.localPref &&
		slices.Equal(a.communities, b.communities) && slices.Equal(a.large, b.large)
}

// routeSet maps each announced prefix to its attributes.
type routeSet map[netip.Prefix]attrs

// desiredRoutes returns the routes that announce ans: for every IP and
// every advertisement of its pool, the IP's prefix of the advertisement's
// aggregation length (/32 and /128 by default). IPs whose prefixes
// coincide (an aggregate) give one route; so do two advertisements that
// give the same prefix, whose communities are then merged and whose
// highest local preference wins, since a router can hold only one path
// per prefix from a node.
func desiredRoutes(ans map[netip.Addr]announcer.Announcement) routeSet {
	out := routeSet{}
	for ip, an := range ans {
		for _, adv := range an.Advertisements {
			p := adv.Prefix(ip)
			a := out[p]
			a.communities = append(a.communities, adv.ParsedCommunities...)
			a.large = append(a.large, adv.ParsedLargeCommunities...)
			if lp := adv.LocalPref; lp != nil && (!a.hasLocalPref || *lp > a.localPref) {
				a.hasLocalPref, a.localPref = true, *lp
			}
			out[p] = a
		}
	}
	for p, a := range out {
		slices.Sort(a.communities)
		a.communities = slices.Compact(a.communities)
		slices.SortFunc(a.large, compareLarge)
		a.large = slices.Compact(a.large)
		out[p] = a
	}
	return out
}

func compareLarge(a, b config.LargeCommunity) int {
	return cmp.Or(cmp.Compare(a.GlobalAdmin, b.GlobalAdmin), cmp.Compare(a.LocalData1, b.LocalData1), cmp.Compare(a.LocalData2, b.LocalData2))
}

// diffRoutes returns the prefixes to add or replace (new, or with changed
// attributes) and those to withdraw, to go from have to want, each sorted.
func diffRoutes(have, want routeSet) (add, del []netip.Prefix) {
	for p, a := range want {
		if h, ok := have[p]; !ok || !h.equal(a) {
			add = append(add, p)
		}
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			del = append(del, p)
		}
	}
	slices.SortFunc(add, comparePrefix)
	slices.SortFunc(del, comparePrefix)
	return add, del
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// apiPath builds the GoBGP path announcing p with a. The next hop is
// unspecified, so that GoBGP puts the local address of each session in
// its place: the node itself, as seen by each router (source-address when
// set).
func apiPath(p netip.Prefix, a attrs) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, err
	}
	msgs := []proto.Message{&api.OriginAttribute{Origin: 0}} // IGP, as MetalLB
	family := familyV4
	if p.Addr().Is4() {
		msgs = append(msgs, &api.NextHopAttribute{NextHop: "0.0.0.0"})
	} else {
		family = familyV6
		// IPv6 routes travel in MP_REACH_NLRI (RFC 4760).
		msgs = append(msgs, &api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
	}
	if a.hasLocalPref {
		msgs = append(msgs, &api.LocalPrefAttribute{LocalPref: a.localPref})
	}
	if len(a.communities) > 0 {
		msgs = append(msgs, &api.CommunitiesAttribute{Communities: slices.Clone(a.communities)})
	}
	if len(a.large) > 0 {
		lc := make([]*api.LargeCommunity, len(a.large))
		for i, c := range a.large {
			lc[i] = &api.LargeCommunity{GlobalAdmin: c.GlobalAdmin, LocalData1: c.LocalData1, LocalData2: c.LocalData2}
		}
		msgs = append(msgs, &api.LargeCommunitiesAttribute{Communities: lc})
	}
	pattrs := make([]*anypb.Any, len(msgs))
	for i, m := range msgs {
		if pattrs[i], err = anypb.New(m); err != nil {
			return nil, fmt.Errorf("path attribute %T of %s: %w", m, p, err)
		}
	}
	return &api.Path{Family: family, Nlri: nlri, Pattrs: pattrs}, nil
}
