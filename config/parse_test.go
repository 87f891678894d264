package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// A valid pool and peer, for tests about other parts of the file.
const (
	okPool = `
address-pools:
- name: ok
  protocol: layer2
  addresses: [203.0.113.0/28]
`
	okPeer = `
peers:
- peer-address: 203.0.113.1
  peer-asn: 64501
  my-asn: 64500
`
)

// mustFail parses input and checks that it fails with exactly the listed
// problems, each given as a substring of one line of the error, in order.
// Each want names the field path and the offending value, which is what a
// user needs to find and fix the problem.
func mustFail(t *testing.T, input string, want ...string) {
	t.Helper()
	cfg, err := Parse([]byte(input))
	if err == nil {
		t.Fatalf("Parse succeeded, want errors %q; got %+v", want, cfg)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config with its error")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	if len(errs) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d is\n\t%s\nwant it to contain\n\t%s", i, errs[i], w)
		}
	}
}

func mustParse(t *testing.T, input string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(input))
	if err != nil {
		t.Fatalf("Parse failed:\n%v", err)
	}
	return cfg
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"yaml syntax", "address-pools:\n- name: a\n  protocol: [layer2\n", []string{"not valid YAML: yaml: line "}},
		{"yaml tab indent", "address-pools:\n\t- name: a\n", []string{"not valid YAML: yaml: line 2"}},
		{"top level not a mapping", "- a\n- b\n", []string{"want a mapping, got a list (line 1)"}},
		{"unknown top-level key", "adress-pools: []\n", []string{`top level: unknown key "adress-pools", did you mean "address-pools"? (line 1)`}},
		{"unknown key, no suggestion", "zzzzzz: 1\n", []string{`top level: unknown key "zzzzzz"; known keys here: address-pools, bfd-profiles, bgp-communities, cluster-id, node-topology, peers, removed-nodes`}},
		{"unknown pool key", okPool + "  adresses: [203.0.113.0/28]\n", []string{`address-pools[0]: unknown key "adresses", did you mean "addresses"? (line 6)`}},
		{"unknown key case", okPool + "  Auto-Assign: false\n", []string{`address-pools[0]: unknown key "Auto-Assign", did you mean "auto-assign"?`}},
		// Keys under a peer are not quoted: a mis-indented password lands there.
		{"unknown peer key", okPeer + "  pasword: x\n", []string{`peers[0]: unknown key of 7 bytes (not shown: it may be a secret), did you mean "password"? (line 6)`}},
		{"unknown advertisement key", "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n  bgp-advertisements:\n  - aggregation-lenght: 24\n",
			[]string{`address-pools[0].bgp-advertisements[0]: unknown key "aggregation-lenght", did you mean "aggregation-length"? (line 6)`}},
		{"camelCase in a MetalLB node selector", okPeer + "  node-selectors:\n  - matchLabels: {rack: a}\n",
			[]string{`peers[0].node-selectors[0]: unknown key "matchLabels", did you mean "match-labels"? (line 7)`}},
		{"kebab-case in a service selector", okPool + "  service-selectors:\n  - match-labels: {app: x}\n",
			[]string{`address-pools[0].service-selectors[0]: unknown key "match-labels", did you mean "matchLabels"?`}},
		{"unknown topology key", "node-topology:\n- regoin: r\n  zone: z\n  subnets: [203.0.113.0/24]\n",
			[]string{`node-topology[0]: unknown key "regoin", did you mean "region"?`}},
		{"unknown password-secret key", okPeer + "  password-secret: {name: s, namesapce: n}\n",
			[]string{`peers[0].password-secret: unknown key of 9 bytes (not shown: it may be a secret), did you mean "namespace"?`}},
		{"duplicate key", okPool + "  name: again\n", []string{`address-pools[0]: key "name" appears twice, first on line 3 (line 6)`}},
		{"list wanted", okPool + "  namespaces: web\n", []string{`address-pools[0].namespaces: want a list, got "web" (line 6)`}},
		{"mapping wanted", "address-pools:\n- just-a-string\n", []string{`address-pools[0]: want a mapping, got "just-a-string" (line 2)`}},
		{"string wanted", okPool + "  namespaces: [[a]]\n", []string{`address-pools[0].namespaces[0]: want a string, got a list`}},
		{"quoted number", okPeer + "  peer-port: \"179\"\n", []string{`peers[0].peer-port: want a whole number, got the string "179" (remove the quotes) (line 6)`}},
		{"number out of range", okPeer + "  peer-port: 70000\n", []string{`peers[0].peer-port: 70000 is out of range: want 0 to 65535`}},
		{"unknown peer key, no suggestion", okPeer + "  local-pref: 1\n", []string{`peers[0]: unknown key of 10 bytes (not shown: it may be a secret); known keys here: bfd-profile,`}},
		{"ASN too large", "peers:\n- peer-address: 203.0.113.1\n  peer-asn: 4294967296\n  my-asn: 64500\n", []string{`peers[0].peer-asn: 4294967296 is out of range: want 0 to 4294967295`}},
		{"float for int", okPool + "  priority: 1.5\n", []string{`address-pools[0].priority: want a whole number, got "1.5"`}},
		{"bad bool", okPool + "  auto-assign: maybe\n", []string{`address-pools[0].auto-assign: want true or false, got "maybe"`}},
		{"quoted bool", okPool + "  auto-assign: \"false\"\n", []string{`address-pools[0].auto-assign: want true or false, got "false"`}},
		{"duration without unit", okPeer + "  hold-time: 90\n", []string{`peers[0].hold-time: "90" is not a duration like "90s": time: missing unit in duration "90" (line 6)`}},
		{"duration garbage", okPeer + "  keepalive-time: soon\n", []string{`peers[0].keepalive-time: "soon" is not a duration`}},
		{"duration list", okPeer + "  hold-time: [1s]\n", []string{`peers[0].hold-time: want a duration like "90s", got a list`}},
		{"non-string key", okPool + "  [a]: b\n", []string{`address-pools[0]: keys must be strings, got a list`}},
		// The rest of a mapping with a merge key is not checked: it lacks
		// the merged keys.
		{"merge key", "address-pools:\n- <<: {protocol: layer2}\n  name: a\n  addresses: [203.0.113.0/28]\n",
			[]string{`address-pools[0]: a YAML merge key (<<) is not accepted: write the values out (anchors, aliases and merge keys are refused: they can expand a small file to billions of values) (line 2)`}},
		// A merge key at the top leaves the whole file unchecked.
		{"merge key at the top", "<<: {cluster-id: a}\naddress-pools:\n- name: a\n",
			[]string{`a YAML merge key (<<) is not accepted: write the values out (anchors, aliases and merge keys are refused: they can expand a small file to billions of values) (line 1)`}},
		{"anchor and alias", "address-pools:\n- name: a\n  protocol: layer2\n  addresses: &a [203.0.113.0/28]\n- name: b\n  protocol: layer2\n  addresses: *a\n",
			[]string{`address-pools[0].addresses: a YAML anchor (&) is not accepted: write the values out (anchors`,
				`address-pools[1].addresses: a YAML alias (*) is not accepted: write the values out (anchors`}},
		{"unknown anchor", "cluster-id: *secret\n", []string{`not valid YAML: yaml: unknown anchor referenced`}},
		{"other kubernetes kind", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x}\n",
			[]string{`kind: "IPAddressPool" is not supported: give MetalLB's classic configuration`}},
		{"configmap without data.config", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  other: x\n",
			[]string{`data.config: the ConfigMap has no data.config string`}},
		{"two documents", okPool + "---\n" + okPeer, []string{`the file has 2 YAML documents, 0 of them ConfigMaps`}},
		// Lines inside a ConfigMap's literal block are lines of the file.
		{"configmap line numbers", "apiVersion: v1\nkind: ConfigMap\ndata:\n  config: |\n    address-pools:\n    - name: a\n      protocol: layer2\n      addresses: [203.0.113.5/24]\n",
			[]string{`address-pools[0].addresses[0]: "203.0.113.5/24" has host bits set: did you mean 203.0.113.0/24? (line 8)`}},
		{"configmap syntax error line", "apiVersion: v1\nkind: ConfigMap\ndata:\n  config: |\n    address-pools:\n    - name: [a\n",
			[]string{`data.config: not valid YAML: yaml: line `}},
		// A badly typed value gives one error, not a cascade of "must be set".
		{"no cascade", "peers:\n- peer-address: [203.0.113.1]\n  peer-asn: x\n  my-asn: 64500\n",
			[]string{`peers[0].peer-address: want a string, got a list (line 2)`, `peers[0].peer-asn: want a whole number, got "x" (line 3)`}},
		// A dropped hold-time is not taken for 0s: keepalive-time is checked
		// against the default, not reported as needing a non-zero hold-time.
		{"no cascade from hold-time", okPeer + "  hold-time: 90\n  keepalive-time: 30s\n",
			[]string{`peers[0].hold-time: "90" is not a duration like "90s": time: missing unit in duration "90" (line 6)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
}

func TestPoolErrors(t *testing.T) {
	pool := func(addrs ...string) string {
		return "address-pools:\n- name: p\n  protocol: layer2\n  addresses:\n  - " + strings.Join(addrs, "\n  - ") + "\n"
	}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"empty name", "address-pools:\n- protocol: layer2\n  addresses: [203.0.113.0/28]\n", []string{`address-pools[0].name: must not be empty`}},
		{"duplicate name", okPool + "- name: ok\n  protocol: layer2\n  addresses: [198.51.100.0/28]\n",
			[]string{`address-pools[1].name: "ok" is also the name of address-pools[0] (line 6)`}},
		{"no addresses", "address-pools:\n- name: p\n  protocol: layer2\n", []string{`address-pools[0].addresses: the pool has no addresses (line 2)`}},
		{"empty addresses", "address-pools:\n- name: p\n  protocol: layer2\n  addresses: []\n", []string{`address-pools[0].addresses: the pool has no addresses (line 4)`}},
		{"no protocol", "address-pools:\n- name: p\n  addresses: [203.0.113.0/28]\n", []string{`address-pools[0].protocol: must be set: layer2 or bgp`}},
		{"unknown protocol", "address-pools:\n- name: p\n  protocol: l2\n  addresses: [203.0.113.0/28]\n", []string{`address-pools[0].protocol: "l2" is not a protocol: want layer2 or bgp (line 3)`}},
		{"bad IP in range", pool("192.168.1.300-192.168.1.310"),
			[]string{`address-pools[0].addresses[0]: "192.168.1.300-192.168.1.310" is not an IP range: ParseAddr("192.168.1.300"): IPv4 field has value >255 (line 5)`}},
		{"bad end of range", pool("203.0.113.1-203.0.113.x"), []string{`address-pools[0].addresses[0]: "203.0.113.1-203.0.113.x" is not an IP range: `}},
		{"range end before start", pool("203.0.113.20 - 203.0.113.10"),
			[]string{`address-pools[0].addresses[0]: "203.0.113.20 - 203.0.113.10" is not an IP range: the end 203.0.113.10 is before the start 203.0.113.20`}},
		{"mixed-family range", pool("203.0.113.1-2001:db8::1"),
			[]string{`address-pools[0].addresses[0]: "203.0.113.1-2001:db8::1" is not an IP range: 203.0.113.1 and 2001:db8::1 are not the same IP family`}},
		{"zone in range", pool("fe80::1%eth0-fe80::2"), []string{`address-pools[0].addresses[0]: "fe80::1%eth0-fe80::2" is not an IP range: "fe80::1%eth0" has an IPv6 zone`}},
		{"host bits", pool("192.168.1.5/24"), []string{`address-pools[0].addresses[0]: "192.168.1.5/24" has host bits set: did you mean 192.168.1.0/24?`}},
		{"v6 host bits", pool("2001:db8::1/64"), []string{`address-pools[0].addresses[0]: "2001:db8::1/64" has host bits set: did you mean 2001:db8::/64?`}},
		{"bad prefix length", pool("203.0.113.0/33"), []string{`address-pools[0].addresses[0]: "203.0.113.0/33" is not a CIDR: `}},
		{"mapped CIDR", pool("::ffff:203.0.113.0/120"), []string{`address-pools[0].addresses[0]: "::ffff:203.0.113.0/120" is an IPv4-mapped IPv6 CIDR`}},
		{"single address", pool("203.0.113.7"), []string{`address-pools[0].addresses[0]: "203.0.113.7" is a single address, not a CIDR or range: write 203.0.113.7/32`}},
		{"single v6 address", pool("2001:db8::7"), []string{`"2001:db8::7" is a single address, not a CIDR or range: write 2001:db8::7/128`}},
		{"garbage", pool("lots"), []string{`address-pools[0].addresses[0]: "lots" is not a CIDR (like 203.0.113.0/28) or a range`}},
		{"empty entry", pool(`""`), []string{`address-pools[0].addresses[0]: "" is not a CIDR`}},
		{"overlap within a pool", pool("203.0.113.0/28", "198.51.100.0/24", "203.0.113.8-203.0.113.20"),
			[]string{`address-pools[0].addresses[2]: "203.0.113.8-203.0.113.20" overlaps "203.0.113.0/28" (address-pools[0].addresses[0]) of the same pool (line 7)`}},
		{"duplicate entry", pool("203.0.113.0/28", "203.0.113.0/28"),
			[]string{`address-pools[0].addresses[1]: "203.0.113.0/28" overlaps "203.0.113.0/28" (address-pools[0].addresses[0])`}},
		{"overlap between pools", okPool + "- name: other\n  protocol: layer2\n  addresses:\n  - 198.51.100.0/24\n  - 203.0.113.15-203.0.113.16\n",
			[]string{`address-pools[1].addresses[1]: "203.0.113.15-203.0.113.16" of pool "other" overlaps "203.0.113.0/28" of pool "ok" (address-pools[0].addresses[0]) (line 10)`}},
		{"overlap reported on the later entry", "address-pools:\n- name: first\n  protocol: layer2\n  addresses: [203.0.113.64/26]\n- name: second\n  protocol: layer2\n  addresses: [203.0.113.0/24]\n",
			[]string{`address-pools[1].addresses[0]: "203.0.113.0/24" of pool "second" overlaps "203.0.113.64/26" of pool "first" (address-pools[0].addresses[0])`}},
		{"v6 overlap", "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [2001:db8::/64]\n- name: b\n  protocol: bgp\n  addresses: [2001:db8::ff-2001:db8::1:0]\n",
			[]string{`address-pools[1].addresses[0]: "2001:db8::ff-2001:db8::1:0" of pool "b" overlaps "2001:db8::/64" of pool "a"`}},
		{"avoid-buggy-ips leaves nothing", "address-pools:\n- name: p\n  protocol: layer2\n  avoid-buggy-ips: true\n  addresses: [203.0.113.255/32, 198.51.100.0/32]\n",
			[]string{`address-pools[0].avoid-buggy-ips: true leaves the pool no address to assign`}},
		{"bgp-advertisements on layer2", okPool + "  bgp-advertisements:\n  - aggregation-length: 32\n",
			[]string{`address-pools[0].bgp-advertisements: only bgp pools have bgp-advertisements, this pool is layer2 (line 6)`}},
		{"interfaces on bgp", "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n  interfaces: [eth0]\n",
			[]string{`address-pools[0].interfaces: only layer2 pools answer on interfaces, this pool is bgp`}},
		{"bad interface", okPool + "  interfaces: [eth0, a-very-long-interface-name, \"eth/1\"]\n",
			[]string{`address-pools[0].interfaces[1]: "a-very-long-interface-name" is not an interface name: longer than 15 bytes`,
				`address-pools[0].interfaces[2]: "eth/1" is not an interface name`}},
		{"bad namespace", okPool + "  namespaces: [web, Shop, \"\"]\n",
			[]string{`address-pools[0].namespaces[1]: "Shop" is not a valid namespace name: a lowercase RFC 1123 label`,
				`address-pools[0].namespaces[2]: "" is not a valid namespace name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
}

func TestBGPAdvertisementErrors(t *testing.T) {
	bgp := func(extra string) string {
		return "bgp-communities:\n  no-advertise: 65535:65282\naddress-pools:\n- name: p\n  protocol: bgp\n  addresses: [203.0.113.0/28, 2001:db8::/120]\n  bgp-advertisements:\n  - " + extra + "\n"
	}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"v4 length too long", bgp("aggregation-length: 33"), []string{`address-pools[0].bgp-advertisements[0].aggregation-length: 33 is out of range: want 0 to 32 (line 8)`}},
		{"v4 length negative", bgp("aggregation-length: -1"), []string{`address-pools[0].bgp-advertisements[0].aggregation-length: -1 is out of range: want 0 to 32`}},
		{"v6 length too long", bgp("aggregation-length-v6: 129"), []string{`address-pools[0].bgp-advertisements[0].aggregation-length-v6: 129 is out of range: want 0 to 128`}},
		{"v4 aggregate wider than the pool", bgp("aggregation-length: 24"),
			[]string{`address-pools[0].bgp-advertisements[0].aggregation-length: 24 is shorter than /28, the widest prefix of addresses entry "203.0.113.0/28": the aggregate would announce addresses outside the pool (line 8)`}},
		{"v6 aggregate wider than the pool", bgp("aggregation-length-v6: 64"),
			[]string{`address-pools[0].bgp-advertisements[0].aggregation-length-v6: 64 is shorter than /120, the widest prefix of addresses entry "2001:db8::/120"`}},
		{"unknown community name", bgp("communities: [no-advertise, no-export]"),
			[]string{`address-pools[0].bgp-advertisements[0].communities[1]: "no-export" is not defined in bgp-communities, and is not an AA:NN community`}},
		{"community out of range", bgp("communities: [\"65536:1\"]"),
			[]string{`address-pools[0].bgp-advertisements[0].communities[0]: "65536:1" is not a community: want AA:NN, two numbers from 0 to 65535`}},
		{"community with three parts", bgp("communities: [\"1:2:3\"]"), []string{`communities[0]: "1:2:3" is not a community`}},
		{"large community with two parts", bgp("large-communities: [\"1:2\"]"),
			[]string{`address-pools[0].bgp-advertisements[0].large-communities[0]: "1:2" is not a large community: want A:B:C`}},
		{"large community out of range", bgp("large-communities: [\"4294967296:1:1\"]"), []string{`large-communities[0]: "4294967296:1:1" is not a large community`}},
		{"localpref negative", bgp("localpref: -5"), []string{`address-pools[0].bgp-advertisements[0].localpref: -5 is out of range: want 0 to 4294967295`}},
		// A bad definition is reported where it is, not again where it is used.
		{"bad bgp-communities value", "bgp-communities:\n  mine: 1.2\naddress-pools:\n- name: p\n  protocol: bgp\n  addresses: [203.0.113.0/28]\n  bgp-advertisements:\n  - communities: [mine]\n",
			[]string{`bgp-communities.mine: "1.2" is not a community: want AA:NN, two numbers from 0 to 65535 (line 2)`}},
		{"bgp-communities not a mapping", "bgp-communities: [a]\n", []string{`bgp-communities: want a mapping, got a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
}

func TestPeerErrors(t *testing.T) {
	peer := func(extra ...string) string {
		s := okPeer
		for _, e := range extra {
			s += "  " + e + "\n"
		}
		return s
	}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"missing address", "peers:\n- peer-asn: 1\n  my-asn: 2\n", []string{`peers[0].peer-address: must be set (line 2)`}},
		{"address not an IP", "peers:\n- peer-address: router.example\n  peer-asn: 1\n  my-asn: 2\n",
			[]string{`peers[0].peer-address: "router.example" is not an IP address: `}},
		{"address with zone", "peers:\n- peer-address: fe80::1%eth0\n  peer-asn: 1\n  my-asn: 2\n",
			[]string{`peers[0].peer-address: "fe80::1%eth0" is not an IP address: "fe80::1%eth0" has an IPv6 zone`}},
		{"zero ASNs", "peers:\n- peer-address: 203.0.113.1\n  peer-asn: 0\n",
			[]string{`peers[0].my-asn: must be a non-zero AS number, got 0 (line 2)`, `peers[0].peer-asn: must be a non-zero AS number, got 0 (line 3)`}},
		{"hold time too short", peer("hold-time: 2s"), []string{`peers[0].hold-time: "2s" must be 0 (no keepalives) or at least 3s (line 6)`}},
		{"hold time under a second", peer("hold-time: 500ms"), []string{`peers[0].hold-time: "500ms" must be 0 (no keepalives) or at least 3s`}},
		{"hold time negative", peer("hold-time: -90s"), []string{`peers[0].hold-time: "-1m30s" must not be negative`}},
		{"hold time too long", peer("hold-time: 24h"), []string{`peers[0].hold-time: "24h0m0s" must be at most 18h12m15s`}},
		{"keepalive not below hold", peer("hold-time: 30s", "keepalive-time: 30s"), []string{`peers[0].keepalive-time: "30s" must be less than hold-time (30s) (line 7)`}},
		{"keepalive over default hold", peer("keepalive-time: 2m"), []string{`peers[0].keepalive-time: "2m0s" must be less than hold-time (1m30s)`}},
		{"keepalive without hold", peer("hold-time: 0s", "keepalive-time: 10s"), []string{`peers[0].keepalive-time: "10s" needs a non-zero hold-time`}},
		{"keepalive zero", peer("keepalive-time: 0s"), []string{`peers[0].keepalive-time: "0s" must be at least 1s when hold-time is not 0`}},
		{"keepalive negative", peer("keepalive-time: -1s"), []string{`peers[0].keepalive-time: "-1s" must not be negative`}},
		{"router-id IPv6", peer("router-id: 2001:db8::1"), []string{`peers[0].router-id: "2001:db8::1" is not an IPv4 address: a BGP router ID is 32 bits (line 6)`}},
		{"router-id garbage", peer("router-id: 1.2.3"), []string{`peers[0].router-id: "1.2.3" is not an IPv4 address: `}},
		{"source-address garbage", peer("source-address: eth0"), []string{`peers[0].source-address: "eth0" is not an IP address: `}},
		{"source-address family", peer("source-address: 2001:db8::10"), []string{`peers[0].source-address: "2001:db8::10" is not in the IP family of peer-address 203.0.113.1`}},
		{"password and secret", peer("password: p", "password-secret: {name: s}"), []string{`peers[0].password-secret: password and password-secret are mutually exclusive: keep one (line 7)`}},
		{"secret without name", peer("password-secret: {key: k}"), []string{`peers[0].password-secret.name: must be set`}},
		// What is under password-secret is not quoted: a user may have put
		// the password itself there.
		{"bad secret names", peer("password-secret: {name: My_Secret, namespace: Kube, key: \"a b\"}"),
			[]string{`peers[0].password-secret.name: a value of 9 bytes (not shown: it may be a secret) is not a valid Secret name`,
				`peers[0].password-secret.namespace: a value of 4 bytes (not shown: it may be a secret) is not a valid namespace name`,
				`peers[0].password-secret.key: a value of 3 bytes (not shown: it may be a secret) is not a valid Secret key`}},
		{"password too long", peer("password: " + strings.Repeat("x", 81)), []string{`peers[0].password: is 81 bytes long (value not shown): TCP MD5 keys are at most 80 bytes`}},
		{"bfd profile unknown, near name", "bfd-profiles:\n- name: fast\n" + peer("bfd-profile: fats"),
			[]string{`peers[0].bfd-profile: "fats" is not the name of any bfd-profiles entry, did you mean "fast"? (line 8)`}},
		{"bfd profile unknown, no profiles", peer("bfd-profile: fast"),
			[]string{`peers[0].bfd-profile: "fast" is not the name of any bfd-profiles entry; add it under bfd-profiles (line 6)`}},
		{"bfd profile unknown, other profiles", "bfd-profiles:\n- name: slow\n- name: medium\n" + peer("bfd-profile: zzzzzz"),
			[]string{`peers[0].bfd-profile: "zzzzzz" is not the name of any bfd-profiles entry; profiles: medium, slow`}},
		// An invalid profile is reported once, where it is, not again at
		// every peer naming it.
		{"bfd profile invalid", "bfd-profiles:\n- name: fast\n  echo-mode: true\n" + peer("bfd-profile: fast"),
			[]string{`bfd-profiles[0].echo-mode: true is not supported: the embedded BFD has no echo function (RFC 5880 6.4); set it false, detection then runs on control packets at receive-interval (line 3)`}},
		{"duplicate peer", okPeer + "- peer-address: 203.0.113.1\n  peer-asn: 64502\n  my-asn: 64500\n  peer-port: 179\n",
			[]string{`peers[1]: peer 203.0.113.1 port 179 is already peers[0]; give the two different node-selectors if each serves different nodes (line 6)`}},
		{"duplicate peer, one with a selector", okPeer + "- peer-address: 203.0.113.1\n  peer-asn: 64502\n  my-asn: 64500\n  node-selectors: [{match-labels: {rack: a}}]\n",
			[]string{`peers[1]: peer 203.0.113.1 port 179 is already peers[0]`}},
		{"duplicate peer, same selectors", "peers:\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: a}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: a}}]}\n",
			[]string{`peers[1]: peer 203.0.113.1 port 179 is already peers[0]`}},
		{"duplicate peer, same selectors after another rack", "peers:\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: a}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: b}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: b}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: a}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2}\n",
			[]string{`peers[2]: peer 203.0.113.1 port 179 is already peers[1]`, `peers[3]: peer 203.0.113.1 port 179 is already peers[0]`,
				`peers[4]: peer 203.0.113.1 port 179 is already peers[0]`}},
		{"duplicate peer, selectors after none", "peers:\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: a}}]}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2}\n" +
			"- {peer-address: 203.0.113.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: b}}]}\n",
			[]string{`peers[1]: peer 203.0.113.1 port 179 is already peers[0]`, `peers[2]: peer 203.0.113.1 port 179 is already peers[1]`}},
		{"bad bfd-profiles", "bfd-profiles:\n- name: a\n- name: a\n- receive-interval: 10\n",
			[]string{`bfd-profiles[1].name: "a" is also the name of bfd-profiles[0] (line 3)`, `bfd-profiles[2].name: must not be empty (line 4)`}},
		{"bfd-profiles out of range", "bfd-profiles:\n- name: a\n  receive-interval: 9\n  transmit-interval: 60001\n  detect-multiplier: 1\n  echo-interval: 0\n  minimum-ttl: 255\n",
			[]string{`bfd-profiles[0].receive-interval: 9 is out of range: want 10 to 60000 milliseconds (line 3)`,
				`bfd-profiles[0].transmit-interval: 60001 is out of range: want 10 to 60000 milliseconds (line 4)`,
				`bfd-profiles[0].detect-multiplier: 1 is out of range: want 2 to 255 (line 5)`,
				`bfd-profiles[0].echo-interval: 0 is out of range: want 10 to 60000 milliseconds (line 6)`,
				`bfd-profiles[0].minimum-ttl: 255 is out of range: want 1 to 254 (line 7)`}},
		{"bfd-profiles bad type", "bfd-profiles:\n- name: a\n  receive-interval: fast\n",
			[]string{`bfd-profiles[0].receive-interval: `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
}

func TestSelectorErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"bad operator", okPeer + "  node-selectors:\n  - match-expressions:\n    - {key: rack, operator: in, values: [a]}\n",
			[]string{`peers[0].node-selectors[0].match-expressions[0].operator: "in" is not an operator: want In, NotIn, Exists or DoesNotExist (line 8)`}},
		{"In without values", okPeer + "  node-selectors:\n  - match-expressions:\n    - {key: rack, operator: In}\n",
			[]string{`peers[0].node-selectors[0].match-expressions[0].values: operator In needs at least one value`}},
		{"Exists with values", okPool + "  node-selectors:\n  - match-expressions:\n    - {key: rack, operator: Exists, values: [a]}\n",
			[]string{`address-pools[0].node-selectors[0].match-expressions[0].values: operator Exists takes no values, got ["a"]`}},
		{"bad label key", okPool + "  node-selectors:\n  - match-labels: {\"bad key\": x}\n",
			[]string{`address-pools[0].node-selectors[0].match-labels["bad key"]: "bad key" is not a valid label key`}},
		{"bad label value", okPool + "  node-selectors:\n  - match-labels: {kubernetes.io/hostname: \"not ok\"}\n",
			[]string{`address-pools[0].node-selectors[0].match-labels["kubernetes.io/hostname"]: "not ok" is not a valid label value`}},
		{"bad expression value", okPool + "  node-selectors:\n  - match-expressions: [{key: a, operator: NotIn, values: [ok, \"-bad\"]}]\n",
			[]string{`address-pools[0].node-selectors[0].match-expressions[0].values[1]: "-bad" is not a valid label value`}},
		{"service selector", okPool + "  service-selectors:\n  - matchExpressions: [{key: \"\", operator: Exists}]\n  - matchLabels: {app: \"a b\"}\n",
			[]string{`address-pools[0].service-selectors[0].matchExpressions[0].key: "" is not a valid label key`,
				`address-pools[0].service-selectors[1].matchLabels.app: "a b" is not a valid label value`}},
		{"service selector operator", okPool + "  service-selectors:\n  - matchExpressions: [{key: a, operator: Gt, values: [\"1\"]}]\n",
			[]string{`address-pools[0].service-selectors[0].matchExpressions[0].operator: "Gt" is not an operator`}},
		{"topology selector", "node-topology:\n- zone: z\n  node-selector:\n    matchExpressions: [{key: a, operator: DoesNotExist, values: [b]}]\n",
			[]string{`node-topology[0].node-selector.matchExpressions[0].values: operator DoesNotExist takes no values, got ["b"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
}

func TestTopologyAndMiscErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"no region or zone", "node-topology:\n- subnets: [203.0.113.0/24]\n", []string{`node-topology[0]: needs a region or a zone (line 2)`}},
		{"no selector or subnets", "node-topology:\n- region: r\n", []string{`node-topology[0]: needs a node-selector or subnets`}},
		{"bad subnet", "node-topology:\n- zone: z\n  subnets: [203.0.113.0/24, 10.1.2.3/8, nope]\n",
			[]string{`node-topology[0].subnets[1]: "10.1.2.3/8" has host bits set: did you mean 10.0.0.0/8?`, `node-topology[0].subnets[2]: "nope" is not a CIDR: `}},
		{"bad region", "node-topology:\n- region: \"eu west\"\n  zone: \"a/b\"\n  subnets: [203.0.113.0/24]\n",
			[]string{`node-topology[0].region: "eu west" is not a valid region (a label value)`, `node-topology[0].zone: "a/b" is not a valid zone (a label value)`}},
		{"bad cluster-id", "cluster-id: My_Cluster\n", []string{`cluster-id: "My_Cluster" is not a valid cluster-id (a DNS-1123 label)`}},
		{"bad removed node", "removed-nodes: [ok-node, \"Bad Node\", \"\"]\n",
			[]string{`removed-nodes[1]: "Bad Node" is not a valid node name`, `removed-nodes[2]: "" is not a valid node name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
}

// TestManyErrorsAtOnce checks that problems all over the file are reported
// together, in file order, one per line.
func TestManyErrorsAtOnce(t *testing.T) {
	input := `peers:
- peer-address: 192.0.2.1
  peer-asn: 0
  my-asn: 64500
address-pools:
- name: a
  protocol: layer3
  addresses: [203.0.113.0/28]
- name: a
  protocol: layer2
  addresses: [192.168.1.300-192.168.1.310]
  auto-asign: false
`
	_, err := Parse([]byte(input))
	want := `5 problems:
  peers[0].peer-asn: must be a non-zero AS number, got 0 (line 3)
  address-pools[0].protocol: "layer3" is not a protocol: want layer2 or bgp (line 7)
  address-pools[1].name: "a" is also the name of address-pools[0] (line 9)
  address-pools[1].addresses[0]: "192.168.1.300-192.168.1.310" is not an IP range: ParseAddr("192.168.1.300"): IPv4 field has value >255 (line 11)
  address-pools[1]: unknown key "auto-asign", did you mean "auto-assign"? (line 12)`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Err.Field != "peers[0].peer-asn" || fe.Line != 3 {
		t.Errorf("errors.As found %+v, want the first FieldError", fe)
	}
	var ke *field.Error
	if !errors.As(err, &ke) || ke.Field != "peers[0].peer-asn" || ke.Type != field.ErrorTypeInvalid {
		t.Errorf("errors.As found %+v, want the first field.Error", ke)
	}
}

func TestSingleErrorIsBare(t *testing.T) {
	_, err := Parse([]byte("cluster-id: X\n"))
	if err == nil || err.Error() != `cluster-id: "X" is not a valid cluster-id (a DNS-1123 label): a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?') (line 1)` {
		t.Errorf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want an error naming %s", err, missing)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("address-pools:\n- name: a\n  protocol: layer2\n  addresses: [x]\n- name: a\n  protocol: layer2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), "cloud config "+bad+": 3 problems:\n  address-pools[0].addresses[0]: \"x\" is not a CIDR") {
		t.Errorf("Load(bad) = %v", err)
	}
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Errorf("Load error does not wrap Errors: %#v", err)
	}
	cfg, err := Load("testdata/full-example.yaml")
	if err != nil || len(cfg.Pools) != 2 {
		t.Errorf("Load(full-example) = %v, %v", cfg, err)
	}
}
