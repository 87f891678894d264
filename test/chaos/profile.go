package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// profile is the size and mix of one run.
type profile struct {
	Name string
	// Ops is how many operations to draw (faults included).
	Ops int
	// FaultEvery is the mean number of operations between two faults.
	FaultEvery int
	// InitialServices are created before the first operation; MaxLive
	// bounds the Services alive at once (a create then becomes a delete).
	InitialServices, MaxLive int
	// Percentages of drawn Services that are ClusterIP, name a pool, or ask
	// for an address.
	ClusterIPPercent, PinnedPercent, RequestPercent int
	// Families are drawn from these, with the weights.
	Families       []familyChoice
	FamilyWeights  []int
	Weights        map[string]int // operation kind -> weight
	V4Bits, V6Bits int            // pool block sizes
	Initial        []poolSpec     // block indices into the table of V4Bits/V6Bits blocks
	// MaxPause is the longest pause between two operations.
	MaxPause time.Duration
	// Workers create the initial Services in parallel.
	Workers int
}

// The operation kinds. Faults are drawn separately, on a schedule.
const (
	opCreate        = "create"
	opDelete        = "delete"
	opRetype        = "retype"
	opEditIPs       = "edit-ips"
	opEditShare     = "edit-share"
	opEditPool      = "edit-pool"
	opEditPorts     = "edit-ports"
	opEditFamily    = "edit-family"
	opTouch         = "touch"
	opConfigValid   = "config-accepted"
	opConfigInvalid = "config-refused"
)

const (
	faultKillLeader = "kill-leader"
	faultKillBoth   = "kill-both"
	faultZombie     = "zombie"
)

var opKinds = []string{opCreate, opDelete, opRetype, opEditIPs, opEditShare, opEditPool, opEditPorts, opEditFamily, opTouch, opConfigValid, opConfigInvalid}

// v6Block names the n-th IPv6 block of the table newBlockTable makes: the
// IPv4 blocks come first, 2^(v4Bits-24) per documentation /24.
func v6Block(v4Bits, n int) int { return len(v4Space)<<(v4Bits-24) + n }

// shortProfile runs in `make test`: few Services, small pools that run out,
// a few hundred operations and at least 10 faults in well under 3 minutes.
func shortProfile() *profile {
	const v4Bits, v6Bits = 29, 125 // 8 addresses per block
	perNet := 1 << (v4Bits - 24)
	return &profile{
		Name: "short", Ops: 300, FaultEvery: 22,
		InitialServices: 30, MaxLive: 50,
		ClusterIPPercent: 10, PinnedPercent: 40, RequestPercent: 12,
		Families:      []familyChoice{v4Only, v6Only, preferV4, requireV4},
		FamilyWeights: []int{55, 10, 20, 15},
		Weights: map[string]int{
			opCreate: 14, opDelete: 10, opRetype: 10, opEditIPs: 6, opEditShare: 6, opEditPool: 9,
			opEditPorts: 6, opEditFamily: 5, opTouch: 14, opConfigValid: 6, opConfigInvalid: 2,
		},
		V4Bits: v4Bits, V6Bits: v6Bits,
		Initial: []poolSpec{
			{Name: "alpha", AutoAssign: true, Blocks: []int{0, v6Block(v4Bits, 0)}},
			{Name: "beta", AutoAssign: true, Blocks: []int{perNet}},
			{Name: "pinned", AutoAssign: false, Blocks: []int{2 * perNet, v6Block(v4Bits, 1)}},
		},
		MaxPause: 40 * time.Millisecond,
		Workers:  4,
	}
}

// soakProfile runs behind CHAOS_PROFILE=soak (`make soak`): 5,000 Services
// and at least 200 faults. Most Services are IPv6-only, because the IPv4
// documentation ranges hold 768 addresses; IPv4 still runs out at times.
// Few wait for an address: the CCM nudges every waiting Service on each
// release, so thousands waiting would measure that, not the invariants.
func soakProfile() *profile {
	const v4Bits, v6Bits = 26, 116 // 64 and 4,096 addresses per block
	perNet := 1 << (v4Bits - 24)
	return &profile{
		Name: "soak", Ops: 5000, FaultEvery: 20,
		InitialServices: 5000, MaxLive: 5200,
		ClusterIPPercent: 5, PinnedPercent: 30, RequestPercent: 5,
		Families:      []familyChoice{v4Only, v6Only, preferV4, requireV4},
		FamilyWeights: []int{3, 93, 2, 2},
		Weights: map[string]int{
			opCreate: 12, opDelete: 12, opRetype: 10, opEditIPs: 5, opEditShare: 6, opEditPool: 9,
			opEditPorts: 6, opEditFamily: 5, opTouch: 14, opConfigValid: 5, opConfigInvalid: 2,
		},
		V4Bits: v4Bits, V6Bits: v6Bits,
		Initial: []poolSpec{
			{Name: "alpha", AutoAssign: true, Blocks: []int{0, 1, v6Block(v4Bits, 0), v6Block(v4Bits, 1)}},
			{Name: "beta", AutoAssign: true, Blocks: []int{perNet, v6Block(v4Bits, 2)}},
			{Name: "pinned", AutoAssign: false, Blocks: []int{2 * perNet, v6Block(v4Bits, 3)}},
		},
		MaxPause: 10 * time.Millisecond,
		Workers:  8,
	}
}

func profileByName(name string) (*profile, error) {
	switch name {
	case "", "short":
		return shortProfile(), nil
	case "soak":
		return soakProfile(), nil
	}
	return nil, fmt.Errorf("CHAOS_PROFILE=%q: want short or soak", name)
}

func (p *profile) drawFamilies(r *rand.Rand) familyChoice {
	return p.Families[weighted(r, p.FamilyWeights)]
}

// drawOp draws an operation kind by weight, in opKinds order so that a seed
// gives the same sequence whatever map iteration does.
func (p *profile) drawOp(r *rand.Rand) string {
	w := make([]int, len(opKinds))
	for i, k := range opKinds {
		w[i] = p.Weights[k]
	}
	return opKinds[weighted(r, w)]
}

func weighted(r *rand.Rand, w []int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := r.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

// initialConfig is the profile's first cloud-config.
func (p *profile) initialConfig() *cloudConfig {
	c := &cloudConfig{bt: newBlockTable(p.V4Bits, p.V6Bits)}
	for _, ps := range p.Initial {
		ps.Blocks = append([]int(nil), ps.Blocks...)
		c.Pools = append(c.Pools, ps)
	}
	return c
}
