package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"go4.org/netipx"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// The documentation ranges the pools are carved from. The suite never puts
// an address on an interface (there is no announcer), but it keeps to the
// lab's ranges all the same.
var (
	v4Space = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
	}
	v6Space = netip.MustParsePrefix("2001:db8:c4a0::/48")
)

// maxV6Blocks bounds the IPv6 block table; far more than any profile uses.
const maxV6Blocks = 256

// blockTable is every block a pool can be made of: the IPv4 space cut into
// blocks of one size and as many IPv6 blocks of another. Pools are lists
// of block indices, so "widen", "drop" and "swap" are list edits and the
// rendered file never has overlapping entries unless we want it to.
type blockTable struct {
	blocks []netip.Prefix
}

func newBlockTable(v4Bits, v6Bits int) *blockTable {
	bt := &blockTable{}
	for _, p := range v4Space {
		bt.blocks = append(bt.blocks, split(p, v4Bits, 1<<(v4Bits-p.Bits()))...)
	}
	bt.blocks = append(bt.blocks, split(v6Space, v6Bits, maxV6Blocks)...)
	return bt
}

// split cuts p into at most n consecutive prefixes of length bits.
func split(p netip.Prefix, bits, n int) []netip.Prefix {
	var out []netip.Prefix
	a := p.Addr()
	for len(out) < n && p.Contains(a) {
		b := netip.PrefixFrom(a, bits)
		out = append(out, b)
		a = netipx.PrefixLastIP(b).Next()
		if !a.IsValid() {
			break
		}
	}
	return out
}

// poolSpec is one address pool of a generated cloud-config.
type poolSpec struct {
	Name       string
	AutoAssign bool
	Blocks     []int // indices into the block table, kept sorted
}

// cloudConfig is a generated cloud-config: the model the suite reasons
// with, and the text the CCM reads.
type cloudConfig struct {
	bt    *blockTable
	Pools []poolSpec
}

func (c *cloudConfig) clone() *cloudConfig {
	out := &cloudConfig{bt: c.bt, Pools: make([]poolSpec, len(c.Pools))}
	for i, p := range c.Pools {
		p.Blocks = slices.Clone(p.Blocks)
		out.Pools[i] = p
	}
	return out
}

func (c *cloudConfig) pool(name string) *poolSpec {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// contains reports whether pool p covers ip.
func (c *cloudConfig) contains(p *poolSpec, ip netip.Addr) bool {
	for _, b := range p.Blocks {
		if c.bt.blocks[b].Contains(ip) {
			return true
		}
	}
	return false
}

// poolOf returns the pool covering ip, or nil.
func (c *cloudConfig) poolOf(ip netip.Addr) *poolSpec {
	for i := range c.Pools {
		if c.contains(&c.Pools[i], ip) {
			return &c.Pools[i]
		}
	}
	return nil
}

// addresses lists every address of family v4 (or IPv6) in pool p.
func (c *cloudConfig) addresses(p *poolSpec, v4 bool) []netip.Addr {
	var out []netip.Addr
	for _, b := range p.Blocks {
		pfx := c.bt.blocks[b]
		if pfx.Addr().Is4() != v4 {
			continue
		}
		for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
			out = append(out, a)
		}
	}
	return out
}

// used returns the set of blocks some pool has.
func (c *cloudConfig) used() map[int]bool {
	out := map[int]bool{}
	for _, p := range c.Pools {
		for _, b := range p.Blocks {
			out[b] = true
		}
	}
	return out
}

// freeBlocks lists the blocks of family v4 (or IPv6) no pool has.
func (c *cloudConfig) freeBlocks(v4 bool) []int {
	used := c.used()
	var out []int
	for i, b := range c.bt.blocks {
		if b.Addr().Is4() == v4 && !used[i] {
			out = append(out, i)
		}
	}
	return out
}

// render writes the config as the CCM reads it. Adjacent blocks of a pool
// are merged into one "first-last" range, so widening a pool by the block
// next to it widens a range, as an operator would edit it.
func (c *cloudConfig) render() string {
	var b strings.Builder
	b.WriteString("address-pools:\n")
	for _, p := range c.Pools {
		fmt.Fprintf(&b, "- name: %s\n  protocol: layer2\n", p.Name)
		if !p.AutoAssign {
			b.WriteString("  auto-assign: false\n")
		}
		b.WriteString("  addresses:\n")
		for _, r := range c.ranges(p) {
			fmt.Fprintf(&b, "  - %s-%s\n", r.From(), r.To())
		}
	}
	return b.String()
}

