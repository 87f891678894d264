package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// The ConfigMap in which the CCM leader publishes retained addresses
// (contract C2).
const (
	retainedConfigMap    = "baremetal-retained-addresses"
	retainedConfigMapKey = "address-pools.yaml"
)

// resetRetainedConfigMap deletes the retained-addresses ConfigMap now and
// when the test ends (after its CCM stops), so that no test reads another
// one's list. Call it before starting the CCM.
func (e *env) resetRetainedConfigMap() {
	e.t.Helper()
	del := func(ctx context.Context) error {
		err := e.cs.CoreV1().ConfigMaps(ccm.Namespace).Delete(ctx, retainedConfigMap, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if err := del(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := del(ctx); err != nil {
			e.t.Errorf("cleanup: %v", err)
		}
	})
}

// waitRetainedConfigMap waits until the retained-addresses ConfigMap holds
// exactly want.
func (e *env) waitRetainedConfigMap(want string) {
	e.t.Helper()
	var got string
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		cm, err := e.cs.CoreV1().ConfigMaps(ccm.Namespace).Get(ctx, retainedConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = cm.Data[retainedConfigMapKey]
		return got == want, nil
	})
	if err != nil {
		e.t.Fatalf("ConfigMap %s/%s holds %q, want %q: %v", ccm.Namespace, retainedConfigMap, got, want, err)
	}
}

// waitMetric waits until the series name{labels} of c's /metrics equals want.
func waitMetric(e *env, c *ccm.CCM, name string, labels map[string]string, want float64) {
	e.t.Helper()
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		m, err := c.Metrics(ctx)
		if err != nil {
			return false, err
		}
		v, err := ccm.MetricValue(m, name, labels)
		return err == nil && v == want, fmt.Errorf("%s%v = %v (%v)", name, labels, v, err)
	})
	if err != nil {
		e.t.Fatalf("%s%v never became %v: %v", name, labels, want, err)
	}
}

const (
	retainBefore = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.201
- name: other
  protocol: bgp
  addresses:
  - 198.51.100.16/30
  bgp-advertisements:
  - communities: [65000:1]
`
	// Drops pool default, whose address a Service holds.
	retainDropped = `address-pools:
- name: other
  protocol: bgp
  addresses:
  - 198.51.100.16/30
  bgp-advertisements:
  - communities: [65000:1]
`
)

// TestDroppedPoolSurvivesRestart is hole 1 of issue 9. The pool of an
// address in use is dropped from the file: the edit applies, the Service
// keeps its address, and the ConfigMap tells the announcers under which
// pool's settings to keep announcing it. Then the CCM is killed and started
// again with that file: the address is still the Service's (its status is
// not even rewritten), it is still flagged and published, and a new Service
// gets an address of the pools in effect.
func TestDroppedPoolSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.resetRetainedConfigMap()
	c := ccm.Start(t, cp, ccm.Options{CloudConfig: retainBefore})
	e.create(e.ns, lbService("kept"))
	held := apitest.IngressIPs(e.waitIPs(e.ns, "kept", 1))[0]
	if !inRange(held, "192.0.2.200-192.0.2.201") {
		t.Fatalf("kept got %s, want an address of pool default", held)
	}

	if err := c.WriteCloudConfig(retainDropped); err != nil {
		t.Fatal(err)
	}
	waitMetric(e, c, "baremetal_retained_addresses", nil, 1)
	e.waitEvent(e.ns, "kept", "Warning", "AddressRetained", held)
	published := "address-pools:\n- addresses:\n  - " + held + "/32\n  auto-assign: false\n  name: default\n  protocol: layer2\n"
	e.waitRetainedConfigMap(published)
	before := e.get(e.ns, "kept")

	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	e.create(e.ns, lbService("after-restart"))
	if ip := apitest.IngressIPs(e.waitIPs(e.ns, "after-restart", 1))[0]; !inRange(ip, "198.51.100.16/30") {
		t.Errorf("after-restart got %s, want an address of pool other", ip)
	}
	if _, err := waitQueueDrained(e.ctx, c, 2, time.Minute); err != nil {
		t.Fatalf("the restarted CCM did not sync every Service: %v", err)
	}
	after := e.get(e.ns, "kept")
	if ips := apitest.IngressIPs(after); len(ips) != 1 || ips[0] != held {
		t.Fatalf("kept holds %v after the restart, want [%s] (hole 1)", ips, held)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("kept was rewritten across the restart: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
	}
	waitMetric(e, c, "baremetal_retained_addresses", nil, 1)
	e.waitRetainedConfigMap(published)
	if log := c.Log(); !strings.Contains(log, `"Address retained`) || !strings.Contains(log, `address="`+held+`"`) {
		t.Errorf("the CCM log does not flag %s as retained; log %s", held, c.LogPath())
	}

	// Deleting the Service frees the retained address.
	if err := e.cs.CoreV1().Services(e.ns).Delete(e.ctx, "kept", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMetric(e, c, "baremetal_retained_addresses", nil, 0)
	e.waitRetainedConfigMap("address-pools: []\n")
}

