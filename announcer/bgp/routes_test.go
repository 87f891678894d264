package bgp

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

func ptr[T any](v T) *T { return &v }

func lc(a, b, c uint32) config.LargeCommunity {
	return config.LargeCommunity{GlobalAdmin: a, LocalData1: b, LocalData2: c}
}

func TestDesiredRoutes(t *testing.T) {
	plain := []config.BGPAdvertisement{{}}
	tests := []struct {
		desc string
		ans  map[string][]config.BGPAdvertisement
		want map[string]attrs
	}{{
		desc: "default: one host route per IP, both families",
		ans:  map[string][]config.BGPAdvertisement{"198.51.100.10": plain, "2001:db8:2::10": plain},
		want: map[string]attrs{"198.51.100.10/32": {}, "2001:db8:2::10/128": {}},
	}, {
		desc: "aggregation: IPs of one aggregate give one route",
		ans: map[string][]config.BGPAdvertisement{
			"198.51.100.10":  {{AggregationLength: ptr(24)}},
			"198.51.100.200": {{AggregationLength: ptr(24)}},
			"2001:db8:2::10": {{AggregationLengthV6: ptr(120)}},
		},
		want: map[string]attrs{"198.51.100.0/24": {}, "2001:db8:2::/120": {}},
	}, {
		desc: "aggregation-length applies to IPv4 only, aggregation-length-v6 to IPv6 only",
		ans: map[string][]config.BGPAdvertisement{
			"198.51.100.10":  {{AggregationLengthV6: ptr(64)}},
			"2001:db8:2::10": {{AggregationLength: ptr(24)}},
		},
		want: map[string]attrs{"198.51.100.10/32": {}, "2001:db8:2::10/128": {}},
	}, {
		desc: "two advertisements: a specific route and an aggregate, each with its attributes",
		ans: map[string][]config.BGPAdvertisement{"198.51.100.10": {
			{LocalPref: ptr(uint32(150)), ParsedCommunities: []uint32{65000<<16 | 100}},
			{AggregationLength: ptr(24), ParsedLargeCommunities: []config.LargeCommunity{lc(64512, 1, 2)}},
		}},
		want: map[string]attrs{
			"198.51.100.10/32": {hasLocalPref: true, localPref: 150, communities: []uint32{65000<<16 | 100}},
			"198.51.100.0/24":  {large: []config.LargeCommunity{lc(64512, 1, 2)}},
		},
	}, {
		desc: "advertisements giving the same prefix merge: communities united and sorted, highest local-pref",
		ans: map[string][]config.BGPAdvertisement{"198.51.100.10": {
			{LocalPref: ptr(uint32(50)), ParsedCommunities: []uint32{3, 1}},
			{LocalPref: ptr(uint32(200)), ParsedCommunities: []uint32{1, 2}, ParsedLargeCommunities: []config.LargeCommunity{lc(2, 0, 0), lc(1, 5, 5)}},
			{},
		}},
		want: map[string]attrs{"198.51.100.10/32": {hasLocalPref: true, localPref: 200, communities: []uint32{1, 2, 3}, large: []config.LargeCommunity{lc(1, 5, 5), lc(2, 0, 0)}}},
	}, {
		desc: "local-pref 0 is a value, not unset",
		ans:  map[string][]config.BGPAdvertisement{"198.51.100.10": {{LocalPref: ptr(uint32(0))}}},
		want: map[string]attrs{"198.51.100.10/32": {hasLocalPref: true}},
	}, {
		desc: "no announcements, no routes",
		want: map[string]attrs{},
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ans := map[netip.Addr]announcer.Announcement{}
			for ip, advs := range tc.ans {
				ans[netip.MustParseAddr(ip)] = announcer.Announcement{Pool: "p", Advertisements: advs}
			}
			got := map[string]attrs{}
			for p, a := range desiredRoutes(ans) {
				got[p.String()] = a
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDiffRoutes(t *testing.T) {
	p := netip.MustParsePrefix
	a1 := attrs{communities: []uint32{1}}
	a2 := attrs{communities: []uint32{2}}
	tests := []struct {
		desc       string
		have, want routeSet
		add, del   []netip.Prefix
	}{
		{desc: "nothing to do", have: routeSet{p("198.51.100.1/32"): a1}, want: routeSet{p("198.51.100.1/32"): a1}},
		{desc: "new route", have: routeSet{}, want: routeSet{p("198.51.100.1/32"): a1}, add: []netip.Prefix{p("198.51.100.1/32")}},
		{desc: "gone route", have: routeSet{p("198.51.100.1/32"): a1}, want: routeSet{}, del: []netip.Prefix{p("198.51.100.1/32")}},
		{desc: "changed attributes replace the route", have: routeSet{p("198.51.100.1/32"): a1}, want: routeSet{p("198.51.100.1/32"): a2}, add: []netip.Prefix{p("198.51.100.1/32")}},
		{desc: "a new aggregation length withdraws the old prefix",
			have: routeSet{p("198.51.100.1/32"): {}, p("198.51.100.2/32"): {}},
			want: routeSet{p("198.51.100.0/24"): {}},
			add:  []netip.Prefix{p("198.51.100.0/24")},
			del:  []netip.Prefix{p("198.51.100.1/32"), p("198.51.100.2/32")}},
		{desc: "sorted: IPv4 first, then by address and length",
			have: routeSet{},
			want: routeSet{p("2001:db8:2::1/128"): {}, p("198.51.100.9/32"): {}, p("198.51.100.0/24"): {}, p("198.51.100.0/32"): {}},
			add:  []netip.Prefix{p("198.51.100.0/24"), p("198.51.100.0/32"), p("198.51.100.9/32"), p("2001:db8:2::1/128")}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			add, del := diffRoutes(tc.have, tc.want)
			if !slices.Equal(add, tc.add) || !slices.Equal(del, tc.del) {
				t.Errorf("diffRoutes = add %v, del %v; want add %v, del %v", add, del, tc.add, tc.del)
			}
		})
	}
}

// TestAPIPath checks the GoBGP path: the NLRI, origin IGP, an unspecified
// next hop (GoBGP fills in each session's local address), MP_REACH for
// IPv6, and the configured attributes, only when set.
func TestAPIPath(t *testing.T) {
	tests := []struct {
		desc   string
		prefix string
		attrs  attrs
		family *api.Family
		want   []proto.Message
	}{{
		desc:   "IPv4 host route",
		prefix: "198.51.100.10/32",
		family: familyV4,
		want:   []proto.Message{&api.OriginAttribute{Origin: 0}, &api.NextHopAttribute{NextHop: "0.0.0.0"}},
	}, {
		desc:   "IPv4 with every attribute",
		prefix: "198.51.100.0/24",
		attrs:  attrs{hasLocalPref: true, localPref: 150, communities: []uint32{65000<<16 | 1}, large: []config.LargeCommunity{lc(64512, 1, 2)}},
		family: familyV4,
		want: []proto.Message{
			&api.OriginAttribute{Origin: 0}, &api.NextHopAttribute{NextHop: "0.0.0.0"},
			&api.LocalPrefAttribute{LocalPref: 150},
			&api.CommunitiesAttribute{Communities: []uint32{65000<<16 | 1}},
			&api.LargeCommunitiesAttribute{Communities: []*api.LargeCommunity{{GlobalAdmin: 64512, LocalData1: 1, LocalData2: 2}}},
		},
	}, {
		desc:   "IPv6 in MP_REACH_NLRI",
		prefix: "2001:db8:2::10/128",
		family: familyV6,
		want: []proto.Message{
			&api.OriginAttribute{Origin: 0},
			&api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{"::"}},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			pfx := netip.MustParsePrefix(tc.prefix)
			path, err := apiPath(pfx, tc.attrs)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(path.Family, tc.family) {
				t.Errorf("family %v, want %v", path.Family, tc.family)
			}
			var nlri api.IPAddressPrefix
			if err := path.Nlri.UnmarshalTo(&nlri); err != nil {
				t.Fatal(err)
			}
			if nlri.Prefix != pfx.Addr().String() || int(nlri.PrefixLen) != pfx.Bits() {
				t.Errorf("NLRI %s/%d, want %s", nlri.Prefix, nlri.PrefixLen, pfx)
			}
			if len(path.Pattrs) != len(tc.want) {
				t.Fatalf("%d attributes, want %d", len(path.Pattrs), len(tc.want))
			}
			for i, a := range path.Pattrs {
				got, err := a.UnmarshalNew()
				if err != nil {
					t.Fatal(err)
				}
				if mp, ok := got.(*api.MpReachNLRIAttribute); ok {
					// The NLRI inside is the path's own.
					if len(mp.Nlris) != 1 || !proto.Equal(mp.Nlris[0], path.Nlri) {
						t.Errorf("MP_REACH NLRIs %v, want the path's", mp.Nlris)
					}
					mp.Nlris = nil
				}
				if !proto.Equal(got, tc.want[i]) {
					t.Errorf("attribute %d = %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}