// ranges merges the pool's blocks into ranges, IPv4 first.
func (c *cloudConfig) ranges(p poolSpec) []netipx.IPRange {
	var rs []netipx.IPRange
	for _, b := range p.Blocks {
		rs = append(rs, netipx.RangeOfPrefix(c.bt.blocks[b]))
	}
	slices.SortFunc(rs, func(x, y netipx.IPRange) int { return x.From().Compare(y.From()) })
	var out []netipx.IPRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].To().Next() == r.From() {
			out[n-1] = netipx.IPRangeFrom(out[n-1].From(), r.To())
			continue
		}
		out = append(out, r)
	}
	return out
}

// poolNames are the names pools get and Services ask for. Asking for a name
// no pool has at the moment is part of the game: such a Service waits.
var poolNames = []string{"alpha", "beta", "pinned", "gamma", "delta", "omega"}

// A configEdit is one edit of the cloud-config file.
type configEdit struct {
	// Kind names the edit: add-pool, widen, narrow, drop-pool, swap-ranges,
	// auto-assign, or for an invalid file bad-yaml, unknown-key,
	// overlap, host-bits, duplicate-name.
	Kind string
	// Valid says whether the CCM must apply it (C1: parses and validates).
	Valid bool
	// Next is the config in effect after a valid edit; nil for an
	// invalid one.
	Next *cloudConfig
	Text string
	// Note says what changed, for the operation log.
	Note string
}

// validEdit draws an edit that parses and validates. Some take addresses in
// use out of every pool or into another pool's range: under contract C1 the
// CCM applies them and the Services keep their addresses.
func validEdit(r *rand.Rand, c *cloudConfig) configEdit {
	// Weighted: swaps and drops are what moves addresses (holes 1 and 2).
	kinds := []string{"add-pool", "add-pool", "widen", "widen", "narrow", "drop-pool", "drop-pool", "swap-ranges", "swap-ranges", "swap-ranges", "auto-assign"}
	for range 16 { // bounded: a kind may not apply to this config
		kind := kinds[r.IntN(len(kinds))]
		next := c.clone()
		note, ok := applyEdit(r, next, kind)
		if ok {
			return configEdit{Kind: kind, Valid: true, Next: next, Text: next.render(), Note: note}
		}
	}
	// Always possible: rewrite the same pools.
	return configEdit{Kind: "rewrite", Valid: true, Next: c.clone(), Text: c.render(), Note: "same pools"}
}

