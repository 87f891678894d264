package config

import (
	"encoding/json"
	"math/big"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func ranges(t *testing.T, rs ...string) []netipx.IPRange {
	t.Helper()
	var out []netipx.IPRange
	for _, r := range rs {
		out = append(out, netipx.MustParseIPRange(r))
	}
	return out
}

// The address-pools block of the classic MetalLB layer-2 walkthrough (the
// ConfigMap `config` in metallb-system), reproduced verbatim in testdata, must parse both as the bare config block and as the whole
// ConfigMap manifest a MetalLB user applied.
func TestWalkthrough(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{"config block", "testdata/metallb-walkthrough-config.yaml"},
		{"configmap manifest", "testdata/metallb-walkthrough-configmap.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Pools) != 1 {
				t.Fatalf("got %d pools, want 1", len(cfg.Pools))
			}
			p := cfg.PoolByName("default")
			if p == nil {
				t.Fatal(`no pool "default"`)
			}
			if p.Protocol != Layer2 || !p.AutoAssigns() || p.AvoidBuggyIPs {
				t.Errorf("pool = %+v", p)
			}
			if want := ranges(t, "192.168.92.200-192.168.92.210"); !reflect.DeepEqual(p.Ranges, want) {
				t.Errorf("Ranges = %v, want %v", p.Ranges, want)
			}
			if p.Size().Int64() != 11 {
				t.Errorf("Size = %v, want 11", p.Size())
			}
			if cfg.ClusterID != DefaultClusterID || len(cfg.Peers) != 0 {
				t.Errorf("cfg = %+v", cfg)
			}
		})
	}
}

