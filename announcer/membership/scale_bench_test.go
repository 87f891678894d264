package membership

import (
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/keyring"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
)

// The scale model of issue 11 §5: N announcers' gossip (this package, with
// the shipped timings and encryption) in one process, each on its own
// loopback address with real UDP and TCP, N from 25 to 250. It measures
// what grows with N: the bytes each member sends, the CPU each costs, how
// long the others take to see a crashed member gone, and how long one
// announcer takes to compute the owners of 10,000 IPs. Run it with
//
//	go test -run '^$' -bench ScaleModel -benchtime 1x -timeout 30m ./announcer/membership/
//
// It writes bench/results/layer2-scale-model.txt.

// scaleModelSizes are the cluster sizes modelled.
var scaleModelSizes = []int{25, 50, 100, 250}

// Bounds of the model's waits.
const (
	scaleJoinWithin   = 40 * time.Second
	scaleQuietWindow  = 10 * time.Second
	scaleDetectWithin = 20 * time.Second
	scaleOwnerIPs     = 10000
)

// byteCount counts what a set of transports sends: UDP packets (probes,
// acks, gossip) and TCP stream bytes (joins, push/pull, claim records).
type byteCount struct {
	udp, tcp atomic.Int64
}

// countingTransport is memberlist's own transport, counting what it sends.
type countingTransport struct {
	*memberlist.NetTransport
	count   *byteCount
	streams chan net.Conn
	// stop ends the forwarding of accepted streams to memberlist; from
	// then on they are closed, until drained says the NetTransport has
	// shut down: its listener blocks on an unread stream channel, and its
	// Shutdown waits for the listener.
	stop, drained chan struct{}
}

func newCountingTransport(addr string, port int, count *byteCount) (*countingTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{addr}, BindPort: port, Logger: log.New(io.Discard, "", 0),
	})
	if err != nil {
		return nil, err
	}
	t := &countingTransport{NetTransport: nt, count: count, streams: make(chan net.Conn), stop: make(chan struct{}), drained: make(chan struct{})}
	go func() {
		for {
			select {
			case c := <-nt.StreamCh():
				select {
				case t.streams <- countingConn{c, count}:
				case <-t.stop:
					c.Close()
				}
			case <-t.stop:
				for {
					select {
					case c := <-nt.StreamCh():
						c.Close()
					case <-t.drained:
						return
					}
				}
			}
		}
	}()
	return t, nil
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.count.udp.Add(int64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.count}, nil
}

// memberlist sends through these two (NodeAwareTransport) when the
// transport has them, as NetTransport does.

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.count.udp.Add(int64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.count}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	close(t.stop)
	err := t.NetTransport.Shutdown()
	close(t.drained)
	return err
}

type countingConn struct {
	net.Conn
	count *byteCount
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.count.tcp.Add(int64(n))
	return n, err
}