func applyEdit(r *rand.Rand, c *cloudConfig, kind string) (string, bool) {
	switch kind {
	case "add-pool":
		var free []string
		for _, n := range poolNames {
			if c.pool(n) == nil {
				free = append(free, n)
			}
		}
		v4 := c.freeBlocks(true)
		if len(free) == 0 || len(v4) == 0 {
			return "", false
		}
		p := poolSpec{Name: free[r.IntN(len(free))], AutoAssign: r.IntN(10) < 7, Blocks: []int{v4[r.IntN(len(v4))]}}
		if v6 := c.freeBlocks(false); len(v6) > 0 && r.IntN(2) == 0 {
			p.Blocks = append(p.Blocks, v6[r.IntN(len(v6))])
		}
		slices.Sort(p.Blocks)
		c.Pools = append(c.Pools, p)
		return fmt.Sprintf("add pool %s (auto-assign %v): %s", p.Name, p.AutoAssign, c.describe(p)), true
	case "widen":
		if len(c.Pools) == 0 {
			return "", false
		}
		p := &c.Pools[r.IntN(len(c.Pools))]
		used := c.used()
		// Prefer the block right after one the pool has: that widens a range.
		var pick = -1
		for _, b := range p.Blocks {
			if n := b + 1; n < len(c.bt.blocks) && !used[n] && c.bt.blocks[n].Addr().Is4() == c.bt.blocks[b].Addr().Is4() {
				pick = n
				break
			}
		}
		if pick < 0 {
			free := c.freeBlocks(r.IntN(3) > 0)
			if len(free) == 0 {
				return "", false
			}
			pick = free[r.IntN(len(free))]
		}
		p.Blocks = append(p.Blocks, pick)
		slices.Sort(p.Blocks)
		return fmt.Sprintf("widen pool %s by %s: %s", p.Name, c.bt.blocks[pick], c.describe(*p)), true
	case "narrow":
		var cands []int
		for i, p := range c.Pools {
			if len(p.Blocks) > 1 {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			return "", false
		}
		p := &c.Pools[cands[r.IntN(len(cands))]]
		i := r.IntN(len(p.Blocks))
		gone := p.Blocks[i]
		p.Blocks = slices.Delete(p.Blocks, i, i+1)
		return fmt.Sprintf("narrow pool %s, without %s: %s", p.Name, c.bt.blocks[gone], c.describe(*p)), true
	case "drop-pool":
		if len(c.Pools) < 2 {
			return "", false
		}
		i := r.IntN(len(c.Pools))
		name := c.Pools[i].Name
		c.Pools = slices.Delete(c.Pools, i, i+1)
		return "drop pool " + name, true
	case "swap-ranges":
		if len(c.Pools) < 2 {
			return "", false
		}
		i := r.IntN(len(c.Pools))
		j := (i + 1 + r.IntN(len(c.Pools)-1)) % len(c.Pools)
		c.Pools[i].Blocks, c.Pools[j].Blocks = c.Pools[j].Blocks, c.Pools[i].Blocks
		return fmt.Sprintf("swap the ranges of pools %s and %s", c.Pools[i].Name, c.Pools[j].Name), true
	case "auto-assign":
		if len(c.Pools) == 0 {
			return "", false
		}
		p := &c.Pools[r.IntN(len(c.Pools))]
		p.AutoAssign = !p.AutoAssign
		return fmt.Sprintf("pool %s auto-assign %v", p.Name, p.AutoAssign), true
	}
	return "", false
}

func (c *cloudConfig) describe(p poolSpec) string {
	var parts []string
	for _, r := range c.ranges(p) {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}

// invalidEdit draws an edit the CCM must refuse: the file does not parse or
// does not validate. The previous config stays in effect.
func invalidEdit(r *rand.Rand, c *cloudConfig) configEdit {
	good := c.render()
	kinds := []string{"bad-yaml", "unknown-key", "overlap", "host-bits", "duplicate-name"}
	kind := kinds[r.IntN(len(kinds))]
	var text string
	switch kind {
	case "bad-yaml":
		// A truncated upload: the file ends inside a flow sequence.
		text = good + "- name: [broken\n"
	case "unknown-key":
		text = strings.Replace(good, "  addresses:\n", "  adresses:\n", 1)
	case "overlap":
		// A new pool reusing a block another pool has.
		b := 0
		if len(c.Pools) > 0 && len(c.Pools[0].Blocks) > 0 {
			b = c.Pools[0].Blocks[0]
		}
		text = good + fmt.Sprintf("- name: overlap\n  protocol: layer2\n  addresses:\n  - %s\n", c.bt.blocks[b])
	case "host-bits":
		b := c.bt.blocks[0]
		text = good + fmt.Sprintf("- name: hostbits\n  protocol: layer2\n  addresses:\n  - %s/%d\n", b.Addr().Next(), b.Bits())
	case "duplicate-name":
		free := c.freeBlocks(true)
		name := "alpha"
		if len(c.Pools) > 0 {
			name = c.Pools[0].Name
		}
		blk := c.bt.blocks[0]
		if len(free) > 0 {
			blk = c.bt.blocks[free[0]]
		}
		text = good + fmt.Sprintf("- name: %s\n  protocol: layer2\n  addresses:\n  - %s\n", name, blk)
	}
	return configEdit{Kind: kind, Valid: false, Text: text, Note: kind}
}

// checkEdit confirms with the config package that an edit is what the suite
// thinks it is, so a change in validation shows up as a suite error rather
// than as a false violation.
func checkEdit(e configEdit) error {
	_, err := config.Parse([]byte(e.Text))
	switch {
	case e.Valid && err != nil:
		return fmt.Errorf("generated config edit %s should be valid but config.Parse refuses it: %v\n%s", e.Kind, err, e.Text)
	case !e.Valid && err == nil:
		return fmt.Errorf("generated config edit %s should be invalid but config.Parse accepts it:\n%s", e.Kind, e.Text)
	}
	return nil
}
