package membership

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2/ktesting"
)

func TestKey(t *testing.T) {
	tests := []struct {
		secret string
		want   string
	}{
		// sha256("abc"), the FIPS 180-2 test vector.
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		// A typical `openssl rand -base64 32` value and a longer one both
		// give 32 bytes.
		{"q0mO9cYl2cV5tS8o3X1m4n7b0v6c9x2z5a8s1d4f7g0=", ""},
		{string(bytes.Repeat([]byte("A"), 172)), ""},
	}
	for _, tt := range tests {
		got := Key([]byte(tt.secret))
		if len(got) != 32 {
			t.Errorf("Key(%q) has %d bytes, want 32 (AES-256)", tt.secret, len(got))
		}
		if tt.want != "" && hex.EncodeToString(got) != tt.want {
			t.Errorf("Key(%q) = %x, want %s", tt.secret, got, tt.want)
		}
	}
}

func TestTunedConfigIsValid(t *testing.T) {
	c := tunedConfig()
	if c.ProbeTimeout >= c.ProbeInterval {
		t.Errorf("ProbeTimeout %v must be below ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	// The dead-declaration budget for 3 nodes: a probe round or two plus
	// the suspicion timeout must stay well under the 1 s failover target.
	suspicion := time.Duration(c.SuspicionMult) * c.ProbeInterval
	if budget := 2*c.ProbeInterval + suspicion + 2*c.GossipInterval; budget > 600*time.Millisecond {
		t.Errorf("detection budget %v is too close to 1 s", budget)
	}
	if c.SuspicionMult > 2 {
		t.Errorf("SuspicionMult %d makes memberlist wait for confirmations", c.SuspicionMult)
	}
}

// testPort finds a port free for TCP and UDP on 127.0.0.1-3, so tests do
// not collide with each other or with a lab on 7946.
func testPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := 20000 + rand.IntN(30000)
		ok := true
		var closers []func() error
		for i := 1; i <= 3 && ok; i++ {
			addr := net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i), strconv.Itoa(port))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, l.Close)
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, u.Close)
		}
		for _, c := range closers {
			c()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func start(t *testing.T, name string, ip string, port int, secret string) *Membership {
	t.Helper()
	m, err := Start(Config{
		NodeName: name,
		BindAddr: netip.MustParseAddr(ip),
		BindPort: port,
		Secret:   []byte(secret),
		Logger:   ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2))).WithValues("node", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// waitMembers waits until m sees exactly want, and returns how long it
// took.
func waitMembers(t *testing.T, m *Membership, want []string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if slices.Equal(m.Members(), want) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("after %v, members are %v, want %v", limit, m.Members(), want)
	return 0
}

var (
	ip1 = netip.MustParseAddr("127.0.0.1")
	ip2 = netip.MustParseAddr("127.0.0.2")
)

func threeNodes(t *testing.T) (port int, ms []*Membership) {
	port = testPort(t)
	m1 := start(t, "node1", "127.0.0.1", port, "s3cret")
	m2 := start(t, "node2", "127.0.0.2", port, "s3cret")
	m3 := start(t, "node3", "127.0.0.3", port, "s3cret")
	for _, m := range []*Membership{m2, m3} {
		if n, err := m.Join([]netip.Addr{ip1}); n != 1 || err != nil {
			t.Fatalf("Join = %d, %v", n, err)
		}
	}
	all := []string{"node1", "node2", "node3"}
	for _, m := range []*Membership{m1, m2, m3} {
		waitMembers(t, m, all, 5*time.Second)
	}
	return port, []*Membership{m1, m2, m3}
}

func TestJoinAndChanges(t *testing.T) {
	port := testPort(t)
	m1 := start(t, "node1", "127.0.0.1", port, "s3cret")
	if got := m1.Members(); !slices.Equal(got, []string{"node1"}) {
		t.Fatalf("alone: members %v", got)
	}
	// Drain the change for our own join.
	select {
	case <-m1.Changes():
	default:
	}
	m2 := start(t, "node2", "127.0.0.2", port, "s3cret")
	if n, err := m2.Join([]netip.Addr{ip1}); n != 1 || err != nil {
		t.Fatalf("Join = %d, %v", n, err)
	}
	select {
	case <-m1.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change notified for a join")
	}
	waitMembers(t, m1, []string{"node1", "node2"}, 5*time.Second)
	waitMembers(t, m2, []string{"node1", "node2"}, 5*time.Second)
	if n, err := m2.Join(nil); n != 0 || err != nil {
		t.Errorf("Join(nil) = %d, %v; want 0, nil", n, err)
	}
}

func TestLeaveIsSeenAtOnce(t *testing.T) {
	_, ms := threeNodes(t)
	if err := ms[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	took := waitMembers(t, ms[0], []string{"node1", "node2"}, 2*time.Second)
	waitMembers(t, ms[1], []string{"node1", "node2"}, 2*time.Second)
	// A leave is broadcast, so it is seen long before the 2 s bound that a
	// missed leave (found by probing) would need; the figure is logged.
	t.Logf("leave seen after %v", took)
}

// TestCrashIsDetected: a member that vanishes without leaving is dropped by
// probing. How fast is measured by the lab's BenchmarkFailover.
func TestCrashIsDetected(t *testing.T) {
	_, ms := threeNodes(t)
	// Shutdown without Leave is what SIGKILL looks like to the others.
	ms[2].Shutdown()
	took := waitMembers(t, ms[0], []string{"node1", "node2"}, 3*time.Second)
	waitMembers(t, ms[1], []string{"node1", "node2"}, 3*time.Second)
	t.Logf("crash detected after %v", took)
}

func TestWrongKeyCannotJoin(t *testing.T) {
	port := testPort(t)
	start(t, "node1", "127.0.0.1", port, "s3cret")
	m2 := start(t, "node2", "127.0.0.2", port, "other")
	if n, err := m2.Join([]netip.Addr{ip1}); n != 0 || err == nil {
		t.Errorf("Join with the wrong key = %d, %v; want a failure", n, err)
	}
	if got := m2.Members(); !slices.Equal(got, []string{"node2"}) {
		t.Errorf("members %v after a failed join", got)
	}
}

// TestRejoinHealsSplit starts two nodes that know each other only as
// peers: the rejoin loop must bring them together, as it does after a
// partition longer than memberlist's own gossip to the dead.
func TestRejoinHealsSplit(t *testing.T) {
	port := testPort(t)
	m1 := start(t, "node1", "127.0.0.1", port, "s3cret")
	m2 := start(t, "node2", "127.0.0.2", port, "s3cret")
	m1.SetPeers([]netip.Addr{ip1, ip2})
	took := waitMembers(t, m2, []string{"node1", "node2"}, 3*time.Second)
	waitMembers(t, m1, []string{"node1", "node2"}, 3*time.Second)
	t.Logf("merged after %v", took)
}

// TestRestartedNodeRejoins checks that a node that crashed and came back
// under the same name and address is a member again: the others had it as
// dead with a higher incarnation, which it must refute.
func TestRestartedNodeRejoins(t *testing.T) {
	port, ms := threeNodes(t)
	ms[2].Shutdown()
	waitMembers(t, ms[0], []string{"node1", "node2"}, 3*time.Second)
	m3 := start(t, "node3", "127.0.0.3", port, "s3cret")
	if n, err := m3.Join([]netip.Addr{ip1, ip2}); n == 0 {
		t.Fatalf("rejoin failed: %v", err)
	}
	all := []string{"node1", "node2", "node3"}
	waitMembers(t, ms[0], all, 3*time.Second)
	waitMembers(t, m3, all, 3*time.Second)
}

func TestLogWriter(t *testing.T) {
	w := logWriter{ktesting.NewLogger(t, ktesting.NewConfig())}
	for _, line := range []string{"[ERR] memberlist: x", "[WARN] memberlist: y", "[DEBUG] memberlist: z", "no prefix"} {
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Errorf("Write(%q) = %d, %v", line, n, err)
		}
	}
}

var _ memberlist.EventDelegate = events{}
