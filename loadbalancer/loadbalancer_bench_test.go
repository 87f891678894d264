package loadbalancer

// Benchmarks of the cloudprovider.LoadBalancer over the allocator, with a
// fake clientset. Run them with
//
//	go test -run '^$' -bench . -benchmem ./loadbalancer/
//
// bench/README.md says what each one measures and lists figures.

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// benchServices is how many Services the benchmarks hold addresses for.
const benchServices = 10000

// benchCloudConfig is one /16 layer2 pool, large enough for benchServices.
const benchCloudConfig = `
address-pools:
- name: bench
  protocol: layer2
  addresses: [10.0.0.0/16]
`

// benchCtx carries a logger that drops everything: the load balancer logs
// each allocation, and 10,000 lines would drown the figures.
func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Logger{}))
	b.Cleanup(cancel)
	return ctx
}

// benchStart starts f and returns the context it runs under. At cleanup
// the context is cancelled before Shutdown, which waits for the informers.
func benchStart(b *testing.B, f informers.SharedInformerFactory) context.Context {
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Logger{}))
	b.Cleanup(func() { cancel(); f.Shutdown() })
	f.Start(ctx.Done())
	return ctx
}

func benchConfig(b *testing.B) *config.Config {
	b.Helper()
	cfg, err := config.Parse([]byte(benchCloudConfig))
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	return cfg
}

// benchLBService is the i-th Service: single-stack IPv4, one port, created
// i seconds after the first. With withStatus it already shows the i-th
// address of the pool in its status, as after a CCM restart.
func benchLBService(i int, withStatus bool) *v1.Service {
	single := v1.IPFamilyPolicySingleStack
	name := "svc-" + strconv.Itoa(i)
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         "bench",
			Name:              name,
			UID:               types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(time.Unix(int64(1_000_000+i), 0)),
			Labels:            map[string]string{"app": name},
			Annotations:       map[string]string{},
		},
		Spec: v1.ServiceSpec{
			Type:           v1.ServiceTypeLoadBalancer,
			Ports:          []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
			Selector:       map[string]string{"app": name},
			IPFamilies:     []v1.IPFamily{v1.IPv4Protocol},
			IPFamilyPolicy: &single,
		},
	}
	if withStatus {
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: benchIP(i)}}
	}
	return s
}

// benchIP is the i-th address of the /16 pool.
func benchIP(i int) string { return fmt.Sprintf("10.0.%d.%d", i/256, i%256) }

// BenchmarkRestoreFromStatus is a CCM restart with 10,000 LoadBalancer
// Services that hold addresses in their status: one op starts a fresh
// informer factory and LoadBalancer over a fake clientset and ends when
// GetLoadBalancer answers (state restored). ns/op is that time to ready.
// synced-ms is when the Service informer reported synced (polled by the
// benchmark every millisecond); the rest is the wait of
// cache.WaitForCacheSync, which polls every 100 ms, plus the restore itself
// (see BenchmarkRestoreListed for the restore alone).
func BenchmarkRestoreFromStatus(b *testing.B) {
	cfg := benchConfig(b)
	objs := make([]runtime.Object, benchServices)
	for i := range objs {
		objs[i] = benchLBService(i, true)
	}
	client := fake.NewClientset(objs...)
	probe := objs[len(objs)-1].(*v1.Service)
	ctx := benchCtx(b)

	var syncedNs time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runCtx, cancel := context.WithCancel(ctx)
		f := informers.NewSharedInformerFactory(client, 0)
		lb := New(cfg)
		lb.SetInformers(f)
		var synced atomic.Int64
		done := make(chan struct{})
		b.StartTimer()

		start := time.Now()
		f.Start(runCtx.Done())
		lb.Start(runCtx, client)
		go func() {
			defer close(done)
			for !lb.hasSynced() {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(time.Millisecond):
				}
			}
			synced.Store(int64(time.Since(start)))
		}()
		st, exists, err := lb.GetLoadBalancer(runCtx, "bench", probe)

		b.StopTimer()
		if err != nil || !exists || len(st.Ingress) != 1 || st.Ingress[0].IP != benchIP(benchServices-1) {
			b.Fatalf("after restore: exists=%v status=%v err=%v", exists, st, err)
		}
		<-done
		syncedNs += time.Duration(synced.Load())
		cancel()
		f.Shutdown()
		b.StartTimer()
	}
	b.ReportMetric(float64(syncedNs.Milliseconds())/float64(b.N), "synced-ms")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ready-ms")
}

// BenchmarkRestoreListed is the restore alone, from an informer that has
// already synced 10,000 Services: list, sort by creation, parse each
// Service's annotations and restore its status address. ns/service is per
// Service.
func BenchmarkRestoreListed(b *testing.B) {
	cfg := benchConfig(b)
	objs := make([]runtime.Object, benchServices)
	for i := range objs {
		objs[i] = benchLBService(i, true)
	}
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	lister := f.Core().V1().Services().Lister()
	ctx := benchStart(b, f)
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			b.Fatalf("informer %v did not sync", typ)
		}
	}
	probe := objs[len(objs)-1].(*v1.Service)

	for b.Loop() {
		lb := New(cfg)
		lb.services = lister
		if err := lb.restore(ctx); err != nil {
			b.Fatal(err)
		}
		if got := lb.alloc.Lookup(serviceKey(probe)); len(got) != 1 || got[0].IP.String() != benchIP(benchServices-1) {
			b.Fatalf("after restore %s holds %v", serviceKey(probe), got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchServices), "ns/service")
}

// BenchmarkEnsureLoadBalancerResync is what the service controller does to
// every Service on each resync: EnsureLoadBalancer for a Service that
// already holds its address, with 10,000 held. It includes turning the
// Service into a request (annotations, selector, ports), the allocator's
// idempotent Ensure, the pool metrics and the status.
func BenchmarkEnsureLoadBalancerResync(b *testing.B) {
	client := fake.NewClientset()
	f := informers.NewSharedInformerFactory(client, 0)
	lb := New(benchConfig(b))
	lb.SetInformers(f)
	ctx := benchStart(b, f)
	lb.Start(ctx, client)

	svcs := make([]*v1.Service, benchServices)
	for i := range svcs {
		svcs[i] = benchLBService(i, false)
		st, err := lb.EnsureLoadBalancer(ctx, "bench", svcs[i], nil)
		if err != nil {
			b.Fatal(err)
		}
		// Status as the service controller would write it.
		svcs[i].Status.LoadBalancer = *st
	}
	i := 0
	for b.Loop() {
		st, err := lb.EnsureLoadBalancer(ctx, "bench", svcs[i], nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Ingress) != 1 || st.Ingress[0].IP != svcs[i].Status.LoadBalancer.Ingress[0].IP {
			b.Fatalf("%s moved to %v", svcs[i].Name, st.Ingress)
		}
		if i++; i == len(svcs) {
			i = 0
		}
	}
}
