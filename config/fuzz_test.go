package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// FuzzParse checks that Parse never panics, that its errors are well
// formed, and that any config it accepts is a fixed point: written back out
// (as JSON, which is YAML) it parses again to the same config, defaults and
// parsed fields included. The seed corpus is in testdata/fuzz/FuzzParse; it
// includes the MetalLB walkthrough block and the full example.
func FuzzParse(f *testing.F) {
	// okPeer's address is in okPool, which is refused; this peer is not.
	f.Add([]byte(okPool + strings.Replace(okPeer, "203.0.113.1", "192.0.2.1", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			checkErrors(t, err)
			return
		}
		checkInvariants(t, cfg)
		want := fingerprint(t, cfg)
		again, err := Parse(data)
		if err != nil || fingerprint(t, again) != want {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		cfg2, err := Parse(out)
		if err != nil {
			t.Fatalf("an accepted config, written out, does not parse:\n%s\n%v", out, err)
		}
		if got := fingerprint(t, cfg2); got != want {
			t.Fatalf("an accepted config, written out, parses differently:\nfirst:  %s\nsecond: %s", want, got)
		}
	})
}

func checkErrors(t *testing.T, err error) {
	var errs Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error is not a non-empty Errors: %#v", err)
	}
	for _, e := range errs {
		if e == nil || e.Err == nil || e.Err.Detail == "" || e.Line < 0 || e.Err.BadValue != nil ||
			e.Err.Type == field.ErrorTypeInternal || strings.Contains(e.Err.Detail, "internal error") {
			t.Fatalf("bad problem %#v in %v", e, err)
		}
	}
}

// checkInvariants checks what users of a parsed Config rely on.
func checkInvariants(t *testing.T, cfg *Config) {
	for i := range cfg.Pools {
		p := &cfg.Pools[i]
		for j, r := range p.Ranges {
			if !r.IsValid() || (j > 0 && !p.Ranges[j-1].To().Next().Less(r.From())) {
				t.Fatalf("pool %q: Ranges not sorted, disjoint and merged: %v", p.Name, p.Ranges)
			}
		}
		for _, a := range p.Addresses {
			r, err := parseAddressEntry(a)
			if err != nil || !p.Contains(r.From()) || !p.Contains(r.To()) {
				t.Fatalf("pool %q: %q is not in Ranges %v (%v)", p.Name, a, p.Ranges, err)
			}
		}
		for _, q := range cfg.Pools[i+1:] {
			for _, r := range q.Ranges {
				if p.Contains(r.From()) || p.Contains(r.To()) {
					t.Fatalf("pools %q and %q overlap", p.Name, q.Name)
				}
			}
		}
		if p.Protocol == BGP && len(p.BGPAdvertisements) == 0 {
			t.Fatalf("bgp pool %q has no advertisement", p.Name)
		}
	}
	for _, p := range cfg.Peers {
		if !p.Address.IsValid() || p.PeerPort == 0 || p.PeerASN == 0 || p.MyASN == 0 {
			t.Fatalf("peer %+v", p)
		}
	}
}

// fingerprint renders a Config with its parsed fields, which JSON omits.
func fingerprint(t *testing.T, cfg *Config) string {
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var b strings.Builder
	b.Write(js)
	for _, p := range cfg.Pools {
		fmt.Fprintf(&b, "|%v %v %v %v", p.Ranges, p.ServiceSelector, p.NodeSelector, p.AutoAssigns())
		for _, a := range p.BGPAdvertisements {
			v4, v6 := a.AggregationLengths()
			fmt.Fprintf(&b, " %d %d %v %v", v4, v6, a.ParsedCommunities, a.ParsedLargeCommunities)
		}
	}
	for _, p := range cfg.Peers {
		fmt.Fprintf(&b, "|%v %v %v %v", p.Address, p.Source, p.ID, p.NodeSelector)
		if p.BFD != nil {
			bfd, _ := json.Marshal(p.BFD)
			fmt.Fprintf(&b, " bfd %s", bfd)
		}
	}
	for _, r := range cfg.NodeTopology {
		fmt.Fprintf(&b, "|%v %v", r.Selector, r.Prefixes)
	}
	return b.String()
}