const (
	swapBefore = `address-pools:
- name: a
  protocol: layer2
  addresses: [192.0.2.16/30]
- name: b
  protocol: layer2
  addresses: [198.51.100.16/30]
`
	swapAfter = `address-pools:
- name: a
  protocol: layer2
  addresses: [198.51.100.16/30]
- name: b
  protocol: layer2
  addresses: [192.0.2.16/30]
`
)

// TestSwappedPoolRangesKeepPinnedServices is hole 2 of issue 9. Two
// Services pinned to pools a and b by the address-pool annotation keep
// their addresses when the two pools' ranges are swapped, through a sync of
// each and through a restart; a new Service pinned to a gets an address of
// a's new range.
func TestSwappedPoolRangesKeepPinnedServices(t *testing.T) {
	e := newEnv(t)
	e.resetRetainedConfigMap()
	c := ccm.Start(t, cp, ccm.Options{CloudConfig: swapBefore})
	e.create(e.ns, lbService("pa", annotations("metallb.universe.tf/address-pool", "a")))
	e.create(e.ns, lbService("pb", annotations("metallb.universe.tf/address-pool", "b")))
	pa := apitest.IngressIPs(e.waitIPs(e.ns, "pa", 1))[0]
	pb := apitest.IngressIPs(e.waitIPs(e.ns, "pb", 1))[0]

	if err := c.WriteCloudConfig(swapAfter); err != nil {
		t.Fatal(err)
	}
	waitMetric(e, c, "baremetal_cloud_config_reloads_total", map[string]string{"result": "applied"}, 1)
	// A change of annotations makes the service controller sync each one.
	for _, name := range []string{"pa", "pb"} {
		e.mergePatch(e.ns, name, map[string]any{"metadata": map[string]any{"annotations": map[string]string{"touched": "1"}}})
	}
	if _, err := waitQueueDrained(e.ctx, c, 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	e.create(e.ns, lbService("new-a", annotations("metallb.universe.tf/address-pool", "a")))
	if ip := apitest.IngressIPs(e.waitIPs(e.ns, "new-a", 1))[0]; !inRange(ip, "198.51.100.16/30") || ip == pb {
		t.Errorf("new-a got %s, want a free address of a's new range 198.51.100.16/30", ip)
	}

	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := waitQueueDrained(e.ctx, c, 3, time.Minute); err != nil {
		t.Fatalf("the restarted CCM did not sync every Service: %v", err)
	}
	for name, want := range map[string]string{"pa": pa, "pb": pb} {
		if ips := apitest.IngressIPs(e.get(e.ns, name)); len(ips) != 1 || ips[0] != want {
			t.Errorf("%s holds %v after the swap, want [%s] (hole 2)", name, ips, want)
		}
	}
	waitMetric(e, c, "baremetal_retained_addresses", nil, 0)
}

// TestDuplicateStatusIsRepaired writes one address into the status of two
// Services, as a deposed leader's late patch can. The CCM's audit takes it
// from the younger one, with a Warning event naming the older one, and the
// younger gets a new address; the older keeps it.
func TestDuplicateStatusIsRepaired(t *testing.T) {
	e := newEnv(t)
	e.resetRetainedConfigMap()
	c := ccm.Start(t, cp, ccm.Options{CloudConfig: swapBefore})
	e.create(e.ns, lbService("older"))
	held := apitest.IngressIPs(e.waitIPs(e.ns, "older", 1))[0]
	e.create(e.ns, lbService("younger"))
	own := apitest.IngressIPs(e.waitIPs(e.ns, "younger", 1))[0]

	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{
		"ingress": []corev1.LoadBalancerIngress{{IP: held}},
	}}})
	if _, err := e.cs.CoreV1().Services(e.ns).Patch(e.ctx, "younger", types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(e.ns, "younger", "Warning", "DuplicateAddress", held, e.ns+"/older")
	err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
		s, err := e.cs.CoreV1().Services(e.ns).Get(ctx, "younger", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ips := apitest.IngressIPs(s)
		return len(ips) == 1 && ips[0] != held, fmt.Errorf("younger shows %v", ips)
	})
	if err != nil {
		t.Fatalf("the younger Service did not get a new address: %v", err)
	}
	if ips := apitest.IngressIPs(e.get(e.ns, "older")); len(ips) != 1 || ips[0] != held {
		t.Errorf("older holds %v, want [%s]", ips, held)
	}
	waitMetric(e, c, "baremetal_duplicate_addresses_repaired_total", nil, 1)
	t.Logf("younger had %s, was given %s by a late patch, and holds %v after the repair", own, held, apitest.IngressIPs(e.get(e.ns, "younger")))
}
