package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

const (
	reloadBefore = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.201
`
	// Adds the pool the pending Service asks for.
	reloadAdded = reloadBefore + `- name: extra
  protocol: layer2
  auto-assign: false
  addresses:
  - 198.51.100.16/30
`
	// Drops the pool whose addresses the Services hold.
	reloadDropped = `address-pools:
- name: extra
  protocol: layer2
  auto-assign: false
  addresses:
  - 198.51.100.16/30
`
	reloadInvalid = `address-pools:
- name: default
  protocol: layer2
  adresses: [192.0.2.200-192.0.2.201]
`
)

// TestEditedCloudConfigAppliesWithoutRestart edits the CCM's cloud-config
// file the way a ConfigMap update does. A new pool serves the Service that
// was waiting for it, with no restart and no touch of the Service. A valid
// config that no longer covers an address in use is applied all the same,
// and the address stays with its Service, flagged as retained (log line,
// Warning event, gauge, the announcers' ConfigMap). A config that does not
// parse is refused, with a log line naming the key, and the stale metric
// says so. No address moves at any step.
func TestEditedCloudConfigAppliesWithoutRestart(t *testing.T) {
	e := newEnv(t)
	e.resetRetainedConfigMap()
	c := ccm.Start(t, cp, ccm.Options{CloudConfig: reloadBefore})
	e.create(e.ns, lbService("first"))
	held := apitest.IngressIPs(e.waitIPs(e.ns, "first", 1))[0]
	e.create(e.ns, lbService("waiting", annotations("metallb.universe.tf/address-pool", "extra")))
	e.waitEvent(e.ns, "waiting", "Warning", "SyncLoadBalancerFailed", `"extra"`)

	if err := c.WriteCloudConfig(reloadAdded); err != nil {
		t.Fatal(err)
	}
	got := apitest.IngressIPs(e.waitIPs(e.ns, "waiting", 1))[0]
	if !inRange(got, "198.51.100.16-198.51.100.19") {
		t.Errorf("waiting got %s, want an address of the new pool", got)
	}

	for _, step := range []struct {
		name, config string
		result       string
		stale        float64
		retained     float64
		inLog        []string
	}{
		{"drop the pool in use", reloadDropped, "applied", 0, 1, []string{"Address retained", `address="` + held + `"`, `service="` + e.ns + `/first"`, "no address pool contains it"}},
		{"invalid", reloadInvalid, "invalid", 1, 1, []string{`unknown key "adresses"`}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := c.WriteCloudConfig(step.config); err != nil {
				t.Fatal(err)
			}
			err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
				m, err := c.Metrics(ctx)
				if err != nil {
					return false, err
				}
				n, err := ccm.MetricValue(m, "baremetal_cloud_config_reloads_total", map[string]string{"result": step.result})
				if err != nil {
					return false, err
				}
				stale, err := ccm.MetricValue(m, "baremetal_cloud_config_stale", nil)
				if err != nil {
					return false, err
				}
				retained, err := ccm.MetricValue(m, "baremetal_retained_addresses", nil)
				return n >= 1 && stale == step.stale && retained == step.retained,
					fmt.Errorf("reloads %v, stale %v, retained %v (%v)", n, stale, retained, err)
			})
			if err != nil {
				t.Fatalf("reloads_total{result=%q}, stale=%v and retained=%v never showed: %v", step.result, step.stale, step.retained, err)
			}
			log := c.Log()
			for _, w := range step.inLog {
				if !strings.Contains(log, w) {
					t.Errorf("CCM log does not say %q", w)
				}
			}
			// Nothing moved.
			if ips := apitest.IngressIPs(e.get(e.ns, "first")); len(ips) != 1 || ips[0] != held {
				t.Errorf("first holds %v after the edit, want [%s]", ips, held)
			}
		})
	}
	e.waitEvent(e.ns, "first", "Warning", "AddressRetained", held, "no address pool contains it")
	e.waitRetainedConfigMap("address-pools:\n- addresses:\n  - " + held + "/32\n  auto-assign: false\n  name: default\n  protocol: layer2\n")

	// Back to a good config: applied, no longer stale, no longer retained,
	// and a new Service is served from the pools in effect.
	if err := c.WriteCloudConfig(reloadAdded); err != nil {
		t.Fatal(err)
	}
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		m, err := c.Metrics(ctx)
		if err != nil {
			return false, err
		}
		stale, err1 := ccm.MetricValue(m, "baremetal_cloud_config_stale", nil)
		retained, err2 := ccm.MetricValue(m, "baremetal_retained_addresses", nil)
		return stale == 0 && retained == 0, fmt.Errorf("stale %v, retained %v (%v %v)", stale, retained, err1, err2)
	})
	if err != nil {
		t.Fatalf("a good config covering every address did not clear the stale and retained gauges: %v", err)
	}
	e.waitRetainedConfigMap("address-pools: []\n")
	e.create(e.ns, lbService("second"))
	if ip := apitest.IngressIPs(e.waitIPs(e.ns, "second", 1))[0]; ip == held || !inRange(ip, "192.0.2.200-192.0.2.201") {
		t.Errorf("second got %s, want the free address of pool default", ip)
	}
	if ips := apitest.IngressIPs(e.get(e.ns, "first")); len(ips) != 1 || ips[0] != held {
		t.Errorf("first holds %v at the end, want [%s]", ips, held)
	}
}
