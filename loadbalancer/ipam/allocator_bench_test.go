package ipam

// Benchmarks of the allocator. Run them with
//
//	go test -run '^$' -bench . -benchmem ./loadbalancer/ipam/
//
// or every benchmark in the repository with bench/run.sh. bench/README.md
// says what each one measures and lists figures.

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// benchInUse is how many addresses the "many in use" benchmarks hold.
const benchInUse = 10000

// benchPoolCase is one pool shape the benchmarks compare.
type benchPoolCase struct {
	name   string
	ranges string // the YAML addresses list
	family Family
}

// The /16 IPv4 pool and the /64 IPv6 pool, compared side by side.
var benchPools = []benchPoolCase{
	{name: "ipv4-slash16", ranges: "[10.0.0.0/16]", family: IPv4},
	{name: "ipv6-slash64", ranges: "['fd00:0:0:1::/64']", family: IPv6},
}

// benchConfigPools parses a one-pool cloud-config, as the CCM would.
func benchConfigPools(b *testing.B, ranges string) []config.Pool {
	b.Helper()
	cfg, err := config.Parse([]byte("address-pools:\n- name: bench\n  protocol: layer2\n  addresses: " + ranges + "\n"))
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	return cfg.Pools
}

// benchService is the i-th Service of a benchmark: one TCP port, no
// sharing key, its own selector, as the loadbalancer package builds it.
func benchService(i int) Service {
	name := "svc-" + strconv.Itoa(i)
	return Service{
		Key:       "bench/" + name,
		Namespace: "bench",
		Ports:     []Port{{Protocol: "TCP", Port: 80}},
		Selector:  "app=" + name,
	}
}

// benchRequest asks for one address of each family, all required.
func benchRequest(i int, families ...Family) Request {
	return Request{Service: benchService(i), Families: families, RequireAll: true}
}

func benchRequests(n int, families ...Family) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = benchRequest(i, families...)
	}
	return reqs
}

// benchFill returns an allocator over pools holding one address for each
// of reqs.
func benchFill(b *testing.B, pools []config.Pool, reqs []Request) *Allocator {
	b.Helper()
	a := New(pools)
	for _, r := range reqs {
		if _, err := a.Ensure(r); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
	return a
}

// benchLiveHeap returns the bytes of live heap objects after a full collection.
func benchLiveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func benchMallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// benchRingDistance is how far next-fit moved from prev to next in a pool of
// size addresses starting anywhere (size 0 means 2^64): the number of
// addresses the search visited. Only the low 64 bits matter within a /64.
func benchRingDistance(prev, next netip.Addr, size uint64) uint64 {
	low64 := func(a netip.Addr) uint64 { b := a.As16(); return binary.BigEndian.Uint64(b[8:]) }
	p, n := low64(prev), low64(next)
	if n >= p {
		return n - p
	}
	return size - (p - n) // wraps correctly for size 0 (2^64)
}

// BenchmarkAllocate measures allocation in a /16 IPv4 and a /64 IPv6 pool.
//
//   - fill-10000: one op fills an empty allocator with 10,000 Services;
//     ns/alloc and allocs/alloc are per Service.
//   - steady-10000: 10,000 addresses in use; one op releases the oldest
//     Service and allocates it again (delete and recreate), so the number
//     in use stays at 10,000. scanned/op is how many addresses next-fit
//     visited to find a free one.
func BenchmarkAllocate(b *testing.B) {
	for _, pc := range benchPools {
		b.Run("fill-10000/"+pc.name, func(b *testing.B) {
			pools := benchConfigPools(b, pc.ranges)
			reqs := benchRequests(benchInUse, pc.family)
			m0 := benchMallocs()
			for b.Loop() {
				a := New(pools)
				for _, r := range reqs {
					if _, err := a.Ensure(r); err != nil {
						b.Fatal(err)
					}
				}
			}
			allocs := float64(b.N) * float64(len(reqs))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/allocs, "ns/alloc")
			b.ReportMetric(float64(benchMallocs()-m0)/allocs, "allocs/alloc")
		})
	}
	for _, pc := range benchPools {
		b.Run("steady-10000/"+pc.name, func(b *testing.B) {
			pools := benchConfigPools(b, pc.ranges)
			reqs := benchRequests(benchInUse, pc.family)
			a := benchFill(b, pools, reqs)
			size := uint64(1) << 16
			if pc.family == IPv6 {
				size = 0 // 2^64
			}
			prev := a.Lookup(reqs[len(reqs)-1].Service.Key)[0].IP
			var scanned uint64
			i := 0
			for b.Loop() {
				r := &reqs[i]
				a.Release(r.Service.Key)
				got, err := a.Ensure(*r)
				if err != nil {
					b.Fatal(err)
				}
				scanned += benchRingDistance(prev, got[0].IP, size)
				prev = got[0].IP
				if i++; i == len(reqs) {
					i = 0
				}
			}
			b.ReportMetric(float64(scanned)/float64(b.N), "scanned/op")
		})
	}
}

