// Package coverage says under which pool the announcer announces each
// address that a Service holds: the cloud-config's pool if it covers the
// address, else the pool the cloud-controller-manager published for it as
// retained, else the pool that covered it last in this process.
//
// The address rule the CCM follows (docs/guarantees.md, "Config edits") says
// that an address in use stays with its Service until the Service lets go
// of it, whatever config edits happen meanwhile. A config edit that drops
// or shrinks a pool must therefore not withdraw the addresses of that pool
// still in use. The CCM publishes such retained addresses in the ConfigMap
// baremetal-retained-addresses, under the settings of the pool that last
// covered them (data key address-pools.yaml, a cloud-config document with
// one pool per old pool, narrowed to the retained addresses). The
// announcer reads it, and also remembers which pool covered each address
// in use, for the moments before the CCM has written the ConfigMap (or
// while no CCM runs). An address is forgotten once no Service holds it.
//
// The memory is per process: an announcer restarted after an edit knows
// only what the ConfigMap says. That is one reason why the pools an
// announcer announces by are compared across nodes (package agreement).
package coverage

import (
	"fmt"
	"net/netip"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// Names of the CCM's ConfigMap of retained addresses and its data key.
const (
	RetainedConfigMap = "baremetal-retained-addresses"
	RetainedKey       = "address-pools.yaml"
)

// Source says where an address's pool came from.
type Source int

// The sources, in the order they are consulted.
const (
	// FromConfig is the cloud-config in effect.
	FromConfig Source = iota
	// FromRetained is the CCM's ConfigMap of retained addresses.
	FromRetained
	// FromMemory is the pool that covered the address last in this
	// process.
	FromMemory
)

func (s Source) String() string {
	return [...]string{"cloud-config", "retained", "remembered"}[s]
}

// Covered is the pool an address is announced under.
type Covered struct {
	Pool   *config.Pool
	Source Source
}

// Coverage remembers the pools of the addresses in use. It is not safe for
// concurrent use; the controller calls it from its one reconcile
// goroutine.
type Coverage struct {
	remembered map[netip.Addr]*config.Pool
}

// New returns a Coverage that remembers nothing yet.
func New() *Coverage {
	return &Coverage{remembered: map[netip.Addr]*config.Pool{}}
}

// Resolve returns the pool of every address in inUse that has one, and
// remembers it; addresses not in inUse are forgotten. retained may be nil.
func (c *Coverage) Resolve(cfg, retained *config.Config, inUse map[netip.Addr]bool) map[netip.Addr]Covered {
	out := make(map[netip.Addr]Covered, len(inUse))
	for ip := range inUse {
		if p := poolOf(cfg, ip); p != nil {
			out[ip] = Covered{p, FromConfig}
			c.remembered[ip] = p
			continue
		}
		if p := poolOf(retained, ip); p != nil {
			out[ip] = Covered{p, FromRetained}
			c.remembered[ip] = p
			continue
		}
		if p := c.remembered[ip]; p != nil {
			out[ip] = Covered{p, FromMemory}
		}
	}
	for ip := range c.remembered {
		if !inUse[ip] {
			delete(c.remembered, ip)
		}
	}
	return out
}

// poolOf returns the pool of cfg that contains ip, or nil. Pools never
// overlap (config validation refuses it), so there is at most one.
func poolOf(cfg *config.Config, ip netip.Addr) *config.Pool {
	if cfg == nil {
		return nil
	}
	for i := range cfg.Pools {
		if cfg.Pools[i].Contains(ip) {
			return &cfg.Pools[i]
		}
	}
	return nil
}

// ParseRetained reads the data of the CCM's ConfigMap of retained
// addresses. No data, or an empty document, is no retained address.
func ParseRetained(data map[string]string) (*config.Config, error) {
	doc, ok := data[RetainedKey]
	if !ok {
		return &config.Config{}, nil
	}
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s, data key %s: %w", RetainedConfigMap, RetainedKey, err)
	}
	return cfg, nil
}
