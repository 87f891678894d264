package layer2

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/overview"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

// TestWhoAnnouncesMyIP is the user's question answered from the Service
// itself, with the real CCM allocating and the real announcers writing:
// the condition names the pool, the owner and its interface; the CCM's
// own status patch (a new address) leaves it in place; it follows the
// owner's crash; `kubectl baremetal` shows it; and it goes with the
// Service.
func TestWhoAnnouncesMyIP(t *testing.T) {
	tb := newTestbed(t)
	tb.startAll()
	ccm.Start(t, e2e.ControlPlane(), ccm.Options{CloudConfig: cloudConfig, Args: []string{"--controllers=service"}})
	w := watchService(t, tb, "web")

	const first, second = "203.0.113.200", "203.0.113.201"
	ipsKey := "cloud-provider-baremetal.io/loadBalancerIPs"
	svc := e2e.LoadBalancer("web", cluster)
	svc.Annotations = map[string]string{ipsKey: first}
	created := time.Now()
	if _, err := tb.CS.CoreV1().Services(tb.NS).Create(tb.Ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	owner1 := expectedOwner(first, allNodes...)
	want1 := first + " from pool lan via layer2: announced by " + owner1 + " on eth0"
	at, _ := w.waitFor(t, "the condition for "+first, func(s *corev1.Service) bool { return hasCondition(s, want1) })
	t.Logf("create -> condition naming %s: %v", owner1, at.Sub(created).Round(time.Millisecond))

	// The CCM moves the Service to the address its annotation now asks
	// for, with its own status patch: the version that patch made still
	// carries the condition (about the old address), and the announcers
	// then rewrite it for the new one.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ipsKey, second)
	if _, err := tb.CS.CoreV1().Services(tb.NS).Patch(tb.Ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, moved := w.waitFor(t, "the CCM's patch to "+second, func(s *corev1.Service) bool {
		return len(s.Status.LoadBalancer.Ingress) == 1 && s.Status.LoadBalancer.Ingress[0].IP == second
	})
	if !hasCondition(moved, want1) {
		t.Errorf("the CCM's status patch dropped or changed the condition: %+v", moved.Status.Conditions)
	}
	managers := fieldManagers(moved)
	if !strings.Contains(managers, servicestatus.FieldManager+" status") {
		t.Errorf("status.conditions not owned by %s: %s", servicestatus.FieldManager, managers)
	}
	t.Logf("field managers after the CCM's patch: %s", managers)
	owner2 := expectedOwner(second, allNodes...)
	want2 := second + " from pool lan via layer2: announced by " + owner2 + " on eth0"
	w.waitFor(t, "the condition for "+second, func(s *corev1.Service) bool { return hasCondition(s, want2) })
	tb.waitServedBy(second, owner2)

	// The owner crashes: the condition names the next owner soon after
	// the client is served by it.
	var rest []string
	for _, n := range allNodes {
		if n != owner2 {
			rest = append(rest, n)
		}
	}
	owner3 := expectedOwner(second, rest...)
	want3 := second + " from pool lan via layer2: announced by " + owner3 + " on eth0"
	killed := time.Now()
	if err := tb.Announcers[owner2].Kill(); err != nil {
		t.Fatal(err)
	}
	served := killed.Add(tb.waitServedBy(second, owner3))
	at, _ = w.waitFor(t, "the condition naming "+owner3, func(s *corev1.Service) bool { return hasCondition(s, want3) })
	t.Logf("owner %s killed -> client served by %s: %v; -> condition names it: %v (%v after the traffic moved)",
		owner2, owner3, served.Sub(killed).Round(time.Millisecond), at.Sub(killed).Round(time.Millisecond), at.Sub(served).Round(time.Millisecond))

	// kubectl baremetal, against this apiserver, with this test's
	// cloud-config (deploy/base's ConfigMap has the example pool).
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cloud-config", Namespace: tb.NS},
		Data: map[string]string{"cloud-config.yaml": cloudConfig}}
	if _, err := tb.CS.CoreV1().ConfigMaps(tb.NS).Create(tb.Ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := overview.Gather(tb.Ctx, tb.CS, overview.Source{Namespace: tb.NS, ConfigMap: "cloud-config", Key: "cloud-config.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	if err := o.Write(&screen); err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl baremetal:\n%s", screen.String())
	row := strings.Join(strings.Fields(tb.NS+"/web "+second+" lan layer2 "+owner3+" on eth0"), " ")
	if !strings.Contains(squashSpaces(screen.String()), row) {
		t.Errorf("the screen lacks %q", row)
	}
	if !strings.Contains(squashSpaces(screen.String()), "lan layer2 27 1 26") {
		t.Errorf("the screen lacks the pool line %q", "lan layer2 27 1 26")
	}

	// The condition lives on the Service: deleting it leaves nothing.
	if err := tb.CS.CoreV1().Services(tb.NS).Delete(tb.Ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tb.Eventually("web gone", func() bool {
		_, err := tb.CS.CoreV1().Services(tb.NS).Get(tb.Ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	var total float64
	for _, h := range tb.Lab.Nodes() {
		if _, ok := tb.Announcers[h.Name()]; !ok || h.Name() == owner2 {
			continue
		}
		total += writesOf(tb.Metrics(h))
	}
	t.Logf("condition writes by the live announcers over the test: %v", total)
}

// serviceWatch records every version of one Service, with when it came.
type serviceWatch struct {
	mu       sync.Mutex
	versions []seen
	changed  chan struct{}
}

type seen struct {
	at  time.Time
	svc *corev1.Service
}

func watchService(t *testing.T, tb *testbed, name string) *serviceWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(tb.Ctx)
	wi, err := tb.CS.CoreV1().Services(tb.NS).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &serviceWatch{changed: make(chan struct{}, 1)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); wi.Stop(); <-done })
	go func() {
		defer close(done)
		for ev := range wi.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			w.mu.Lock()
			w.versions = append(w.versions, seen{at: time.Now(), svc: s})
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// waitFor returns the first version that satisfies cond, and when it
// arrived; it fails the test after settleTimeout.
func (w *serviceWatch) waitFor(t *testing.T, what string, cond func(*corev1.Service) bool) (time.Time, *corev1.Service) {
	t.Helper()
	deadline := time.NewTimer(settleTimeout)
	defer deadline.Stop()
	next := 0
	for {
		w.mu.Lock()
		vs := w.versions[next:]
		next = len(w.versions)
		w.mu.Unlock()
		for _, v := range vs {
			if cond(v.svc) {
				return v.at, v.svc
			}
		}
		select {
		case <-w.changed:
		case <-deadline.C:
			w.mu.Lock()
			var last string
			if n := len(w.versions); n > 0 {
				last = fmt.Sprintf("%+v %+v", w.versions[n-1].svc.Status.LoadBalancer, w.versions[n-1].svc.Status.Conditions)
			}
			w.mu.Unlock()
			t.Fatalf("timed out after %v waiting for %s; last version: %s", settleTimeout, what, last)
		}
	}
}

func hasCondition(s *corev1.Service, message string) bool {
	c := servicestatus.Find(s.Status.Conditions)
	return c != nil && c.Message == message && c.Status == metav1.ConditionTrue
}

// fieldManagers lists "manager subresource" of s's managedFields, sorted.
func fieldManagers(s *corev1.Service) string {
	var out []string
	for _, m := range s.ManagedFields {
		out = append(out, strings.TrimSpace(m.Manager+" "+m.Subresource))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func squashSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// writesOf sums baremetal_announcer_service_status_writes_total{result="ok"}.
func writesOf(metrics string) float64 {
	var total float64
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, `baremetal_announcer_service_status_writes_total{result="ok"}`) {
			var v float64
			if _, err := fmt.Sscan(strings.Fields(l)[1], &v); err == nil {
				total += v
			}
		}
	}
	return total
}