// BenchmarkAllocateNearlyFull is next-fit's bad case: a pool of 10,001
// addresses with 10,000 in use, where a random Service is deleted and
// recreated. The one free address lies anywhere relative to the cursor, so
// the search visits about half the addresses in use (scanned/op).
func BenchmarkAllocateNearlyFull(b *testing.B) {
	// 10.0.0.0 .. 10.0.39.16 is 39*256+17 = 10,001 addresses.
	pools := benchConfigPools(b, "[10.0.0.0-10.0.39.16]")
	const size = 10001
	reqs := benchRequests(benchInUse, IPv4)
	a := benchFill(b, pools, reqs)
	rng := rand.New(rand.NewPCG(1, 2))
	prev := a.Lookup(reqs[len(reqs)-1].Service.Key)[0].IP
	var scanned uint64
	for b.Loop() {
		r := &reqs[rng.IntN(len(reqs))]
		a.Release(r.Service.Key)
		got, err := a.Ensure(*r)
		if err != nil {
			b.Fatal(err)
		}
		scanned += benchRingDistance(prev, got[0].IP, size)
		prev = got[0].IP
	}
	b.ReportMetric(float64(scanned)/float64(b.N), "scanned/op")
}

// BenchmarkMemoryPerAddress shows that the allocator's memory follows the
// addresses in use, not the pool size: live heap after a GC, before New
// and after N allocations, for a /16 IPv4 and a /64 IPv6 pool. It counts
// what the allocator keeps, including the Service key and ports of each
// request (built inside the measurement, as the loadbalancer package builds
// a fresh request per call). ns/op is suppressed: it is mostly the GCs.
func BenchmarkMemoryPerAddress(b *testing.B) {
	for _, pc := range benchPools {
		for _, n := range []int{0, 1000, benchInUse} {
			b.Run(fmt.Sprintf("%s/in-use=%d", pc.name, n), func(b *testing.B) {
				pools := benchConfigPools(b, pc.ranges)
				var total uint64
				for b.Loop() {
					before := benchLiveHeap()
					a := New(pools)
					for i := range n {
						if _, err := a.Ensure(benchRequest(i, pc.family)); err != nil {
							b.Fatal(err)
						}
					}
					after := benchLiveHeap()
					runtime.KeepAlive(a)
					total += after - before
				}
				live := float64(total) / float64(b.N)
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(live, "live-B")
				if n > 0 {
					b.ReportMetric(live/float64(n), "B/in-use-addr")
				}
			})
		}
	}
}

// BenchmarkEnsureIdempotent is the path the service controller takes on
// every resync: Ensure for a Service that already holds a valid address,
// with 10,000 in use. The dual-stack case holds one address per family.
func BenchmarkEnsureIdempotent(b *testing.B) {
	cases := []struct {
		name     string
		ranges   string
		families []Family
	}{
		{"ipv4-slash16", "[10.0.0.0/16]", []Family{IPv4}},
		{"dual-stack", "[10.0.0.0/16, 'fd00:0:0:1::/64']", []Family{IPv4, IPv6}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			reqs := benchRequests(benchInUse, c.families...)
			a := benchFill(b, benchConfigPools(b, c.ranges), reqs)
			i := 0
			for b.Loop() {
				if _, err := a.Ensure(reqs[i]); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(reqs) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkRestore rebuilds the allocator from 10,000 Services' status, as
// after a CCM restart: one op is New plus 10,000 Restore calls, in
// creation order. ns/service is per Restore call.
func BenchmarkRestore(b *testing.B) {
	pools := benchConfigPools(b, "[10.0.0.0/16]")
	type held struct {
		svc   Service
		addrs []netip.Addr
	}
	services := make([]held, benchInUse)
	base := netip.MustParseAddr("10.0.0.0")
	for i := range services {
		services[i] = held{svc: benchService(i), addrs: []netip.Addr{benchAddrAt(base, i)}}
	}
	for b.Loop() {
		a := New(pools)
		for _, h := range services {
			if err := a.Restore(h.svc, "", h.addrs); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(services)), "ns/service")
}

// benchAddrAt is the i-th IPv4 address after base.
func benchAddrAt(base netip.Addr, i int) netip.Addr {
	v4 := base.As4()
	n := uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
	n += uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// BenchmarkSharing allocates for a Service with a sharing key
// (allow-shared-ip) while n other addresses are in use by Services without
// one. A sharing Service first looks for an address already shared under
// its key, which scans every address in use. One op is Ensure plus Release
// of the same new Service.
//
//   - join: the key is held by one Service on port 80; the new one (port
//     443) joins its address.
//   - new-key: no Service holds the key; the scan finds nothing and a free
//     address is taken.
//   - no-key: the same allocation without a sharing key, for comparison.
func BenchmarkSharing(b *testing.B) {
	for _, n := range []int{100, 1000, benchInUse} {
		for _, mode := range []string{"join", "new-key", "no-key"} {
			b.Run(fmt.Sprintf("in-use=%d/%s", n, mode), func(b *testing.B) {
				a := benchFill(b, benchConfigPools(b, "[10.0.0.0/16]"), benchRequests(n, IPv4))
				anchor := benchRequest(n, IPv4)
				anchor.Service.SharingKey = "shared"
				anchorGot, err := a.Ensure(anchor)
				if err != nil {
					b.Fatal(err)
				}
				r := benchRequest(n+1, IPv4)
				r.Service.Ports = []Port{{Protocol: "TCP", Port: 443}}
				switch mode {
				case "join":
					r.Service.SharingKey = "shared"
				case "new-key":
					r.Service.SharingKey = "other"
				}
				for b.Loop() {
					got, err := a.Ensure(r)
					if err != nil {
						b.Fatal(err)
					}
					if (mode == "join") != (got[0].IP == anchorGot[0].IP) {
						b.Fatalf("%s: got %s, anchor holds %s", mode, got[0].IP, anchorGot[0].IP)
					}
					a.Release(r.Service.Key)
				}
			})
		}
	}
}
