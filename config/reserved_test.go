package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestSpecialRangesRefused(t *testing.T) {
	pool := func(addrs ...string) string {
		return "address-pools:\n- name: p\n  protocol: layer2\n  addresses:\n  - " + strings.Join(addrs, "\n  - ") + "\n"
	}
	const hint = "; a pool must hold only unicast addresses that the network routes to the nodes (line 5)"
	tests := []struct {
		name, entry, want string
	}{
		// The ranges of issue 9, which used to pass.
		{"everything v4", "0.0.0.0/0", `overlaps this-network 0.0.0.0/8` + hint},
		{"everything v6", "::/0", `overlaps unspecified ::/128`},
		{"loopback", "127.0.0.0/8", `overlaps loopback 127.0.0.0/8`},
		{"multicast", "224.0.0.0/4", `overlaps multicast 224.0.0.0/4`},
		{"v6 multicast", "ff02::/16", `overlaps multicast ff00::/8`},
		{"link-local", "169.254.0.0/16", `overlaps link-local 169.254.0.0/16`},
		{"v6 link-local", "fe80::/64", `overlaps link-local fe80::/10`},
		{"broadcast", "255.255.255.255/32", `overlaps limited broadcast 255.255.255.255/32`},
		// Overlapping is enough: a range that only touches one address.
		{"range ending in this-network", "0.0.0.255-1.0.0.10", `overlaps this-network 0.0.0.0/8`},
		{"range into loopback", "126.255.255.250-127.0.0.1", `overlaps loopback 127.0.0.0/8`},
		{"range into multicast", "223.255.255.0-224.0.0.0", `overlaps multicast 224.0.0.0/4`},
		{"reserved", "240.0.0.0/4", `overlaps reserved 240.0.0.0-255.255.255.254`},
		{"v6 unspecified", "::/128", `overlaps unspecified ::/128`},
		{"v6 loopback", "::1/128", `overlaps loopback ::1/128`},
		{"v6 around loopback", "::/120", `overlaps unspecified ::/128`},
		{"v6 range over mapped", "::fffe:0:0-::1:0:0:0", `overlaps IPv4-mapped ::ffff:0:0/96`},
		{"v6 link-local range", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ff00-fe80::1", `overlaps link-local fe80::/10`},
		{"v6 multicast end", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", `overlaps multicast ff00::/8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, pool(tt.entry), "address-pools[0].addresses[0]: "+strconv.Quote(tt.entry)+" "+tt.want)
		})
	}

	// Every entry is checked; the good ones stay quiet.
	mustFail(t, pool("203.0.113.0/28", "127.0.0.0/8", "2001:db8::/120", "fe80::/64"),
		`address-pools[0].addresses[1]: "127.0.0.0/8" overlaps loopback`,
		`address-pools[0].addresses[3]: "fe80::/64" overlaps link-local`)
}

func TestSpecialRangesNeighboursAllowed(t *testing.T) {
	// Private, shared, documentation and benchmarking space are what labs
	// and private networks use, and the edges of each special range are
	// ordinary addresses.
	mustParse(t, `address-pools:
- name: p
  protocol: layer2
  addresses:
  - 1.0.0.0/24
  - 10.0.0.0/8
  - 100.64.0.0/10
  - 126.255.255.0/24
  - 128.0.0.0/24
  - 169.253.255.0/24
  - 169.255.0.0/24
  - 172.16.0.0/12
  - 192.168.0.0/16
  - 198.18.0.0/15
  - 192.0.2.0/24
  - 223.255.255.0/24
  - ::2/127
  - ::fffe:ffff:ffff-::fffe:ffff:ffff
  - ::1:0:0:0/128
  - 2001:db8::/32
  - fc00::/7
  - fec0::/10
  - fe00::/9
`)
}

func TestPeerAddressInPoolRefused(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		// okPeer's 203.0.113.1 is in okPool's 203.0.113.0/28.
		{"peer-address", okPool + okPeer,
			[]string{`address-pools[0].addresses[0]: "203.0.113.0/28" holds 203.0.113.1, the peer-address of peers[0]: a Service given it would take the router's address (line 5)`}},
		{"source-address", okPool + "peers:\n- {peer-address: 192.0.2.1, source-address: 203.0.113.15, peer-asn: 1, my-asn: 2}\n",
			[]string{`address-pools[0].addresses[0]: "203.0.113.0/28" holds 203.0.113.15, the source-address of peers[0]: a Service given it would take a node's address`}},
		{"v6 in a later entry of a later pool", okPool + "- name: v6\n  protocol: bgp\n  addresses: [198.51.100.0/24, 2001:db8::/120]\n" +
			"peers:\n- {peer-address: 192.0.2.1, peer-asn: 1, my-asn: 2}\n- {peer-address: 2001:db8::7, peer-asn: 1, my-asn: 2}\n",
			[]string{`address-pools[1].addresses[1]: "2001:db8::/120" holds 2001:db8::7, the peer-address of peers[1]`}},
		{"range entry, two peers", "address-pools:\n- name: r\n  protocol: bgp\n  addresses: [198.51.100.10-198.51.100.20]\n" +
			"peers:\n- {peer-address: 198.51.100.10, peer-asn: 1, my-asn: 2}\n- {peer-address: 198.51.100.20, peer-asn: 1, my-asn: 2}\n",
			[]string{`holds 198.51.100.10, the peer-address of peers[0]`, `holds 198.51.100.20, the peer-address of peers[1]`}},
		// A wide entry that a narrow one starts after: the holder is the
		// wide one.
		{"held by an earlier, wider entry", "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n- name: b\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n" +
			"peers:\n- {peer-address: 198.51.100.200, peer-asn: 1, my-asn: 2}\n",
			[]string{`address-pools[0].addresses[0]: "198.51.100.0/24" holds 198.51.100.200`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
	// Next to the pool is fine.
	mustParse(t, okPool+"peers:\n- {peer-address: 203.0.113.16, source-address: 203.0.113.254, peer-asn: 1, my-asn: 2}\n")
}

func TestWarnings(t *testing.T) {
	bgpPool := "address-pools:\n- name: routed\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n"
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"bgp pool without peers", okPool + bgpPool[len("address-pools:\n"):],
			[]string{`address-pools[1].protocol: bgp, but no peers are configured: Services get this pool's addresses, and no router learns of them until peers are added (line 7)`}},
		{"bgp pool with a peer", bgpPool + "peers:\n- {peer-address: 192.0.2.1, peer-asn: 1, my-asn: 2}\n", nil},
		{"layer2 only", okPool, nil},
		{"nothing", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustParse(t, tt.input).Warnings; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Warnings = %q, want %q", got, tt.want)
			}
		})
	}
}
