package membership

import (
	"strconv"
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/keyring"
)

var (
	members = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "membership",
		Name:           "members",
		Help:           "Live announcers in this node's view of the memberlist cluster, itself included.",
		StabilityLevel: metrics.ALPHA,
	})
	keyringInfo = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "memberlist",
		Name:           "keyring_info",
		Help:           "The memberlist keys in use: the primary key's fingerprint (first 8 hex digits of the SHA-256 of the derived key) and how many keys are accepted, primary included. One series; check it on every node between the steps of a key rotation.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"primary", "keys"})
	decryptErrors = metrics.NewCounter(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "memberlist",
		Name:           "decrypt_errors_total",
		Help:           "Gossip packets and streams that no installed key could decrypt: a peer with a key this node does not accept.",
		StabilityLevel: metrics.ALPHA,
	})
)

// recordKeys sets keyringInfo to keys (primary first).
func recordKeys(keys [][]byte) {
	keyringInfo.Reset()
	keyringInfo.WithLabelValues(keyring.Fingerprint(keys[0]), strconv.Itoa(len(keys))).Set(1)
}

var registerOnce sync.Once

// RegisterMetrics registers this package's metrics with the legacy
// registry served on /metrics.
func RegisterMetrics() {
	registerOnce.Do(func() { legacyregistry.MustRegister(members, keyringInfo, decryptErrors) })
}