// A manifest may carry other documents, as MetalLB's example files do.
func TestConfigMapAmongOtherDocuments(t *testing.T) {
	cm, err := os.ReadFile("testdata/metallb-walkthrough-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	input := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n---\n" + string(cm) + "---\n"
	cfg := mustParse(t, input)
	if cfg.PoolByName("default") == nil {
		t.Errorf("pool not found: %+v", cfg)
	}
}

func TestFullExample(t *testing.T) {
	cfg, err := Load("testdata/full-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterID != "lab-east" {
		t.Errorf("ClusterID = %q", cfg.ClusterID)
	}

	p0 := cfg.Peers[0]
	if p0.Address != netip.MustParseAddr("203.0.113.1") || p0.Source != netip.MustParseAddr("203.0.113.10") ||
		p0.ID != netip.MustParseAddr("198.51.100.10") || p0.PeerPort != 179 ||
		p0.HoldTime.Duration != 90*time.Second || p0.KeepaliveTime.Duration != 30*time.Second ||
		!p0.EBGPMultiHop || !p0.GracefulRestart || p0.Password != "s3cret" {
		t.Errorf("peers[0] = %+v", p0)
	}
	if len(p0.NodeSelector) != 1 || !p0.NodeSelector[0].Matches(labels.Set{"rack": "r1"}) ||
		p0.NodeSelector[0].Matches(labels.Set{"rack": "r1", "node-role.kubernetes.io/control-plane": ""}) {
		t.Errorf("peers[0] selector = %v", p0.NodeSelector)
	}
	p1 := cfg.Peers[1]
	if p1.Address != netip.MustParseAddr("2001:db8::1") || p1.Source.IsValid() || p1.ID.IsValid() || p1.NodeSelector != nil {
		t.Errorf("peers[1] = %+v", p1)
	}
	if s := p1.PasswordSecret; s == nil || *s != (SecretKeyRef{Namespace: "kube-system", Name: "bgp-peer-password", Key: "password"}) {
		t.Errorf("peers[1].password-secret = %+v", s)
	}

	pub := cfg.PoolByName("public")
	if pub == nil || pub.Protocol != BGP || !pub.AutoAssigns() || !pub.AvoidBuggyIPs || pub.Priority != 10 {
		t.Fatalf("public = %+v", pub)
	}
	if want := ranges(t, "198.51.100.0-198.51.100.63", "2001:db8:100::-2001:db8:100::ff"); !reflect.DeepEqual(pub.Ranges, want) {
		t.Errorf("public.Ranges = %v", pub.Ranges)
	}
	// 64 - .0 = 63 IPv4 (avoid-buggy-ips), plus 256 IPv6.
	if pub.Size().Int64() != 63+256 {
		t.Errorf("public.Size = %v", pub.Size())
	}
	a0, a1 := pub.BGPAdvertisements[0], pub.BGPAdvertisements[1]
	if v4, v6 := a0.AggregationLengths(); v4 != 32 || v6 != 128 || *a0.LocalPref != 100 {
		t.Errorf("advertisement 0 = %+v", a0)
	}
	if !reflect.DeepEqual(a0.ParsedCommunities, []uint32{65535<<16 | 65282, 64500<<16 | 200}) ||
		!reflect.DeepEqual(a0.ParsedLargeCommunities, []LargeCommunity{{64500, 1, 2}}) {
		t.Errorf("advertisement 0 communities = %v %v", a0.ParsedCommunities, a0.ParsedLargeCommunities)
	}
	if v4, v6 := a1.AggregationLengths(); v4 != 26 || v6 != 120 || !reflect.DeepEqual(a1.ParsedCommunities, []uint32{64500<<16 | 100}) {
		t.Errorf("advertisement 1 = %+v", a1)
	}
	if got := a1.Prefix(netip.MustParseAddr("198.51.100.7")); got != netip.MustParsePrefix("198.51.100.0/26") {
		t.Errorf("Prefix = %v", got)
	}
	if !reflect.DeepEqual(pub.Namespaces, []string{"web", "shop"}) {
		t.Errorf("namespaces = %v", pub.Namespaces)
	}
	if len(pub.ServiceSelector) != 2 || !pub.ServiceSelector[0].Matches(labels.Set{"exposure": "public"}) ||
		!pub.ServiceSelector[1].Matches(labels.Set{"tier": "edge"}) || pub.ServiceSelector[1].Matches(labels.Set{"tier": "db"}) {
		t.Errorf("service selectors = %v", pub.ServiceSelector)
	}
	if len(pub.NodeSelector) != 1 || pub.NodeSelector[0].String() != "bgp-speaker=true" {
		t.Errorf("node selectors = %v", pub.NodeSelector)
	}

	lan := cfg.PoolByName("lan")
	if lan == nil || lan.AutoAssigns() || len(lan.BGPAdvertisements) != 0 || !reflect.DeepEqual(lan.Interfaces, []string{"eth1", "bond0.100"}) {
		t.Fatalf("lan = %+v", lan)
	}
	if want := ranges(t, "203.0.113.64-203.0.113.95", "203.0.113.100-203.0.113.110", "2001:db8:200::10-2001:db8:200::1f"); !reflect.DeepEqual(lan.Ranges, want) {
		t.Errorf("lan.Ranges = %v", lan.Ranges)
	}

	if len(cfg.BFDProfiles) != 1 || cfg.BFDProfiles[0].Name != "fast" || *cfg.BFDProfiles[0].MinimumTTL != 254 {
		t.Errorf("bfd-profiles = %+v", cfg.BFDProfiles)
	}
	topo := cfg.NodeTopology
	if len(topo) != 3 || topo[0].Selector.String() != "rack=r1" || topo[1].Selector != nil ||
		!reflect.DeepEqual(topo[1].Prefixes, []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25"), netip.MustParsePrefix("2001:db8:300::/64")}) ||
		!topo[2].Selector.Empty() || topo[2].Zone != "" {
		t.Errorf("node-topology = %+v", topo)
	}
	if !reflect.DeepEqual(cfg.RemovedNodes, []string{"worker-7", "worker-9.lab.example"}) {
		t.Errorf("removed-nodes = %v", cfg.RemovedNodes)
	}
}

// The full example is also the reference's example: it must show every key
// the schema has, so that the documentation cannot fall behind the code.
func TestFullExampleShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile("testdata/full-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile("REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ref), "```yaml\n"+string(data)+"```\n") {
		t.Error("REFERENCE.md's full example differs from testdata/full-example.yaml")
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == durationType || seen[typ] {
			return
		}
		seen[typ] = true
		for _, f := range fields(typ) {
			if !strings.Contains(string(data), f.name+":") {
				t.Errorf("full-example.yaml does not show %s.%s (%q)", typ.Name(), f.name, f.name)
			}
			if !strings.Contains(string(ref), "`"+f.name+"`") {
				t.Errorf("REFERENCE.md does not document %s.%s (`%s`)", typ.Name(), f.name, f.name)
			}
			walk(typ.Field(f.index).Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
}

func TestDefaultsAndAccepted(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(t *testing.T, c *Config)
	}{
		{"empty file", "", func(t *testing.T, c *Config) {
			if c.ClusterID != "baremetal" || len(c.Pools) != 0 {
				t.Errorf("%+v", c)
			}
		}},
		{"only comments", "# nothing yet\n---\n", func(t *testing.T, c *Config) {}},
		{"peer defaults", okPeer, func(t *testing.T, c *Config) {
			p := c.Peers[0]
			if p.PeerPort != 179 || p.HoldTime.Duration != 90*time.Second || p.KeepaliveTime.Duration != 30*time.Second {
				t.Errorf("%+v", p)
			}
		}},
		{"hold-time 0 means no keepalives", okPeer + "  hold-time: 0s\n", func(t *testing.T, c *Config) {
			if p := c.Peers[0]; p.HoldTime.Duration != 0 || p.KeepaliveTime.Duration != 0 {
				t.Errorf("%+v", p)
			}
		}},
		{"hold-time truncated to seconds", okPeer + "  hold-time: 3.9s\n  peer-port: 1179\n", func(t *testing.T, c *Config) {
			if p := c.Peers[0]; p.HoldTime.Duration != 3*time.Second || p.KeepaliveTime.Duration != time.Second || p.PeerPort != 1179 {
				t.Errorf("%+v", p)
			}
		}},
		{"hold-time null is the default", okPeer + "  hold-time:\n", func(t *testing.T, c *Config) {
			if p := c.Peers[0]; p.HoldTime.Duration != 90*time.Second {
				t.Errorf("%+v", p)
			}
		}},
		{"same router per rack", "peers:\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: a}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: b}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, peer-port: 1179}\n", func(t *testing.T, c *Config) {}},
		{"auto-assign", okPool + "- name: off\n  protocol: layer2\n  addresses: [198.51.100.0/28]\n  auto-assign: no\n", func(t *testing.T, c *Config) {
			if !c.Pools[0].AutoAssigns() || c.PoolByName("off").AutoAssigns() {
				t.Errorf("%+v", c.Pools)
			}
		}},
		{"YAML 1.1 booleans", okPool + "  avoid-buggy-ips: yes\n", func(t *testing.T, c *Config) {
			if !c.Pools[0].AvoidBuggyIPs {
				t.Error("yes is not true")
			}
		}},
		{"string fields keep the scalar's text", "address-pools:\n- name: 0123\n  protocol: layer2\n  addresses: [203.0.113.0/28]\n", func(t *testing.T, c *Config) {
			if c.Pools[0].Name != "0123" {
				t.Errorf("name = %q", c.Pools[0].Name)
			}
		}},
		{"bgp pool gets MetalLB's default advertisement", "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n", func(t *testing.T, c *Config) {
			ads := c.Pools[0].BGPAdvertisements
			if len(ads) != 1 {
				t.Fatalf("%+v", ads)
			}
			if v4, v6 := ads[0].AggregationLengths(); v4 != 32 || v6 != 128 {
				t.Errorf("lengths %d %d", v4, v6)
			}
		}},
		{"ranges sorted and merged", "address-pools:\n- name: p\n  protocol: layer2\n  addresses:\n  - 2001:db8::/120\n  - 203.0.113.16/28\n  - 203.0.113.0 -203.0.113.15\n  - 198.51.100.9-198.51.100.9\n", func(t *testing.T, c *Config) {
			want := ranges(t, "198.51.100.9-198.51.100.9", "203.0.113.0-203.0.113.31", "2001:db8::-2001:db8::ff")
			if !reflect.DeepEqual(c.Pools[0].Ranges, want) {
				t.Errorf("Ranges = %v, want %v", c.Pools[0].Ranges, want)
			}
		}},
		{"single address as /32", "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [203.0.113.9/32, 2001:db8::9/128]\n", func(t *testing.T, c *Config) {
			if c.Pools[0].Size().Int64() != 2 {
				t.Errorf("size %v", c.Pools[0].Size())
			}
		}},
		{"communities by name and value, large with prefix", "bgp-communities: {a: \"1:2\"}\naddress-pools:\n- name: p\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n  bgp-advertisements:\n  - communities: [a, \"0:65535\"]\n    large-communities: [\"large:1:2:3\", \"4294967295:0:0\"]\n    aggregation-length: 28\n", func(t *testing.T, c *Config) {
			a := c.Pools[0].BGPAdvertisements[0]
			if !reflect.DeepEqual(a.ParsedCommunities, []uint32{1<<16 | 2, 65535}) ||
				!reflect.DeepEqual(a.ParsedLargeCommunities, []LargeCommunity{{1, 2, 3}, {4294967295, 0, 0}}) {
				t.Errorf("%+v", a)
			}
			if v4, _ := a.AggregationLengths(); v4 != 28 {
				t.Errorf("explicit 28 became %d", v4)
			}
		}},
		{"topology by subnet only", "node-topology:\n- zone: z1\n  subnets: [203.0.113.0/24]\n", func(t *testing.T, c *Config) {
			if r := c.NodeTopology[0]; r.Selector != nil || r.Prefixes[0] != netip.MustParsePrefix("203.0.113.0/24") {
				t.Errorf("%+v", r)
			}
		}},
		{"folded ConfigMap block", "kind: ConfigMap\ndata:\n  config: \"address-pools: [{name: a, protocol: layer2, addresses: [203.0.113.0/28]}]\"\n", func(t *testing.T, c *Config) {
			if c.PoolByName("a") == nil {
				t.Errorf("%+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.input))
		})
	}
}

// Errors inside a non-literal ConfigMap block cannot be mapped to file
// lines, so they carry none rather than wrong ones.
func TestFoldedConfigMapErrorsHaveNoLines(t *testing.T) {
	_, err := Parse([]byte("kind: ConfigMap\ndata:\n  config: \"address-pools: [{name: a, protocol: l2, addresses: [203.0.113.0/28]}]\"\n"))
	if err == nil || err.Error() != `address-pools[0].protocol: "l2" is not a protocol: want layer2 or bgp` {
		t.Errorf("got %v", err)
	}
}

func TestPoolHelpers(t *testing.T) {
	cfg := mustParse(t, `
address-pools:
- name: mixed
  protocol: layer2
  avoid-buggy-ips: true
  addresses:
  - 203.0.113.250-203.0.114.5
  - 2001:db8::/64
- name: v4
  protocol: layer2
  addresses: [198.51.100.0/24]
`)
	mixed, v4only := cfg.PoolByName("mixed"), cfg.PoolByName("v4")
	if cfg.PoolByName("nope") != nil {
		t.Error("PoolByName(nope) != nil")
	}
	tests := []struct {
		ip                 string
		contains, assigned bool
	}{
		{"203.0.113.249", false, false},
		{"203.0.113.250", true, true},
		{"203.0.113.255", true, false},
		{"203.0.114.0", true, false},
		{"203.0.114.5", true, true},
		{"203.0.114.6", false, false},
		{"::ffff:203.0.113.251", true, true},
		{"2001:db8::", true, true},
		{"2001:db8::ffff:ffff:ffff:ffff", true, true},
		{"2001:db8:0:1::", false, false},
		{"198.51.100.1", false, false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := mixed.Contains(ip); got != tt.contains {
			t.Errorf("Contains(%s) = %v", ip, got)
		}
		if got := mixed.Assignable(ip); got != tt.assigned {
			t.Errorf("Assignable(%s) = %v", ip, got)
		}
	}
	if !v4only.Assignable(netip.MustParseAddr("198.51.100.0")) {
		t.Error(".0 not assignable without avoid-buggy-ips")
	}
	if v4, v6 := mixed.Families(); !v4 || !v6 {
		t.Errorf("Families(mixed) = %v, %v", v4, v6)
	}
	if v4, v6 := v4only.Families(); !v4 || v6 {
		t.Errorf("Families(v4) = %v, %v", v4, v6)
	}
	// 12 IPv4 addresses less .255 and .0, plus 2^64.
	want := new(big.Int).Lsh(big.NewInt(1), 64)
	want.Add(want, big.NewInt(10))
	if got := mixed.Size(); got.Cmp(want) != 0 {
		t.Errorf("Size = %v, want %v", got, want)
	}
	if got := v4only.Size(); got.Int64() != 256 {
		t.Errorf("Size = %v, want 256", got)
	}
	var empty Pool
	if empty.Size().Sign() != 0 || empty.Contains(netip.MustParseAddr("203.0.113.1")) {
		t.Error("empty pool is not empty")
	}
}

func TestCountMod256(t *testing.T) {
	for _, c := range [][2]uint32{{0, 0}, {0, 255}, {1, 254}, {250, 1030}, {0, 1<<32 - 1}, {1<<32 - 2, 1<<32 - 1}} {
		for _, r := range []int64{0, 255} {
			want := int64(0)
			if c[1]-c[0] < 5000 {
				for x := uint64(c[0]); x <= uint64(c[1]); x++ {
					if int64(x%256) == r {
						want++
					}
				}
			} else {
				want = int64(uint64(c[1])-uint64(c[0])+1) / 256
			}
			if got := countMod256(c[0], c[1], r); got != want {
				t.Errorf("countMod256(%d, %d, %d) = %d, want %d", c[0], c[1], r, got, want)
			}
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || d.Duration != 90*time.Second {
		t.Errorf("Unmarshal = %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`null`), &d); err != nil || d.Duration != 90*time.Second {
		t.Errorf("Unmarshal(null) = %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"ninety"`), &d); err == nil || !strings.Contains(err.Error(), `"ninety" is not a duration`) {
		t.Errorf("Unmarshal(ninety) error = %v", err)
	}
	if err := json.Unmarshal([]byte(`90`), &d); err == nil || !strings.Contains(err.Error(), `90 is not a duration`) {
		t.Errorf("Unmarshal(90) error = %v", err)
	}
	b, err := json.Marshal(struct{ D Duration }{Duration{3 * time.Second}})
	if err != nil || string(b) != `{"D":"3s"}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
}

// TestAncestors: a path's text and its ancestors', nearest first. A "." or
// "[" inside a quoted key gives a prefix that is no path: it ends inside an
// open `["`.
func TestAncestors(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{""}},
		{"peers", []string{"peers", ""}},
		{"peers[0]", []string{"peers[0]", "peers", ""}},
		{"peers[0].node-selectors", []string{"peers[0].node-selectors", "peers[0]", "peers", ""}},
		{`a.match-labels["x.io/y"]`, []string{`a.match-labels["x.io/y"]`, `a.match-labels["x`, "a.match-labels", "a", ""}},
		{`a.match-labels["q[\"z"]`, []string{`a.match-labels["q[\"z"]`, `a.match-labels["q`, "a.match-labels", "a", ""}},
		{`bgp-communities["a.b"]`, []string{`bgp-communities["a.b"]`, `bgp-communities["a`, "bgp-communities", ""}},
	}
	for _, tt := range tests {
		var got []string
		ancestors(tt.in, func(p string) bool {
			got = append(got, p)
			return true
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("ancestors(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestStepText: the decoder's texts are field.Path's.
func TestStepText(t *testing.T) {
	root := step{}
	sel := root.child("peers").index(0).child("node-selectors").index(12).child("match-labels")
	for _, s := range []step{
		root.child("cluster-id"),
		root.child("x.y"),
		root.child("peers").index(3),
		sel,
		sel.child("rack"),
		sel.child("example.com/rack"),
		sel.child(`q["z`),
		sel.child(""),
		sel.child("\xff"),
		root.child("bgp-communities").child("a.b").index(1).child("c"),
	} {
		if want := pathText(s.path); s.text != want {
			t.Errorf("step text %q, field.Path %q", s.text, want)
		}
	}
}

// TestLineOfNearestAncestor: a problem with a key that is absent is on the
// line of the nearest value that is there, and one inside a dropped value
// is suppressed.
func TestLineOfNearestAncestor(t *testing.T) {
	d := newDecoder()
	d.lines["peers"] = 2
	d.lines["peers[0]"] = 3
	d.lines[`peers[0].node-selectors[0].match-labels`] = 7
	d.bad["peers[1]"] = true
	sel := field.NewPath("peers").Index(0).Child("node-selectors").Index(0).Child("match-labels")
	tests := []struct {
		path       *field.Path
		line       int
		suppressed bool
	}{
		{nil, 0, false},
		{field.NewPath("peers").Index(0), 3, false},
		{field.NewPath("peers").Index(0).Child("peer-address"), 3, false},
		{child(sel, "x.io/y"), 7, false},
		{child(sel, `q["z`), 7, false},
		{field.NewPath("peers").Index(1).Child("my-asn"), 2, true},
		{field.NewPath("peers").Index(10), 2, false},
	}
	for _, tt := range tests {
		if got := d.lineOf(pathText(tt.path)); got != tt.line {
			t.Errorf("lineOf(%s) = %d, want %d", pathText(tt.path), got, tt.line)
		}
		if got := d.suppressed(pathText(tt.path)); got != tt.suppressed {
			t.Errorf("suppressed(%s) = %v, want %v", pathText(tt.path), got, tt.suppressed)
		}
	}
}

// TestBFDProfiles: a peer's bfd-profile resolves to its profile, with
// MetalLB's defaults for what the profile leaves out.
func TestBFDProfiles(t *testing.T) {
	cfg, err := Parse([]byte(`bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  passive-mode: true
- name: defaults
peers:
- {peer-address: 192.0.2.1, peer-asn: 64501, my-asn: 64500, bfd-profile: fast}
- {peer-address: 192.0.2.2, peer-asn: 64501, my-asn: 64500, bfd-profile: defaults, ebgp-multihop: true}
- {peer-address: 192.0.2.3, peer-asn: 64501, my-asn: 64500}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer                   int
		name                   string
		rx, tx, mult, ttl, eco uint32
		passive                bool
	}{
		{0, "fast", 100, 100, 3, 254, 50, true},
		{1, "defaults", 300, 300, 3, 254, 50, false},
	}
	for _, tt := range tests {
		b := cfg.Peers[tt.peer].BFD
		if b == nil || b.Name != tt.name || *b.ReceiveInterval != tt.rx || *b.TransmitInterval != tt.tx ||
			*b.DetectMultiplier != tt.mult || *b.MinimumTTL != tt.ttl || *b.EchoInterval != tt.eco || b.PassiveMode != tt.passive {
			t.Errorf("peers[%d].BFD = %+v, want profile %q", tt.peer, b, tt.name)
		}
	}
	if cfg.Peers[2].BFD != nil {
		t.Errorf("peers[2] has BFD %+v without bfd-profile", cfg.Peers[2].BFD)
	}
}
