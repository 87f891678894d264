// Package layer2 is the end-to-end test of the layer 2 announcer: the real
// baremetal-announcer binary runs in three lab nodes (network namespaces on
// one bridge, package lab) against a real kube-apiserver (package
// controlplane), with the announcer's own RBAC identity, and a client on
// the same segment resolves and curls the Services' IPs.
//
// The cloud-controller-manager does not run here: each test writes the
// Service status IPs itself, which is exactly the announcer's input, so a
// failure points at the announcer alone.
//
// Needs root, iproute2 and the control-plane tools (make tools). Skipped
// with -short.
package layer2

import (
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }
