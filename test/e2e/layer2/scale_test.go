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
	// A larger IPv6 pool next to the usual one.
	cfg := cloudConfig + `- name: scale
  protocol: layer2
  addresses:
  - 2001:db8:1::1:0/112
`
	if err := os.WriteFile(tb.configFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tb.startAll()

	ips := make([]string, n)
	for i := range ips {
		b := netip.MustParseAddr("2001:db8:1::1:0").As16()
		b[14], b[15] = byte(i>>8), byte(i)
		ips[i] = netip.AddrFrom16(b).String()
	}
	rc := cp.AdminConfig()
	rc.QPS, rc.Burst = 2000, 4000
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := createWithIP(ctx, cs, tb.ns, fmt.Sprintf("s%05d", i), ips[i]); err != nil {
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
		t.Fatal(err)
	default:
	}
	t.Logf("%d Services created in %v", n, time.Since(start))

	gauge := regexp.MustCompile(`baremetal_announcer_announced_ips\{protocol="layer2"\} (\d+)`)
	tb.eventually(fmt.Sprintf("%d IPs announced in total", n), func() bool {
		total := 0
		for _, h := range tb.lab.Nodes() {
			m := gauge.FindStringSubmatch(tb.metrics(h))
			if m == nil {
				return false
			}
			v, _ := strconv.Atoi(m[1])
			total += v
		}
		return total == n
	})
	t.Logf("all %d IPs announced %v after the first create", n, time.Since(start))
	tb.logUsage("settled")

	for _, i := range []int{0, n / 3, n / 2, n - 1} {
		ip := ips[i]
		owner := expectedOwner(ip, allNodes...)
		if err := tb.lab.Host(owner).AddVIP(ip); err != nil {
			t.Fatal(err)
		}
		tb.waitServedBy(ip, owner)
	}
	tb.saveProfiles("settled")
	time.Sleep(time.Minute)
	tb.logUsage("after a quiet minute")
}

// saveProfiles writes node1's heap and a 30 s CPU profile into
// $BAREMETAL_E2E_PPROF_DIR, if set.
func (tb *testbed) saveProfiles(when string) {
	dir := os.Getenv("BAREMETAL_E2E_PPROF_DIR")
	if dir == "" {
		return
	}
	h := tb.lab.Node(1)
	for name, path := range map[string]string{"heap": "/debug/pprof/heap", "cpu": "/debug/pprof/profile?seconds=30"} {
		body, err := h.HTTPGet(tb.ctx, "http://127.0.0.1:7472"+path, time.Minute)
		if err != nil {
			tb.t.Logf("profile %s: %v", name, err)
			continue
		}
		file := filepath.Join(dir, when+"-"+name+".pprof")
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			tb.t.Logf("profile %s: %v", name, err)
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
	for _, h := range tb.lab.Nodes() {
		p := tb.announcers[h.Name()]
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		field := func(name string) string {
			for _, l := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(l, name+":") {
					return strings.TrimSpace(strings.TrimPrefix(l, name+":"))
				}
			}
			return "?"
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		cpu := "?"
		if f := strings.Fields(string(stat)); len(f) > 15 {
			u, _ := strconv.Atoi(f[13])
			s, _ := strconv.Atoi(f[14])
			cpu = (time.Duration(u+s) * 10 * time.Millisecond).String() // USER_HZ = 100
		}
		tb.t.Logf("%s, %s: VmRSS %s (anon %s, file %s), VmHWM %s, CPU %s", when, h.Name(), field("VmRSS"), field("RssAnon"), field("RssFile"), field("VmHWM"), cpu)
	}
}
