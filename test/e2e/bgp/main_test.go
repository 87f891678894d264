// Package bgp is the end-to-end test of BGP announcements: a router
// namespace runs real FRR (zebra and bgpd), peered over the lab segment
// with the real baremetal-announcer binary in three node namespaces, which
// read a real kube-apiserver with the announcer's own RBAC identity. The
// tests read FRR's BGP table and RIB, the router's kernel routing table,
// and curl the Services' IPs from the router.
//
// As in test/e2e/layer2, no cloud-controller-manager runs: each test
// writes the Service status IPs itself, which is exactly the announcer's
// input.
//
// Needs root, iproute2, FRR (installed on demand) and the control-plane
// tools (make tools). Skipped with -short.
package bgp

import (
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }
