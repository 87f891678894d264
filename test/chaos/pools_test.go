package chaos

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Every edit the suite draws is what it claims: valid edits pass
// config.Parse and invalid ones do not, over long random sequences of
// both profiles.
func TestConfigEditsAreWhatTheyClaim(t *testing.T) {
	for _, p := range []*profile{shortProfile(), soakProfile()} {
		t.Run(p.Name, func(t *testing.T) {
			if err := checkEdit(configEdit{Kind: "initial", Valid: true, Text: p.initialConfig().render()}); err != nil {
				t.Fatal(err)
			}
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 1))
				c := p.initialConfig()
				for range 60 {
					if err := checkEdit(invalidEdit(r, c)); err != nil {
						t.Fatal(err)
					}
					e := validEdit(r, c)
					if err := checkEdit(e); err != nil {
						t.Fatal(err)
					}
					c = e.Next
				}
			}
		})
	}
}

func TestRenderMergesAdjacentBlocks(t *testing.T) {
	c := testConfig()
	c.Pools[0].Blocks = append(c.Pools[0].Blocks, 1) // 192.0.2.8/29, next to alpha's first
	got := c.render()
	for _, want := range []string{
		"- name: alpha\n  protocol: layer2\n  addresses:\n  - 192.0.2.0-192.0.2.15\n  - 2001:db8:c4a0::-2001:db8:c4a0::7\n",
		"- name: pinned\n  protocol: layer2\n  auto-assign: false\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("render() lacks %q:\n%s", want, got)
		}
	}
}

// A seed fixes the operation sequence.
func TestSeedFixesTheDraws(t *testing.T) {
	draw := func() string {
		r := rand.New(rand.NewPCG(42, 42^0x9e3779b97f4a7c15))
		p := shortProfile()
		c := p.initialConfig()
		var b strings.Builder
		for i := range 50 {
			b.WriteString(p.drawOp(r))
			s := newService(r, p, "s", c)
			b.WriteString(describeNew(s))
			if i%10 == 0 {
				e := validEdit(r, c)
				c = e.Next
				b.WriteString(e.Note)
			}
		}
		return b.String()
	}
	if a, b := draw(), draw(); a != b {
		t.Error("the same seed drew different sequences")
	}
}