// scaleRow is one cluster size's figures.
type scaleRow struct {
	n                      int
	joined                 time.Duration
	udpPerMember, tcpPerMb float64 // bytes per second
	cpuPerMember           float64 // CPU milliseconds per second
	falseDeaths            int     // members declared gone in the quiet window
	detectP50, detectMax   time.Duration
	detectMissing          int // observers that had not seen the death in time
	owners                 time.Duration
	// unconverged, when set, says that the members did not all see each
	// other within scaleJoinWithin: how many each saw.
	unconverged string
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runScaleModel starts n members on 127.0.1.1..n, joins them, and measures.
func runScaleModel(b *testing.B, n int) scaleRow {
	row := scaleRow{n: n}
	keys, err := keyring.Parse(map[string][]byte{keyring.PrimaryKey: []byte("scale-model")})
	if err != nil {
		b.Fatal(err)
	}
	var count byteCount
	var members []*Membership
	defer func() {
		var wg sync.WaitGroup
		for _, m := range members {
			wg.Add(1)
			go func() { defer wg.Done(); _ = m.Shutdown() }()
		}
		wg.Wait()
	}()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)}) }
	var port int
	for try := 0; try < 5 && len(members) == 0; try++ {
		port = 20000 + rand.IntN(30000)
		for i := range n {
			m, err := Start(Config{
				NodeName: fmt.Sprintf("node%03d", i+1), BindAddr: addr(i), BindPort: port, Keys: &keys,
				Logger: logr.Discard(),
				tune: func(c *memberlist.Config) {
					t, err := newCountingTransport(addr(i).String(), port, &count)
					if err != nil {
						b.Logf("transport: %v", err)
						return
					}
					c.Transport = t
				},
			})
			if err != nil {
				// A port taken on one of the addresses: start over on another.
				for _, m := range members {
					_ = m.Shutdown()
				}
				members = nil
				break
			}
			members = append(members, m)
		}
	}
	if len(members) != n {
		b.Fatalf("could not start %d members", n)
	}
	start := time.Now()
	joinErrs := 0
	for _, m := range members[1:] {
		if _, err := m.Join([]netip.Addr{addr(0)}); err != nil {
			// Gossip may still bring it in; counted, and the wait below
			// decides.
			joinErrs++
		}
	}
	for _, m := range members {
		for len(m.Members()) != n {
			if time.Since(start) > scaleJoinWithin {
				seen := map[int]int{}
				for _, o := range members {
					seen[len(o.Members())]++
				}
				var views []string
				for _, k := range slices.Sorted(maps.Keys(seen)) {
					views = append(views, fmt.Sprintf("%d saw %d", seen[k], k))
				}
				row.unconverged = fmt.Sprintf("not converged after %v (%d joins failed): %s", scaleJoinWithin, joinErrs, strings.Join(views, ", "))
				return row
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	row.joined = time.Since(start)
	time.Sleep(2 * time.Second) // let the joins' push/pull settle

	// The quiet window: nobody dies; every change of a member count is a
	// false death.
	udp0, tcp0, cpu0 := count.udp.Load(), count.tcp.Load(), cpuTime()
	t0 := time.Now()
	for time.Since(t0) < scaleQuietWindow {
		for _, m := range members {
			if len(m.Members()) != n {
				row.falseDeaths++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	secs := time.Since(t0).Seconds()
	row.udpPerMember = float64(count.udp.Load()-udp0) / float64(n) / secs
	row.tcpPerMb = float64(count.tcp.Load()-tcp0) / float64(n) / secs
	row.cpuPerMember = float64((cpuTime() - cpu0).Milliseconds()) / float64(n) / secs

	// A member crashes (no leave): how long until each other member sees
	// it gone.
	victim := members[n-1]
	members = members[:n-1]
	killed := time.Now()
	_ = victim.Shutdown()
	seen := make([]time.Duration, len(members))
	for left := len(members); left > 0 && time.Since(killed) < scaleDetectWithin; {
		for i, m := range members {
			if seen[i] == 0 && !slices.Contains(m.Members(), victim.name) {
				seen[i] = time.Since(killed)
				left--
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	var got []time.Duration
	for _, d := range seen {
		if d == 0 {
			row.detectMissing++
			continue
		}
		got = append(got, d)
	}
	slices.Sort(got)
	if len(got) > 0 {
		row.detectP50, row.detectMax = benchutil.Percentile(got, 50), got[len(got)-1]
	}

	// Owner computation: one announcer's pass over 10,000 IPs.
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("node%03d", i+1)
	}
	t0 = time.Now()
	for i := range scaleOwnerIPs {
		owner.Pick(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), names)
	}
	row.owners = time.Since(t0)
	return row
}

func BenchmarkScaleModel(b *testing.B) {
	load := benchutil.LoadAvg()
	var rows []scaleRow
	for _, n := range scaleModelSizes {
		var r scaleRow
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			r = runScaleModel(b, n)
			b.ReportMetric(float64(r.detectP50.Milliseconds()), "detect-p50-ms")
			b.ReportMetric(r.udpPerMember+r.tcpPerMb, "B/s/member")
		})
		rows = append(rows, r)
		if r.unconverged != "" {
			break // larger models on the same two cores only do worse
		}
	}
	var text strings.Builder
	fmt.Fprintf(&text, "layer-2 scale model: N announcers' gossip in one process, shipped timings (probe every 100 ms, timeout 50 ms,\n"+
		"suspicion multiplier 2), encrypted, each member on its own loopback address (real UDP and TCP).\n"+
		"quiet window %v; a member then crashes (no leave); owners: owner.Pick over N candidates for %d IPs.\n\n", scaleQuietWindow, scaleOwnerIPs)
	fmt.Fprintf(&text, "  %7s %9s %12s %12s %14s %12s %12s %12s %12s\n", "members", "joined", "UDP B/s/mb", "TCP B/s/mb", "CPU ms/s/mb", "false dead", "detect p50", "detect max", "owners 10k")
	for _, r := range rows {
		if r.unconverged != "" {
			fmt.Fprintf(&text, "  %7d  %s\n", r.n, r.unconverged)
			continue
		}
		missing := ""
		if r.detectMissing > 0 {
			missing = fmt.Sprintf(" (%d did not see it within %v)", r.detectMissing, scaleDetectWithin)
		}
		fmt.Fprintf(&text, "  %7d %9s %12.0f %12.0f %14.2f %12d %12s %12s %12s%s\n", r.n, r.joined.Round(100*time.Millisecond),
			r.udpPerMember, r.tcpPerMb, r.cpuPerMember, r.falseDeaths, r.detectP50.Round(time.Millisecond), r.detectMax.Round(time.Millisecond),
			r.owners.Round(100*time.Microsecond), missing)
	}
	text.WriteString("\n  \"false dead\" counts member views short of N during the quiet window (views polled every 100 ms).\n" +
		"  On 2 shared cores all N members share the CPU, so the CPU per member is what one node would spend,\n" +
		"  and the detection times include the model's own scheduling delays.\n")
	out := benchutil.WriteResult(b, "layer2-scale-model", "at start "+load, "announcer/membership in one process", text.String())
	fmt.Print(out)
}
