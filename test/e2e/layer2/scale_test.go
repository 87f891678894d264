package layer2

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/e2e"
)

// TestScale runs the three announcers with BAREMETAL_E2E_SCALE layer2
// Services (say 5000), IPv6 addresses from a large documentation-range
// pool, and logs each announcer's memory and CPU: once everything is
// announced, and after a quiet minute. It also checks that a sample of
// IPs is reachable at its owner. Off unless the variable is set.
func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BAREMETAL_E2E_SCALE"))
	if n <= 0 {
		t.Skip("set BAREMETAL_E2E_SCALE=5000 to run")
	}
	tb := newTestbed(t)
	tb.useScalePool()
	tb.startAll()

	ips := scaleIPs(n)
	start := time.Now()
	tb.createScale(ips)
	t.Logf("%d Services created in %v", n, time.Since(start))
	tb.waitAnnounced(n, settleTimeout)
	t.Logf("all %d IPs announced %v after the first create", n, time.Since(start))
	tb.logUsage("settled")

	for _, i := range []int{0, n / 3, n / 2, n - 1} {
		ip := ips[i]
		owner := expectedOwner(ip, allNodes...)
		if err := tb.Lab.Host(owner).AddVIP(ip); err != nil {
			t.Fatal(err)
		}
		tb.waitServedBy(ip, owner)
	}
	tb.saveProfiles("settled")
	time.Sleep(time.Minute)
	tb.logUsage("after a quiet minute")
}

// scalePool is a larger IPv6 pool next to the usual one, for thousands of
// Services.
const scalePool = `- name: scale
  protocol: layer2
  addresses:
  - 2001:db8:1::1:0/112
`

// useScalePool adds scalePool to the cloud-config; call it before the
// announcers start.
func (tb *testbed) useScalePool() {
	tb.T.Helper()
	if err := os.WriteFile(tb.ConfigFile, []byte(cloudConfig+scalePool), 0o644); err != nil {
		tb.T.Fatal(err)
	}
}

// scaleIPs returns n addresses of scalePool (n ≤ 65536).
func scaleIPs(n int) []string {
	ips := make([]string, n)
	for i := range ips {
		b := netip.MustParseAddr("2001:db8:1::1:0").As16()
		b[14], b[15] = byte(i>>8), byte(i)
		ips[i] = netip.AddrFrom16(b).String()
	}
	return ips
}

// createScale creates one Service per IP, with its status IP written as
// the CCM would, 16 at a time through a client with room for that.
func (tb *testbed) createScale(ips []string) {
	tb.T.Helper()
	rc := e2e.ControlPlane().AdminConfig()
	rc.QPS, rc.Burst = 2000, 4000
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(tb.Ctx, 15*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := createWithIP(ctx, cs, tb.NS, fmt.Sprintf("s%05d", i), ips[i]); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range ips {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.T.Fatal(err)
	default:
	}
}

var announcedGauge = regexp.MustCompile(`baremetal_announcer_announced_ips\{protocol="layer2"\} (\d+)`)

// announcedTotal sums the layer2 IPs the announcers say they announce.
func (tb *testbed) announcedTotal() (int, error) {
	total := 0
	for _, h := range tb.Lab.Nodes() {
		body, err := tb.Scrape(h, "/metrics", 5*time.Second)
		if err != nil {
			return 0, err
		}
		m := announcedGauge.FindStringSubmatch(body)
		if m == nil {
			return 0, fmt.Errorf("%s: no announced_ips gauge", h.Name())
		}
		v, _ := strconv.Atoi(m[1])
		total += v
	}
	return total, nil
}

// waitAnnounced waits, at most within, until the announcers announce n
// IPs between them.
func (tb *testbed) waitAnnounced(n int, within time.Duration) {
	tb.T.Helper()
	deadline := time.Now().Add(within)
	for {
		total, err := tb.announcedTotal()
		if err == nil && total == n {
			return
		}
		if time.Now().After(deadline) {
			tb.T.Fatalf("after %v: %d IPs announced (%v), want %d", within, total, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// saveProfiles writes node1's heap and a 30 s CPU profile into
// $BAREMETAL_E2E_PPROF_DIR, if set.
func (tb *testbed) saveProfiles(when string) {
	dir := os.Getenv("BAREMETAL_E2E_PPROF_DIR")
	if dir == "" {
		return
	}
	h := tb.Lab.Node(1)
	for name, path := range map[string]string{"heap": "/debug/pprof/heap", "cpu": "/debug/pprof/profile?seconds=30"} {
		body, err := tb.Scrape(h, path, time.Minute)
		if err != nil {
			tb.T.Logf("profile %s: %v", name, err)
			continue
		}
		file := filepath.Join(dir, when+"-"+name+".pprof")
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			tb.T.Logf("profile %s: %v", name, err)
		}
	}
}

func createWithIP(ctx context.Context, cs kubernetes.Interface, ns, name, ip string) error {
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80}},
			// There are fewer NodePorts than Services here.
			AllocateLoadBalancerNodePorts: new(false),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	_, err = cs.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	return err
}

// logUsage logs each announcer's resident memory (now and peak) and CPU
// time so far, from /proc.
func (tb *testbed) logUsage(when string) {
	for _, h := range tb.Lab.Nodes() {
		u, err := readUsage(tb.Announcers[h.Name()].Pid())
		if err != nil {
			tb.T.Logf("%s, %s: %v", when, h.Name(), err)
			continue
		}
		tb.T.Logf("%s, %s: VmRSS %d kB (anon %d kB, file %d kB), VmHWM %d kB, CPU %v", when, h.Name(), u.rssKB, u.anonKB, u.fileKB, u.hwmKB, u.cpu)
	}
}

// usage is a process's memory and CPU time, as /proc reports them.
type usage struct {
	rssKB, anonKB, fileKB, hwmKB int // VmRSS, RssAnon, RssFile, VmHWM
	cpu                          time.Duration
}

// readUsage reads /proc/pid/status and /proc/pid/stat.
func readUsage(pid int) (usage, error) {
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	fields := map[string]*int{"VmRSS": &u.rssKB, "RssAnon": &u.anonKB, "RssFile": &u.fileKB, "VmHWM": &u.hwmKB}
	for _, l := range strings.Split(string(status), "\n") {
		name, value, ok := strings.Cut(l, ":")
		if dst := fields[name]; ok && dst != nil {
			// "  12345 kB"
			if *dst, err = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB")); err != nil {
				return u, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) may hold spaces; count from after it.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest) // f[0] is field 3 (state): utime is f[11], stime f[12]
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.Atoi(f[11])
	st, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	u.cpu = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100
	return u, nil
}
