package membership

import (
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

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/keyring"
)

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
	return startTuned(t, name, ip, port, secret, nil)
}

// startTuned is start with the memberlist configuration adjusted by tune
// (nil: as shipped).
func startTuned(t *testing.T, name string, ip string, port int, secret string, tune func(*memberlist.Config)) *Membership {
	t.Helper()
	keys, err := keyring.Parse(map[string][]byte{keyring.PrimaryKey: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Start(Config{
		NodeName: name,
		BindAddr: netip.MustParseAddr(ip),
		BindPort: port,
		Keys:     &keys,
		Meta:     []byte(name),
		Logger:   ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2))).WithValues("node", name),
		tune:     tune,
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
	return threeNodesTuned(t, nil)
}

// threeNodesTuned is threeNodes with the memberlist configuration adjusted
// by tune.
func threeNodesTuned(t *testing.T, tune func(*memberlist.Config)) (port int, ms []*Membership) {
	port = testPort(t)
	m1 := startTuned(t, "node1", "127.0.0.1", port, "s3cret", tune)
	m2 := startTuned(t, "node2", "127.0.0.2", port, "s3cret", tune)
	m3 := startTuned(t, "node3", "127.0.0.3", port, "s3cret", tune)
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

// TestLeaveIsRemembered: a member that left on purpose is in View's Left
// until it joins again; one that crashed is not.
func TestLeaveIsRemembered(t *testing.T) {
	port, ms := threeNodes(t)
	if err := ms[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, ms[0], []string{"node1", "node2"}, 2*time.Second)
	if v := ms[0].View(); !v.Left["node3"] || len(v.Members) != 2 {
		t.Errorf("after a leave: %+v", v)
	}
	ms[2].Shutdown()
	m3 := start(t, "node3", "127.0.0.3", port, "s3cret")
	if n, err := m3.Join([]netip.Addr{ip1}); n == 0 {
		t.Fatal(err)
	}
	waitMembers(t, ms[0], []string{"node1", "node2", "node3"}, 3*time.Second)
	if v := ms[0].View(); len(v.Left) != 0 {
		t.Errorf("after the rejoin: left %v", v.Left)
	}
	m3.Shutdown()
	waitMembers(t, ms[0], []string{"node1", "node2"}, 3*time.Second)
	if v := ms[0].View(); len(v.Left) != 0 {
		t.Errorf("after a crash: left %v, want nothing", v.Left)
	}
}

// TestMetaIsPublished: every member sees the others' metadata, and a
// change reaches them.
func TestMetaIsPublished(t *testing.T) {
	_, ms := threeNodes(t)
	eventually(t, "the start metadata everywhere", func() bool {
		for _, m := range ms {
			v := m.View()
			for _, n := range []string{"node1", "node2", "node3"} {
				if string(v.Members[n]) != n {
					return false
				}
			}
		}
		return true
	})
	ms[1].SetMeta([]byte("changed"))
	eventually(t, "the change on node1 and node3", func() bool {
		return string(ms[0].View().Members["node2"]) == "changed" && string(ms[2].View().Members["node2"]) == "changed"
	})
}

// TestContact: members in touch have contact; a node whose peers are gone
// loses it within the window, and a change is signalled.
func TestContact(t *testing.T) {
	_, ms := threeNodes(t)
	eventually(t, "contact everywhere", func() bool {
		return ms[0].View().Contact && ms[1].View().Contact && ms[2].View().Contact
	})
	for len(ms[0].Changes()) > 0 {
		<-ms[0].Changes()
	}
	ms[1].Shutdown()
	ms[2].Shutdown()
	eventually(t, "node1 without contact", func() bool { return !ms[0].View().Contact })
	select {
	case <-ms[0].Changes():
	case <-time.After(2 * time.Second):
		t.Error("no change signalled when contact went stale")
	}
}

// TestRotateKeysNodeByNode runs the three rotation steps of package
// keyring on three members, one member at a time, with a pause after
// each: nobody ever loses anybody.
func TestRotateKeysNodeByNode(t *testing.T) {
	// Slower to suspect than shipped, so that a CPU-starved test run (make
	// test runs packages in parallel, with -race) is not taken for a key
	// that does not work: a node that cannot decrypt gets no ack at all and
	// is still declared dead within about 0.8 s, well inside one step.
	_, ms := threeNodesTuned(t, func(c *memberlist.Config) {
		c.ProbeTimeout = 300 * time.Millisecond
		c.SuspicionMult = 4
	})
	all := []string{"node1", "node2", "node3"}
	steps := []map[string][]byte{
		{"secretkey": []byte("s3cret"), "accepted-key-next": []byte("n3w")},
		{"secretkey": []byte("n3w"), "accepted-key-old": []byte("s3cret")},
		{"secretkey": []byte("n3w")},
	}
	lost := make(chan string, 100)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for i, m := range ms {
				if got := m.Members(); !slices.Equal(got, all) {
					lost <- fmt.Sprintf("node%d sees %v", i+1, got)
				}
			}
		}
	}()
	for i, data := range steps {
		keys, err := keyring.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if err := m.SetKeys(keys); err != nil {
				t.Fatalf("step %d: %v", i+1, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	close(stop)
	<-done
	close(lost)
	for l := range lost {
		t.Error(l)
	}
	// Only the new key is left: a node with the old one is refused.
	port := ms[0].port
	old := start(t, "node4", "127.0.0.4", port, "s3cret")
	if n, err := old.Join([]netip.Addr{ip1}); n != 0 || err == nil {
		t.Errorf("a node with the dropped key joined: %d, %v", n, err)
	}
}

func TestSetKeysWithoutEncryption(t *testing.T) {
	m, err := Start(Config{NodeName: "node1", BindAddr: ip1, BindPort: testPort(t), Logger: ktesting.NewLogger(t, ktesting.NewConfig())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	if err := m.SetKeys(keyring.Set{Primary: keyring.Derive([]byte("x"))}); err == nil {
		t.Error("SetKeys on unencrypted gossip: no error")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
