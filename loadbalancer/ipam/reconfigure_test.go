package ipam

import (
	"strings"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

func TestReconfigure(t *testing.T) {
	inNamespaces := func(p config.Pool, ns ...string) config.Pool {
		p.Namespaces = ns
		return p
	}
	buggy := func(p config.Pool) config.Pool {
		p.AvoidBuggyIPs = true
		return p
	}
	// Every case starts from pool "a" = 192.0.2.0/30 with a/x holding
	// 192.0.2.0 and a/y holding 192.0.2.1.
	tests := []struct {
		name      string
		pools     []config.Pool
		wantErr   []string // substrings; nil means success
		wantPools map[string]string
	}{
		{
			name:      "widened pool keeps both",
			pools:     []config.Pool{mkPool("a", "192.0.2.0/29")},
			wantPools: map[string]string{"a/x": "a", "a/y": "a"},
		},
		{
			name:      "renamed and split pools re-home each address",
			pools:     []config.Pool{mkPool("one", "192.0.2.0/32"), mkPool("two", "192.0.2.1-192.0.2.3")},
			wantPools: map[string]string{"a/x": "one", "a/y": "two"},
		},
		{
			name:    "dropping an address in use is refused",
			pools:   []config.Pool{mkPool("a", "192.0.2.1-192.0.2.3")},
			wantErr: []string{"192.0.2.0 (held by a/x) would be in no address pool"},
		},
		{
			name:    "removing the pool names every address",
			pools:   []config.Pool{mkPool("b", "198.51.100.0/30")},
			wantErr: []string{"2 address(es)", "192.0.2.0 (held by a/x)", "192.0.2.1 (held by a/y)"},
		},
		{
			name:    "avoid-buggy-ips on the .0 in use is refused",
			pools:   []config.Pool{buggy(mkPool("a", "192.0.2.0/30"))},
			wantErr: []string{`192.0.2.0 (held by a/x) would be skipped by avoid-buggy-ips in pool "a"`},
		},
		{
			name:    "a namespace restriction excluding a holder is refused",
			pools:   []config.Pool{inNamespaces(mkPool("a", "192.0.2.0/30"), "b")},
			wantErr: []string{`no longer allow service a/x`, `no longer allow service a/y`},
		},
		{
			name:      "a namespace restriction including the holders is fine",
			pools:     []config.Pool{inNamespaces(mkPool("a", "192.0.2.0/30"), "a")},
			wantPools: map[string]string{"a/x": "a", "a/y": "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New([]config.Pool{mkPool("a", "192.0.2.0/30")})
			for _, k := range []string{"a/x", "a/y"} {
				if _, err := a.Ensure(req4(svc(k))); err != nil {
					t.Fatal(err)
				}
			}
			before := a.Stats()
			err := a.Reconfigure(tt.pools)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Reconfigure succeeded, want an error with %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				// Refused: nothing changed.
				if got := a.Stats(); len(got) != len(before) || got[0] != before[0] {
					t.Errorf("stats after a refused reconfigure = %+v, want %+v", got, before)
				}
				if got := ips(a.Lookup("a/x")); len(got) != 1 || got[0] != "192.0.2.0" {
					t.Errorf("a/x holds %v after a refused reconfigure", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			for key, pool := range tt.wantPools {
				held := a.Lookup(key)
				if len(held) != 1 || held[0].Pool != pool {
					t.Errorf("%s holds %+v, want one address in pool %q", key, held, pool)
				}
			}
			var inUse uint64
			for _, st := range a.Stats() {
				inUse += st.InUse
			}
			if inUse != 2 {
				t.Errorf("in use after reconfigure = %d, want 2", inUse)
			}
			// The next allocation comes from the new pools and never
			// duplicates an address in use.
			got, err := a.Ensure(req4(svc("a/z")))
			if err != nil {
				t.Fatal(err)
			}
			if ip := got[0].IP.String(); ip == "192.0.2.0" || ip == "192.0.2.1" {
				t.Errorf("a/z got %s, already in use", ip)
			}
		})
	}
}
