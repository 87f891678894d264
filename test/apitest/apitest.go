// Package apitest holds what the test packages that run against a real
// apiserver (test/controlplane) share: an admin client fit for a thousand
// objects, namespaces named after the test that are emptied when it ends,
// Ready Nodes without kubelets, and a poll loop.
//
// Each test package keeps its own view of a test (its env type), built
// from these pieces, since what a test needs beyond them differs: the CCM
// suite tracks Nodes, the one-write suite installs admission policies.
package apitest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// pollEvery is how often WaitUntil checks its condition: short against the
// times measured, long enough not to load the apiserver.
const pollEvery = 50 * time.Millisecond

// Client returns an admin client of cp. Scale tests and benchmarks create
// a thousand objects, and the admin's default 100 QPS would make the test
// client, not the code under test, the bottleneck, so its limits are
// raised.
func Client(t testing.TB, cp *controlplane.ControlPlane) kubernetes.Interface {
	t.Helper()
	cfg := cp.AdminConfig()
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Namespaces are the namespaces (and Nodes) one test made. When the test
// ends, its cleanup deletes their Services, stripping the finalizers that a
// stopped CCM can no longer remove, then the namespaces and the Nodes. A
// control plane without a namespace controller leaves a deleted namespace
// Terminating; what matters is that it holds no Service.
type Namespaces struct {
	t  testing.TB // reports the cleanup's errors
	cs kubernetes.Interface

	mu    sync.Mutex
	names []string
	nodes []string
}

// NewNamespaces returns the namespaces of test t, none yet, and registers
// their cleanup with t. Register it before starting a CCM: cleanups run
// last-registered first, so the CCM then stops before the namespaces are
// emptied and cannot put a finalizer back.
func NewNamespaces(t testing.TB, cs kubernetes.Interface) *Namespaces {
	n := &Namespaces{t: t, cs: cs}
	t.Cleanup(n.cleanup)
	return n
}

// Create makes a namespace with labels for t (the test or one of its
// subtests, which failures are reported on) and returns its name, made of
// t's name, suffix and a random part, so that a leftover object tells
// whose it is.
func (n *Namespaces) Create(ctx context.Context, t testing.TB, suffix string, labels map[string]string) string {
	t.Helper()
	name := dnsLabel(t.Name(), 40)
	if suffix != "" {
		name += "-" + suffix
	}
	name += "-" + RandHex(3)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := n.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.names = append(n.names, name)
	n.mu.Unlock()
	return name
}

// TrackNode makes the cleanup delete the Node too.
func (n *Namespaces) TrackNode(name string) {
	n.mu.Lock()
	n.nodes = append(n.nodes, name)
	n.mu.Unlock()
}

func (n *Namespaces) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n.mu.Lock()
	names, nodes := n.names, n.nodes
	n.mu.Unlock()
	strip := []byte(`{"metadata":{"finalizers":null}}`)
	for _, ns := range names {
		list, err := n.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			n.t.Errorf("cleanup: listing Services in %s: %v", ns, err)
			continue
		}
		Parallel(8, len(list.Items), func(i int) {
			name := list.Items[i].Name
			if len(list.Items[i].Finalizers) > 0 {
				_, err := n.cs.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, strip, metav1.PatchOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					n.t.Errorf("cleanup: %s/%s: %v", ns, name, err)
				}
			}
			if err := n.cs.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				n.t.Errorf("cleanup: %s/%s: %v", ns, name, err)
			}
		})
		if err := n.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			n.t.Errorf("cleanup: namespace %s: %v", ns, err)
		}
	}
	for _, name := range nodes {
		if err := n.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			n.t.Errorf("cleanup: node %s: %v", name, err)
		}
	}
}

// ReadyNode creates a Node that reports Ready with the InternalIP
// 203.0.113.10, as a running kubelet would: the service controller warns
// on every sync of a cluster without one. It returns the Node once created,
// even when setting its status failed, and the Create error as it is, so
// that a caller may accept IsAlreadyExists.
func ReadyNode(ctx context.Context, cs kubernetes.Interface, name string) (*corev1.Node, error) {
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	n.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady",
	}}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "203.0.113.10"}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return n, err
	}
	return n, nil
}

// CreateService creates svc in ns and fails t on error.
func CreateService(ctx context.Context, t testing.TB, cs kubernetes.Interface, ns string, svc *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Service %s/%s: %v", ns, svc.Name, err)
	}
	return out
}

// GetService reads the Service ns/name and fails t on error.
func GetService(ctx context.Context, t testing.TB, cs kubernetes.Interface, ns, name string) *corev1.Service {
	t.Helper()
	s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting Service %s/%s: %v", ns, name, err)
	}
	return s
}

// IngressIPs returns the addresses in a Service's status.
func IngressIPs(s *corev1.Service) []string {
	var out []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		out = append(out, ing.IP)
	}
	return out
}

// WaitUntil polls cond until it reports done, ctx ends or timeout passes,
// and returns the last error cond gave (or the timeout).
func WaitUntil(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		done, err := cond(ctx)
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// Parallel runs f(0..n-1) on at most workers goroutines.
func Parallel(workers, n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// RandHex is n random bytes in hex, to make names unique across runs.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dnsLabel turns s into a DNS label of at most maxLen characters.
func dnsLabel(s string, maxLen int) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, s)
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	if len(s) > maxLen {
		s = s[:maxLen]
	}
	return strings.Trim(s, "-")
}
