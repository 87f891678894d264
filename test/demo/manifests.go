package demo

import (
	"fmt"
	"strings"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config/testdata"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// The walkthrough's pool, written as it writes it, with its range moved
// from 192.168.92.200-210 to the lab's LAN (a documentation range): the
// walkthrough's comment asks for the subnet of the cluster's nodes.
const l2PoolBlock = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - ` + lab.L2PoolV4 + `   # the subnet of the nodes (203.0.113.0/24)
`

// bgpPoolName is the pool the second Service asks for by annotation.
const bgpPoolName = "bgp"

// bgpBlock adds the router as a BGP peer and a bgp pool that is not on the
// LAN, so only the router's routes lead to it. auto-assign: false keeps it
// for Services that ask for it; avoid-buggy-ips skips .0 and .255, so the
// first address handed out is 198.51.100.1.
var bgpBlock = fmt.Sprintf(`- name: %s
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses:
  - %s
peers:
- peer-address: %s
  peer-asn: %d
  my-asn: %d
`, bgpPoolName, lab.BGPPoolV4, routerIPv4, lab.RouterASN, lab.NodeASN)

// routerIPv4 is the router's LAN address (host .1).
const routerIPv4 = "203.0.113.1"

// cloudConfig returns the cloud-config the CCM and the announcers read:
// the walkthrough's pool and, with BGP, the bgp pool and the router peer.
func cloudConfig(withBGP bool) string {
	if !withBGP {
		return l2PoolBlock
	}
	return l2PoolBlock + bgpBlock
}

// configMapManifest wraps the cloud-config in the ConfigMap that deploy/base
// mounts at /etc/baremetal/cloud-config.yaml, the file the user applies
// where the walkthrough applies example-layer2-config.yaml.
func configMapManifest(cloudConfig string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: ConfigMap
metadata:
  namespace: baremetal-system
  name: baremetal-cloud-config
data:
  cloud-config.yaml: |
`)
	for _, line := range strings.Split(strings.TrimRight(cloudConfig, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// nginxBGPService is the walkthrough's Service (testdata.WalkthroughService)
// renamed nginx-bgp and asking for the bgp pool with MetalLB's annotation.
var nginxBGPService = strings.Replace(testdata.WalkthroughService, "\n  name: nginx\n",
	"\n  name: nginx-bgp\n  annotations:\n    metallb.universe.tf/address-pool: "+bgpPoolName+"\n", 1)
