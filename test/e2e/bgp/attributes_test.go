package bgp

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// attributesConfig peers the nodes with the router inside its AS (iBGP),
// where LOCAL_PREF is carried, and announces every IP twice: as a host
// route with local preference, a named and a literal community and a
// large community, and as part of an aggregate with another community.
const attributesConfig = `peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64512
  hold-time: 3s
  keepalive-time: 1s
- peer-address: 2001:db8:1::1
  peer-asn: 64512
  my-asn: 64512
  hold-time: 3s
  keepalive-time: 1s
bgp-communities:
  web-tier: "65000:100"
address-pools:
- name: routed
  protocol: bgp
  addresses:
  - ` + lab.BGPPoolV4 + `
  - ` + lab.BGPPoolV6 + `
  bgp-advertisements:
  - localpref: 150
    communities: [web-tier, "65000:200"]
    large-communities: ["64512:1:2"]
  - aggregation-length: 24
    aggregation-length-v6: 120
    communities: ["65000:300"]
`

// TestAttributesVisibleInFRR: communities (named and literal), large
// communities, local preference and aggregation arrive at the router as
// configured, for IPv4 and IPv6.
func TestAttributesVisibleInFRR(t *testing.T) {
	ibgp := strings.ReplaceAll(lab.DefaultBGPDConf(""), fmt.Sprintf("remote-as %d", lab.NodeASN), fmt.Sprintf("remote-as %d", lab.RouterASN))
	tb := newTestbed(t, options{cloudConfig: attributesConfig, bgpd: ibgp})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	tb.createService("api", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.11")

	check := func(prefix string, paths int, localPref uint32, community, large string) {
		t.Helper()
		var got []bgpPath
		var raw string
		tb.Eventuallyf(func() string {
			return fmt.Sprintf("%d paths for %s with local-pref %d, communities %q, large communities %q; FRR says:\n%s", paths, prefix, localPref, community, large, raw)
		}, func() bool {
			got, raw = tb.bgpPaths(prefix)
			if len(got) != paths {
				return false
			}
			for _, p := range got {
				if p.localPref() != localPref || str(p.Community) != community || str(p.LargeCommunity) != large {
					return false
				}
			}
			return true
		})
		t.Logf("%s: %d paths, local-pref %d, communities %q, large communities %q", prefix, len(got), localPref, community, large)
	}
	check("198.51.100.10/32", 3, 150, "65000:100 65000:200", "64512:1:2")
	check("198.51.100.11/32", 3, 150, "65000:100 65000:200", "64512:1:2")
	// One aggregate for both IPv4 Services, with the default local-pref.
	check("198.51.100.0/24", 3, 100, "65000:300", "")
	check("2001:db8:2::10/128", 3, 150, "65000:100 65000:200", "64512:1:2")
	check("2001:db8:2::/120", 3, 100, "65000:300", "")
}

// str is a community's text as FRR prints it, "" when absent.
func str(c *struct {
	String string `json:"string"`
}) string {
	if c == nil {
		return ""
	}
	return c.String
}
