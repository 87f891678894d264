package layer2

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

// twoPools is the cloud-config of the config tests: the usual pool and a
// second one, extra.
const twoPools = `address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.205
  - 2001:db8:1::200-2001:db8:1::20f
- name: extra
  protocol: layer2
  addresses:
  - 203.0.113.206-203.0.113.210
`

// lanOnly is twoPools without extra.
const lanOnly = `address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.205
  - 2001:db8:1::200-2001:db8:1::20f
`

// lanWider is lanOnly with a wider lan: another definition of the pool.
const lanWider = `address-pools:
- name: lan
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.206
  - 2001:db8:1::200-2001:db8:1::20f
`

// configReload bounds how long an announcer takes to apply an edited
// file: it reads it every config.PollInterval (5 s).
const configReload = 7 * time.Second

func (tb *testbed) writeConfig(path, content string) {
	tb.T.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.T.Fatal(err)
	}
}

// TestConfigEditKeepsAddressesInUse drops a pool that a Service's address
// comes from. The address stays announced by its owner throughout, with
// no request failing, while the edit is applied (an address of the dropped
// pool taken afterwards is not announced). After a restart, the owner
// announces it again because the CCM lists it as retained.
func TestConfigEditKeepsAddressesInUse(t *testing.T) {
	tb := newTestbed(t)
	tb.writeConfig(tb.ConfigFile, twoPools)
	const kept, late = "203.0.113.207", "203.0.113.208"
	for _, h := range tb.Lab.Nodes() {
		for _, ip := range []string{kept, late} {
			if err := h.AddVIP(ip); err != nil {
				t.Fatal(err)
			}
		}
	}
	tb.startAll()
	tb.createService("kept", cluster, kept)
	o := expectedOwner(kept, allNodes...)
	tb.waitServedBy(kept, o)

	w := tb.watchIPs(kept)
	tb.writeConfig(tb.ConfigFile, lanOnly)
	time.Sleep(configReload)
	tb.createService("late", cluster, late)
	time.Sleep(2 * time.Second)
	w.done()
	if bad, total := w.failed(kept, o, 0, w.since()); len(bad) > 0 || total == 0 {
		t.Errorf("%s: %d of %d requests failed or went elsewhere:%s", kept, len(bad), total, describeRequests(bad))
	}
	if d := w.doubles(kept); len(d) > 0 {
		t.Errorf("%s answered by two nodes:%s", kept, describe(d))
	}
	if got := tb.answerers(late); len(got) != 0 {
		t.Errorf("%s, outside every pool after the edit, answered by %v", late, got)
	}

	// The CCM publishes the retained address; the owner restarts, with no
	// memory of the pool, and announces it again from the ConfigMap.
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "baremetal-retained-addresses", Namespace: e2e.SystemNamespace},
		Data: map[string]string{"address-pools.yaml": `address-pools:
- name: extra
  protocol: layer2
  auto-assign: false
  addresses:
  - 203.0.113.207/32
`},
	}
	cms := tb.CS.CoreV1().ConfigMaps(e2e.SystemNamespace)
	_ = cms.Delete(context.Background(), cm.Name, metav1.DeleteOptions{})
	if _, err := cms.Create(tb.Ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cms.Delete(context.Background(), cm.Name, metav1.DeleteOptions{}) })
	if err := tb.Announcers[o].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	tb.StartAnnouncer(tb.Lab.Host(o))
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, 3)
	}
	tb.waitServedBy(kept, o)
	tb.Eventually(kept+" answered by "+o+" alone", func() bool {
		return slices.Equal(tb.answerers(kept), []string{o})
	})
}

// TestTwoPoolFilesNeverBothAnswer gives node3 its own cloud-config file,
// then widens pool lan in it only, for a while, and then puts it back.
// node3 and the others hold two definitions of lan: only the majority's
// (node1 and node2) is announced, and no IP is ever answered by two
// nodes, neither while node3 differs nor when it comes back.
func TestTwoPoolFilesNeverBothAnswer(t *testing.T) {
	tb := newTestbed(t)
	tb.writeConfig(tb.ConfigFile, lanOnly)
	node3File := tb.WriteConfig("node3-cloud-config.yaml", lanOnly)
	for _, h := range tb.Lab.Nodes()[:2] {
		tb.StartAnnouncer(h)
	}
	tb.StartAnnouncerWith(tb.Lab.Node(3), node3File)
	for _, h := range tb.Lab.Nodes() {
		tb.waitMembers(h, 3)
	}
	owners := tb.spread(guardIPs...)
	w := tb.watchIPs(guardIPs...)
	tb.writeConfig(node3File, lanWider)
	time.Sleep(configReload)
	differs := w.since()
	time.Sleep(3 * time.Second)
	for ip, o := range owners {
		if ps := w.answeredBy(ip, "node3", differs, w.since()); len(ps) > 0 {
			t.Errorf("%s answered by node3 while its pool differs:%s", ip, describe(ps))
		}
		if o == "node3" {
			next := expectedOwner(ip, "node1", "node2")
			if ps := w.answeredBy(ip, next, differs, w.since()); len(ps) == 0 {
				t.Errorf("%s not served by %s while node3's pool differs", ip, next)
			}
		}
	}
	tb.writeConfig(node3File, lanOnly)
	time.Sleep(configReload)
	for ip, o := range owners {
		tb.waitServedBy(ip, o)
	}
	w.done()
	for ip := range owners {
		if d := w.doubles(ip); len(d) > 0 {
			t.Errorf("%s answered by two nodes:%s", ip, describe(d))
		}
	}
	tb.noConflicts(tb.Lab.Nodes()...)
}
