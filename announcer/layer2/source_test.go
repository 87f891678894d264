package layer2

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// addrs builds interface addresses from "prefix" or "prefix deprecated".
func addrs(specs ...string) []ifAddr {
	var out []ifAddr
	for _, s := range specs {
		p, dep, _ := strings.Cut(s, " ")
		out = append(out, ifAddr{prefix: netip.MustParsePrefix(p), deprecated: dep == "deprecated"})
	}
	return out
}

func ips(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestNASources(t *testing.T) {
	// The node of the lab: a link-local and a global address on eth0.
	node := addrs("fe80::ff:fe00:11/64", "2001:db8:1::11/64")
	announced := set("2001:db8:1::200", "203.0.113.200")
	tests := []struct {
		name  string
		dst   string
		addrs []ifAddr
		want  []netip.Addr
	}{
		{name: "solicitation from a link-local address: our link-local first",
			dst: "fe80::64", addrs: node, want: ips("fe80::ff:fe00:11", "2001:db8:1::11")},
		{name: "link-local destination with a zone",
			dst: "fe80::64%eth0", addrs: node, want: ips("fe80::ff:fe00:11", "2001:db8:1::11")},
		{name: "solicitation from a global address (reachability check by a switch): our global first",
			dst: "2001:db8:1::100", addrs: node, want: ips("2001:db8:1::11", "fe80::ff:fe00:11")},
		{name: "all-nodes (unsolicited and DAD answers): link-local first",
			dst: "ff02::1", addrs: node, want: ips("fe80::ff:fe00:11", "2001:db8:1::11")},
		{name: "the global address is not the interface's first (MetalLB #2685)",
			dst: "2001:db8:1::100", addrs: addrs("fe80::ff:fe00:11/64", "2001:db8:3::11/64", "2001:db8:1::11/64"),
			want: ips("2001:db8:1::11", "2001:db8:3::11", "fe80::ff:fe00:11")},
		{name: "on the destination's prefix beats a longer shared prefix off it",
			dst: "2001:db8:1::100", addrs: addrs("2001:db8:1::101/128", "2001:db8:1::11/64"),
			want: ips("2001:db8:1::11", "2001:db8:1::101")},
		{name: "off-link globals: the longest shared prefix first",
			dst: "2001:db8:9::100", addrs: addrs("2001:db8:1::11/64", "2001:db8:8::11/64"),
			want: ips("2001:db8:8::11", "2001:db8:1::11")},
		{name: "a deprecated address comes after a preferred one",
			dst: "2001:db8:1::100", addrs: addrs("2001:db8:1::11/64 deprecated", "2001:db8:1::12/64"),
			want: ips("2001:db8:1::12", "2001:db8:1::11")},
		{name: "unique local addresses are global in scope",
			dst: "fd00::100", addrs: addrs("fe80::1/64", "fd00::11/64"), want: ips("fd00::11", "fe80::1")},
		{name: "a global destination and only a link-local address: the link-local",
			dst: "2001:db8:1::100", addrs: addrs("fe80::ff:fe00:11/64"), want: ips("fe80::ff:fe00:11")},
		{name: "a link-local destination and only a global address: the global",
			dst: "fe80::64", addrs: addrs("2001:db8:1::11/64"), want: ips("2001:db8:1::11")},
		{name: "an announced IP configured on the interface is never a source",
			dst: "2001:db8:1::100", addrs: addrs("2001:db8:1::200/64", "fe80::1/64"), want: ips("fe80::1")},
		{name: "IPv4, loopback, multicast and unspecified addresses are skipped",
			dst: "2001:db8:1::100", addrs: addrs("203.0.113.11/24", "::1/128", "ff02::1/128", "::/0", "::ffff:203.0.113.11/120"), want: nil},
		{name: "duplicates are listed once",
			dst: "2001:db8:1::100", addrs: addrs("2001:db8:1::11/64", "2001:db8:1::11/128"), want: ips("2001:db8:1::11")},
		{name: "no address", dst: "2001:db8:1::100", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := naSources(netip.MustParseAddr(tt.dst), tt.addrs, announced)
			if !slices.Equal(got, tt.want) {
				t.Errorf("naSources(%s) = %v, want %v", tt.dst, got, tt.want)
			}
		})
	}
}

func TestSharedBits(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"2001:db8::1", "2001:db8::1", 128},
		{"2001:db8::1", "2001:db8::", 127},
		{"2001:db8:1::", "2001:db8:3::", 46},
		{"::", "8000::", 0},
	}
	for _, tt := range tests {
		if got := sharedBits(netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)); got != tt.want {
			t.Errorf("sharedBits(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestAddrCacheRefresh: the addresses are read on first use, then at most
// every addrRefresh, or every addrForcedRefresh when asked for fresh ones;
// a clock that went back reads them again.
func TestAddrCacheRefresh(t *testing.T) {
	reads := 0
	c := &addrCache{index: 7, read: func(index int) ([]ifAddr, error) {
		if index != 7 {
			t.Errorf("read interface %d, want 7", index)
		}
		reads++
		if reads == 3 {
			return nil, errors.New("netlink: boom")
		}
		return addrs("fe80::1/64"), nil
	}}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at        time.Duration
		fresh     bool
		wantReads int
		wantErr   bool
	}{
		{at: 0, wantReads: 1},
		{at: time.Second, wantReads: 1},
		{at: addrForcedRefresh / 2, fresh: true, wantReads: 1},
		{at: addrForcedRefresh, fresh: true, wantReads: 2},
		{at: addrForcedRefresh + addrRefresh, wantReads: 3, wantErr: true},
		{at: addrForcedRefresh + addrRefresh + time.Second, wantReads: 3, wantErr: true},
		{at: 0, wantReads: 4}, // the clock went back
	}
	for i, s := range steps {
		got, err := c.get(t0.Add(s.at), s.fresh)
		if reads != s.wantReads || (err != nil) != s.wantErr {
			t.Fatalf("step %d: %d reads, err %v; want %d reads, error %v", i, reads, err, s.wantReads, s.wantErr)
		}
		if err == nil && len(got) != 1 {
			t.Fatalf("step %d: got %v", i, got)
		}
	}
}
