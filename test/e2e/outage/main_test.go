// Package outage is the end-to-end test of the announcers through an
// API-server outage: the real kube-apiserver of this test binary is hung
// (SIGSTOP) for 60 s, or killed and restarted on the same port, with the
// same certificates and etcd, after 5 minutes, while a client keeps
// requesting a layer-2 VIP (IPv4 and IPv6) and the router a BGP VIP. Then
// every Node turns Ready=Unknown, as the node-lifecycle controller makes
// them after such an outage.
//
// It is a package of its own because it stops its control plane, which no
// other suite may share, and because its 6 minutes of mostly idle waiting
// then run beside the other packages of `make test`.
//
// Needs root, iproute2, FRR and the control-plane tools (make tools).
// Skipped with -short.
package outage

import (
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }
