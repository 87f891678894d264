package coverage

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const before = `address-pools:
- name: lan
  protocol: layer2
  addresses: [203.0.113.200-203.0.113.210]
- name: old
  protocol: layer2
  interfaces: [eth1]
  addresses: [192.0.2.0/28]
`

// after drops pool old.
const after = `address-pools:
- name: lan
  protocol: layer2
  addresses: [203.0.113.200-203.0.113.210]
`

// retained is what the CCM publishes for old's address still in use.
const retained = `address-pools:
- name: old
  protocol: layer2
  interfaces: [eth1]
  auto-assign: false
  addresses: [192.0.2.5/32]
`

func use(ips ...string) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for _, ip := range ips {
		m[netip.MustParseAddr(ip)] = true
	}
	return m
}

func TestResolve(t *testing.T) {
	a, b := "203.0.113.201", "192.0.2.5"
	ipA, ipB := netip.MustParseAddr(a), netip.MustParseAddr(b)
	c := New()
	got := c.Resolve(parse(t, before), nil, use(a, b))
	if got[ipA].Pool.Name != "lan" || got[ipB].Pool.Name != "old" || got[ipB].Source != FromConfig {
		t.Fatalf("before the edit: %+v", got)
	}

	// The edit drops old: its address in use is remembered.
	got = c.Resolve(parse(t, after), nil, use(a, b))
	if cov := got[ipB]; cov.Pool == nil || cov.Pool.Name != "old" || cov.Source != FromMemory || cov.Pool.Interfaces[0] != "eth1" {
		t.Fatalf("after the edit, without the CCM's ConfigMap: %+v", cov)
	}

	// The CCM publishes it: the ConfigMap's pool takes over.
	got = c.Resolve(parse(t, after), parse(t, retained), use(a, b))
	if cov := got[ipB]; cov.Pool == nil || cov.Source != FromRetained {
		t.Fatalf("with the CCM's ConfigMap: %+v", cov)
	}

	// The Service lets go of it: forgotten, and not covered again when
	// it comes back.
	got = c.Resolve(parse(t, after), nil, use(a))
	if _, ok := got[ipB]; ok {
		t.Fatalf("released address still covered: %+v", got)
	}
	got = c.Resolve(parse(t, after), nil, use(a, b))
	if _, ok := got[ipB]; ok {
		t.Fatalf("an address taken anew outside every pool is covered: %+v", got)
	}

	// A restarted announcer knows what the ConfigMap says only.
	fresh := New()
	if got := fresh.Resolve(parse(t, after), parse(t, retained), use(b)); got[ipB].Source != FromRetained {
		t.Errorf("after a restart: %+v", got)
	}
	if got := fresh.Resolve(parse(t, after), nil, use("192.0.2.6")); len(got) != 0 {
		t.Errorf("unknown address covered: %+v", got)
	}
}

func TestConfigWinsOverRetained(t *testing.T) {
	c := New()
	// The CCM and this announcer read the file at different moments: the
	// address is back in the cloud-config while the ConfigMap still lists
	// it.
	got := c.Resolve(parse(t, before), parse(t, retained), use("192.0.2.5"))
	if cov := got[netip.MustParseAddr("192.0.2.5")]; cov.Source != FromConfig {
		t.Errorf("covered by %v, want the cloud-config", cov.Source)
	}
}

func TestParseRetained(t *testing.T) {
	if c, err := ParseRetained(nil); err != nil || len(c.Pools) != 0 {
		t.Errorf("no data: %v, %v", c, err)
	}
	if c, err := ParseRetained(map[string]string{RetainedKey: ""}); err != nil || len(c.Pools) != 0 {
		t.Errorf("empty document: %v, %v", c, err)
	}
	c, err := ParseRetained(map[string]string{RetainedKey: retained})
	if err != nil || len(c.Pools) != 1 || c.Pools[0].Name != "old" {
		t.Errorf("retained: %+v, %v", c, err)
	}
	if _, err := ParseRetained(map[string]string{RetainedKey: "address-pools: [{name: x}]"}); err == nil || !strings.Contains(err.Error(), RetainedKey) {
		t.Errorf("invalid document: %v", err)
	}
}
