package config

import (
	"math/big"
	"testing"

	"go4.org/netipx"
)

// TestSizes counts what a pool may assign per family, with and without
// avoid-buggy-ips. The allocator's usage metrics count against it.
func TestSizes(t *testing.T) {
	twoTo64 := new(big.Int).Lsh(big.NewInt(1), 64)
	tests := []struct {
		name   string
		ranges []string
		avoid  bool
		v4, v6 *big.Int
	}{
		{"a /24 less its .0 and .255", []string{"10.0.0.0-10.0.0.255"}, true, big.NewInt(254), new(big.Int)},
		{"a /24 without avoid-buggy-ips", []string{"10.0.0.0-10.0.0.255"}, false, big.NewInt(256), new(big.Int)},
		{"no .0 or .255 inside", []string{"10.0.0.1-10.0.0.254"}, true, big.NewInt(254), new(big.Int)},
		{"a range of a .255 and a .0 only", []string{"10.0.0.255-10.0.1.0"}, true, new(big.Int), new(big.Int)},
		{"the lowest address alone", []string{"0.0.0.0-0.0.0.0"}, true, new(big.Int), new(big.Int)},
		{"a /16 less 512", []string{"10.0.0.0-10.0.255.255"}, true, big.NewInt(65536 - 512), new(big.Int)},
		{"the whole IPv4 space", []string{"0.0.0.0-255.255.255.255"}, true, big.NewInt(1<<32 - 1<<25), new(big.Int)},
		{"IPv6 is never skipped", []string{"2001:db8::-2001:db8::ff"}, true, new(big.Int), big.NewInt(256)},
		{"a /64 exceeds 2^63", []string{"2001:db8::-2001:db8::ffff:ffff:ffff:ffff"}, false, new(big.Int), twoTo64},
		{"both families, ranges add up", []string{"192.0.2.0-192.0.2.3", "192.0.2.8-192.0.2.9", "2001:db8::-2001:db8::1"}, true, big.NewInt(5), big.NewInt(2)},
		{"no ranges", nil, true, new(big.Int), new(big.Int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Pool{AvoidBuggyIPs: tt.avoid}
			for _, r := range tt.ranges {
				p.Ranges = append(p.Ranges, netipx.MustParseIPRange(r))
			}
			v4, v6 := p.Sizes()
			if v4.Cmp(tt.v4) != 0 || v6.Cmp(tt.v6) != 0 {
				t.Errorf("Sizes = %v, %v, want %v, %v", v4, v6, tt.v4, tt.v6)
			}
			if want := new(big.Int).Add(tt.v4, tt.v6); p.Size().Cmp(want) != 0 {
				t.Errorf("Size = %v, want %v", p.Size(), want)
			}
		})
	}
}
