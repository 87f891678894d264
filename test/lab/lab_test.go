package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// labNamespaces lists the namespaces whose names start with prefix+"-",
// according to `ip netns list`, the view an operator would check.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := runCmd(context.Background(), "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			names = append(names, f[0])
		}
	}
	return names
}

// waitGone waits until none of pids runs any more. A zombie counts as gone:
// PID 1 reaps orphans late on these machines.
func waitGone(t *testing.T, pids []int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var alive []int
		for _, pid := range pids {
			if state, _, err := procStat(pid); err == nil && state != "Z" && state != "X" {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still run %v after teardown", alive, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLeftovers starts two kinds of processes in h: one tracked child and
// one orphan that only a netns-wide kill finds. It returns their pids.
func startLeftovers(ctx context.Context, t testing.TB, h *Host) []int {
	t.Helper()
	p, err := h.Start(ctx, process.Spec{Name: "sleeper", Path: "sleep", Args: []string{"300"}})
	if err != nil {
		t.Fatal(err)
	}
	// The shell exits at once; its sleep is reparented to PID 1 and is no
	// child of the test any more, like a daemon that forked.
	out, err := h.Exec(ctx, "sh", "-c", "sleep 301 >/dev/null 2>&1 & echo $!")
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", out, err)
	}
	return []int{p.Pid(), orphan}
}

func TestLabUpAndClose(t *testing.T) {
	ctx := testCtx(t)
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	begin := time.Now()
	l, err := New(ctx, Options{Router: true, Client: true, IPv6: true, Dir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	t.Logf("lab %s up in %v", l.Prefix(), time.Since(begin).Round(time.Millisecond))

	if got, want := len(l.Namespaces()), 6; got != want {
		t.Errorf("namespaces %v, want %d", l.Namespaces(), want)
	}
	c, n1 := l.Client(), l.Node(1)
	if n1.Name() != "node1" || n1.NS() != l.Prefix()+"-node1" || n1.IPv4().String() != "203.0.113.11" ||
		n1.IPv6().String() != "2001:db8:1::11" || n1.MAC().String() != "02:00:00:00:00:11" {
		t.Errorf("node1 = %s %s %s %s %s", n1.Name(), n1.NS(), n1.IPv4(), n1.IPv6(), n1.MAC())
	}
	if c.MAC().String() != "02:00:00:00:01:00" || l.Router().MAC().String() != "02:00:00:00:00:01" {
		t.Errorf("MACs: client %s, router %s", c.MAC(), l.Router().MAC())
	}

	begin = time.Now()
	for _, ip := range []string{n1.IPv4().String(), n1.IPv6().String()} {
		if err := c.Ping(ctx, ip, 3*time.Second); err != nil {
			t.Error(err)
		}
		mac, state, err := c.Neighbor(ip)
		if err != nil || mac != n1.MAC().String() {
			t.Errorf("client's neighbour entry for %s: %q %q %v, want %s", ip, mac, state, err, n1.MAC())
		}
	}
	t.Logf("client pinged node1 (IPv4, IPv6) in %v", time.Since(begin).Round(time.Millisecond))

	sysctls := []struct {
		h         *Host
		key, want string
	}{
		{n1, "net.ipv4.conf.all.arp_ignore", "1"},
		{n1, "net.ipv4.conf.all.arp_announce", "2"},
		{n1, "net.ipv6.conf.eth0.accept_dad", "0"},
		{n1, "net.ipv6.conf.eth0.keep_addr_on_down", "1"},
		{c, "net.ipv4.conf.all.arp_ignore", "0"},
		{l.Router(), "net.ipv4.ip_forward", "1"},
		{l.Router(), "net.ipv6.conf.all.forwarding", "1"},
		{l.Router(), "net.ipv6.conf.eth0.forwarding", "1"},
		{l.Router(), "net.ipv4.conf.eth0.forwarding", "1"},
		{n1, "net.ipv4.conf.eth0.forwarding", "0"},
		{l.Router(), "net.ipv4.fib_multipath_hash_policy", "1"},
	}
	for _, s := range sysctls {
		// Read through `ip netns exec ... sysctl`, independently of the
		// Go thread trick that wrote them.
		out, err := s.h.Exec(ctx, "cat", "/proc/sys/"+dotsToSlashes(s.key))
		if got := strings.TrimSpace(out); err != nil || got != s.want {
			t.Errorf("%s: %s = %q (%v), want %s", s.h, s.key, got, err, s.want)
		}
	}

	pids := startLeftovers(ctx, t, n1)
	begin = time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("closed in %v", time.Since(begin).Round(time.Millisecond))
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := labNamespaces(t, l.Prefix()); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	waitGone(t, pids, 3*time.Second)
	if _, err := os.Stat(filepath.Join(RunBase, l.Prefix())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory left after Close: %v", err)
	}
}

// TestVIPOnNode checks kube-proxy's part of the path: a VIP on node2's lo,
// a client that sends the VIP's packets to node2's MAC, and the node's HTTP
// server answering. The announcer will later replace the static neighbour
// entry with ARP and NDP.
func TestVIPOnNode(t *testing.T) {
	ctx := testCtx(t)
	l := NewForTest(t, Options{Client: true, IPv6: true})
	c, n2 := l.Client(), l.Node(2)
	for _, n := range l.Nodes() {
		if _, err := n.ServeHTTP(8080); err != nil {
			t.Fatal(err)
		}
	}

	for _, vip := range []string{"203.0.113.200", "2001:db8:1::200"} {
		t.Run(vip, func(t *testing.T) {
			if err := n2.AddVIP(vip); err != nil {
				t.Fatal(err)
			}
			if err := n2.AddVIP(vip); err != nil {
				t.Fatalf("adding the VIP again: %v", err)
			}
			// arp_ignore=1 (IPv4) and the on-link rule of NDP (IPv6): the
			// node's kernel does not claim a VIP that lives on lo. That
			// is the announcer's job.
			macs, err := c.Arping(ctx, vip, 300*time.Millisecond)
			if err != nil || len(macs) != 0 {
				t.Errorf("who-has %s before any announcer: %v %v, want no answer", vip, macs, err)
			}
			if err := c.SetNeighbor(vip, n2.MAC()); err != nil {
				t.Fatal(err)
			}
			url := "http://" + net.JoinHostPort(vip, "8080") + "/"
			body, err := c.HTTPGet(ctx, url, 3*time.Second)
			if err != nil || body != "node2\n" {
				t.Fatalf("GET %s = %q, %v; want node2", url, body, err)
			}
			if mac, state, _ := c.Neighbor(vip); mac != n2.MAC().String() || state != "PERMANENT" {
				t.Errorf("neighbour entry %q %q", mac, state)
			}

			if err := n2.DelVIP(vip); err != nil {
				t.Fatal(err)
			}
			if err := n2.DelVIP(vip); err != nil {
				t.Errorf("removing the VIP again: %v", err)
			}
			if body, err := c.HTTPGet(ctx, url, 300*time.Millisecond); err == nil {
				t.Errorf("GET %s without the VIP answered %q", url, body)
			}
			if err := c.DelNeighbor(vip); err != nil {
				t.Fatal(err)
			}
			if mac, _, _ := c.Neighbor(vip); mac != "" {
				t.Errorf("neighbour entry left: %s", mac)
			}
		})
	}

	t.Run("arping nodes", func(t *testing.T) {
		for _, ip := range []string{n2.IPv4().String(), n2.IPv6().String()} {
			macs, err := c.Arping(ctx, ip, 300*time.Millisecond)
			if err != nil || len(macs) != 1 || macs[0].String() != n2.MAC().String() {
				t.Errorf("who-has %s: %v %v, want only %s", ip, macs, err, n2.MAC())
			}
		}
	})

	t.Run("flush", func(t *testing.T) {
		if err := c.SetNeighbor("203.0.113.201", n2.MAC()); err != nil {
			t.Fatal(err)
		}
		if err := c.FlushNeighbors(); err != nil {
			t.Fatal(err)
		}
		for _, ip := range []string{"203.0.113.201", n2.IPv4().String()} {
			if mac, state, _ := c.Neighbor(ip); mac != "" {
				t.Errorf("after flush: %s -> %s %s", ip, mac, state)
			}
		}
	})
}

func TestForwardAPIServer(t *testing.T) {
	ctx := testCtx(t)
	l := NewForTest(t, Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)

	// An HTTPS server on the root namespace's loopback, like the apiserver.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	addr := srv.Listener.Addr().String()

	fwd, err := l.ForwardAPIServer(n1, port)
	if err != nil {
		t.Fatal(err)
	}
	if fwd.Addr().String() != addr {
		t.Errorf("forward listens on %s, want %s", fwd.Addr(), addr)
	}

	// The same URL and certificate work from node1.
	get := func(h *Host) (string, error) {
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				return dialIn(ctx, h.NS(), network, a)
			},
			TLSClientConfig:   &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
		resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for i := 0; i < 3; i++ {
		if body, err := get(n1); err != nil || body != "hello /readyz" {
			t.Fatalf("HTTPS from node1 through the forward: %q, %v", body, err)
		}
	}
	// node2 has no forward: its own loopback has nothing on that port.
	if body, err := get(n2); err == nil {
		t.Errorf("node2 reached the root namespace's loopback without a forward: %q", body)
	}

	// Raw TCP with a half-close: the EOF must reach the server and the
	// server's answer must come back after it.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c) // until the client's half-close
				_, _ = c.Write([]byte(strings.ToUpper(string(b))))
			}()
		}
	}()
	efwd, err := l.Forward(n2, "127.0.0.1:7000", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dialIn(ctx, n2.NS(), "tcp", "127.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("ping over the forward")); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || string(got) != "PING OVER THE FORWARD" {
		t.Errorf("echo through the forward: %q, %v", got, err)
	}

	// Closed forwards refuse, and Close is idempotent.
	for _, f := range []*Forward{fwd, efwd} {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
	if _, err := get(n1); err == nil {
		t.Error("node1 still reaches the apiserver after the forward was closed")
	}
}

func TestUnplugPlug(t *testing.T) {
	ctx := testCtx(t)
	l := NewForTest(t, Options{Nodes: 1, Client: true, IPv6: true})
	c, n1 := l.Client(), l.Node(1)
	if _, err := n1.ServeHTTP(80); err != nil {
		t.Fatal(err)
	}
	url := "http://" + n1.IPv4().String() + "/"
	if body, err := c.HTTPGet(ctx, url, 3*time.Second); err != nil || body != "node1\n" {
		t.Fatalf("before unplug: %q, %v", body, err)
	}
	if err := l.Unplug(n1); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{n1.IPv4().String(), n1.IPv6().String()} {
		if err := c.Ping(ctx, ip, 500*time.Millisecond); err == nil {
			t.Errorf("%s answers while unplugged", ip)
		}
	}
	if body, err := c.HTTPGet(ctx, url, 500*time.Millisecond); err == nil {
		t.Errorf("HTTP answered while unplugged: %q", body)
	}
	if err := l.Plug(n1); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{n1.IPv4().String(), n1.IPv6().String()} {
		begin := time.Now()
		if err := c.Ping(ctx, ip, 5*time.Second); err != nil {
			t.Errorf("after plug: %v", err)
		}
		mac, state, _ := c.Neighbor(ip)
		t.Logf("%s reachable again %v after Plug (%s %s)", ip, time.Since(begin).Round(time.Millisecond), mac, state)
	}
	if body, err := c.HTTPGet(ctx, url, 3*time.Second); err != nil || body != "node1\n" {
		t.Errorf("after plug: %q, %v", body, err)
	}
}

func TestParallelLabs(t *testing.T) {
	ctx := testCtx(t)
	a := NewForTest(t, Options{Nodes: 1, Client: true})
	b := NewForTest(t, Options{Nodes: 1, Client: true})
	if a.Prefix() == b.Prefix() {
		t.Fatalf("two labs share prefix %s", a.Prefix())
	}
	// Same addresses, separate wires: each client reaches its own node1.
	for _, l := range []*Lab{a, b} {
		if err := l.Client().Ping(ctx, "203.0.113.11", 3*time.Second); err != nil {
			t.Error(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client().Ping(ctx, "203.0.113.11", 3*time.Second); err != nil {
		t.Errorf("closing one lab broke the other: %v", err)
	}
}

// Helper process modes for the teardown tests. The helper is this test
// binary, run with -test.run=^TestHelperProcess$.
const (
	helperModeEnv   = "LAB_TEST_HELPER"
	helperPrefixEnv = "LAB_TEST_HELPER_PREFIX"
)

// TestHelperProcess is not a test: it is the child of the teardown tests.
// It builds a lab, starts leftovers, prints "READY pid pid", then fails
// (mode "fail") or waits to be killed (mode "hang").
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperModeEnv)
	if mode == "" {
		t.Skip("helper for the teardown tests")
	}
	ctx := testCtx(t)
	l := NewForTest(t, Options{Prefix: os.Getenv(helperPrefixEnv), Nodes: 1, Client: true})
	pids := startLeftovers(ctx, t, l.Node(1))
	fmt.Printf("READY %d %d\n", pids[0], pids[1])
	switch mode {
	case "fail":
		t.Fatal("failing on purpose, midway")
	case "hang":
		time.Sleep(time.Minute)
		t.Fatal("the parent test should have killed this helper")
	}
}

// runHelper starts the helper and waits for its READY line.
func runHelper(t *testing.T, mode, prefix string) (*exec.Cmd, []int, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperPrefixEnv+"="+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	log := &strings.Builder{}
	ready := make(chan []int, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			var a, b int
			if n, _ := fmt.Sscanf(line, "READY %d %d", &a, &b); n == 2 {
				ready <- []int{a, b}
			}
		}
	}()
	t.Cleanup(func() { <-copied })
	select {
	case pids := <-ready:
		return cmd, pids, log
	case <-copied:
		_ = cmd.Wait()
		t.Fatalf("helper ended before READY:\n%s", log)
	case <-time.After(30 * time.Second):
		t.Fatalf("helper not READY after 30s:\n%s", log)
	}
	return nil, nil, nil
}

// waitNoLeftovers waits until no namespace with prefix and no run directory
// of it remains; the watchdog removes the directory last.
func waitNoLeftovers(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := labNamespaces(t, prefix)
		_, err := os.Stat(filepath.Join(RunBase, prefix))
		if len(left) == 0 && errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the helper ended: namespaces %v, run directory: %v", d, left, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTeardown(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	base := fmt.Sprintf("t%dh", os.Getpid())

	t.Run("failed test", func(t *testing.T) {
		prefix := base + "fail"
		cmd, pids, log := runHelper(t, "fail", prefix)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("helper exit: %v, want exit status 1", err)
		}
		// The cleanup ran inside the failed test, before the binary ended.
		if left := labNamespaces(t, prefix); len(left) > 0 {
			t.Errorf("namespaces left by a failed test: %v", left)
		}
		waitGone(t, pids, 3*time.Second)
		if t.Failed() {
			t.Logf("helper output:\n%s", log)
		}
	})

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			prefix := base + strconv.Itoa(int(sig))
			cmd, pids, log := runHelper(t, "hang", prefix)
			begin := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			// No cleanup ran in the helper: the watchdog does it.
			waitNoLeftovers(t, prefix, 5*time.Second)
			waitGone(t, pids, 3*time.Second)
			t.Logf("torn down %v after %v", time.Since(begin).Round(time.Millisecond), sig)
			if t.Failed() {
				t.Logf("helper output:\n%s", log)
			}
		})
	}

	t.Run("New fails midway", func(t *testing.T) {
		prefix := base + "new"
		// A namespace New does not own blocks node2: New must fail, remove
		// what it built, and leave the foreign namespace alone.
		foreign := prefix + "-node2"
		if _, err := runCmd(context.Background(), "ip", "netns", "add", foreign); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = runCmd(context.Background(), "ip", "netns", "del", foreign) }()
		_, err := New(testCtx(t), Options{Prefix: prefix, Nodes: 3})
		if err == nil {
			t.Fatal("New succeeded despite an existing namespace")
		}
		t.Logf("New: %v", err)
		if left := labNamespaces(t, prefix); len(left) != 1 || left[0] != foreign {
			t.Errorf("namespaces after a failed New: %v, want only %s", left, foreign)
		}
		if _, err := os.Stat(filepath.Join(RunBase, prefix)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run directory left: %v", err)
		}
	})

	t.Run("Sweep", func(t *testing.T) {
		// Fake the leftovers of a run that died without its watchdog: a
		// run directory whose owner is dead, a namespace with a process.
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			prefix    string
			owner     string
			wantSwept bool
		}{
			{base + "dead", fmt.Sprintf("%d 1\n", dead.Process.Pid), true},
			{base + "live", func() string { s, _ := procStartTime(os.Getpid()); return fmt.Sprintf("%d %d\n", os.Getpid(), s) }(), false},
			{base + "reused", fmt.Sprintf("%d 1\n", os.Getpid()), true}, // our pid, another start time
		} {
			dir := filepath.Join(RunBase, tc.prefix)
			ns := tc.prefix + "-node1"
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tc.owner), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, namespacesFile), []byte(ns+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := runCmd(context.Background(), "ip", "netns", "add", ns); err != nil {
				t.Fatal(err)
			}
			out, err := runCmd(context.Background(), "ip", "netns", "exec", ns, "sh", "-c", "sleep 302 >/dev/null 2>&1 & echo $!")
			if err != nil {
				t.Fatal(err)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(out))

			if err := Sweep(base); err != nil {
				t.Errorf("Sweep: %v", err)
			}
			left := labNamespaces(t, tc.prefix)
			if tc.wantSwept {
				if len(left) > 0 {
					t.Errorf("%s: Sweep left %v", tc.prefix, left)
				}
				waitGone(t, []int{pid}, 3*time.Second)
			} else if len(left) != 1 {
				t.Errorf("%s: Sweep removed the namespaces of a live run", tc.prefix)
			}
			_ = sweepDir(dir, nil)
			waitGone(t, []int{pid}, 3*time.Second)
		}
	})
}

func TestEnsurePackagesPresent(t *testing.T) {
	if !Installed("iproute2") {
		t.Skip("iproute2 is not a Debian package here")
	}
	begin := time.Now()
	if err := EnsurePackages(testCtx(t), "iproute2"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("EnsurePackages of an installed package took %v", d)
	}
}
