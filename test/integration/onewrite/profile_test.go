package onewrite

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// auditPolicy logs, at Metadata level (no bodies), every write to a
// Service or its status; nothing else. The stage timestamps are what the
// profile needs: when the apiserver received each request and when it
// finished the response.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources:
  - group: ""
    resources: ["services", "services/status"]
  verbs: ["create", "patch", "update", "delete"]
- level: None
`

// auditEvent is the part of an audit.k8s.io/v1 Event the profile reads.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	ObjectRef struct {
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	Received metav1.MicroTime `json:"requestReceivedTimestamp"`
	Done     metav1.MicroTime `json:"stageTimestamp"`
}

// clientTimes are what the test itself saw of one Service.
type clientTimes struct {
	call, ret, ip time.Time
}

// serverTimes are what the apiserver and the CCM's log saw of it.
type serverTimes struct {
	createRecv, createDone time.Time
	patches                []auditEvent // the CCM's writes, in order
	syncStart, patchStatus time.Time    // CCM log, V(2)
}

// BenchmarkCreateToIPProfile breaks create -> IP down into its steps, with
// and without the one-write policy: client timestamps (Create sent and
// returned, IP seen by a watch), the apiserver's audit log (each write's
// arrival and completion) and the CCM's own log at V(2) (the service
// controller's "Ensuring load balancer" at the start of a sync, "Patching
// status" just before the status write), plus the service workqueue's
// metrics. It has a control plane of its own, with the audit log on, so
// the side-by-side figures are not measured with auditing.
//
//	go test -run '^$' -bench Profile -benchtime=1x ./test/integration/onewrite/
//
// writes bench/results/create-to-ip-profile.txt.
func BenchmarkCreateToIPProfile(b *testing.B) {
	const n, warmup = 60, 5
	requireControlPlane(b)
	dir := b.TempDir()
	policyFile, auditLog := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policyFile, []byte(auditPolicy), 0o644); err != nil {
		b.Fatal(err)
	}
	pc := controlplane.StartForTest(b, controlplane.Options{APIServerArgs: []string{
		serviceRange, "--audit-policy-file=" + policyFile, "--audit-log-path=" + auditLog,
		// One file for the whole run, written as each request ends.
		"--audit-log-maxsize=0", "--audit-log-mode=blocking",
	}})
	arms := newSideBySide(newEnv(b, pc, benchTimeout), "profile-node")
	nss := arms.nss
	// --v=2 for the service controller's log lines; the side-by-side
	// benchmark runs at --v=0 as shipped.
	c := ccm.New(b, pc, ccm.Options{CloudConfig: scaleConfig, Args: []string{"--v=2"}})
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}

	client := map[string]clientTimes{} // ns/name
	queue := map[string]queueStats{}
	b.ResetTimer()
	// One arm after the other, so that the workqueue's metrics can be
	// told apart per arm.
	for _, arm := range []string{twoWrite, oneWrite} {
		before := readQueueStats(b, c)
		for i := range n + warmup {
			name := fmt.Sprintf("prof-%d", i)
			call, ret, at := arms.create(b, arm, name)
			if i < warmup {
				continue
			}
			client[nss[arm]+"/"+name] = clientTimes{call: call, ret: ret, ip: at}
		}
		queue[arm] = readQueueStats(b, c).minus(before)
	}
	b.StopTimer()
	if err := c.Stop(); err != nil {
		b.Fatal(err)
	}
	server := readAudit(b, auditLog)
	readCCMLog(b, c.LogPath(), server)
	text := profileReport(b, nss, client, server, queue)
	writeResult(b, "create-to-ip-profile", text)
}

// queueStats are sums and counts of the service workqueue's histograms.
type queueStats struct {
	queueSum, queueCount, workSum, workCount float64
}

func (q queueStats) minus(o queueStats) queueStats {
	return queueStats{q.queueSum - o.queueSum, q.queueCount - o.queueCount, q.workSum - o.workSum, q.workCount - o.workCount}
}

func readQueueStats(b *testing.B, c *ccm.CCM) queueStats {
	b.Helper()
	// Right after a start the CCM may not have loaded the client CA it
	// authenticates scrapes with yet, and answers 403: ask again.
	var text string
	err := apitest.WaitUntil(b.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		var err error
		text, err = c.Metrics(ctx)
		return err == nil, err
	})
	if err != nil {
		b.Fatal(err)
	}
	l := map[string]string{"name": "service"}
	var q queueStats
	for _, m := range []struct {
		name string
		to   *float64
	}{
		{"workqueue_queue_duration_seconds_sum", &q.queueSum},
		{"workqueue_queue_duration_seconds_count", &q.queueCount},
		{"workqueue_work_duration_seconds_sum", &q.workSum},
		{"workqueue_work_duration_seconds_count", &q.workCount},
	} {
		v, err := ccm.MetricValue(text, m.name, l)
		if err != nil {
			b.Fatalf("%s: %v", m.name, err)
		}
		*m.to = v
	}
	return q
}

// readAudit collects, per ns/name, the create and the CCM's status
// patches from the audit log.
func readAudit(b *testing.B, path string) map[string]*serverTimes {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[string]*serverTimes{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			b.Fatalf("audit log %s: %v", path, err)
		}
		if ev.Stage != "ResponseComplete" || ev.ObjectRef.Name == "" {
			continue
		}
		key := ev.ObjectRef.Namespace + "/" + ev.ObjectRef.Name
		st := out[key]
		if st == nil {
			st = &serverTimes{}
			out[key] = st
		}
		switch {
		case ev.Verb == "create" && ev.ObjectRef.Subresource == "":
			st.createRecv, st.createDone = ev.Received.Time, ev.Done.Time
		case ev.Verb == "patch" && ev.ObjectRef.Subresource == "status" && strings.Contains(ev.User.Username, ccm.ServiceAccount):
			st.patches = append(st.patches, ev)
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// The service controller's V(2) lines (k8s.io/cloud-provider
// controllers/service), and klog's header.
var (
	ensuringRE = regexp.MustCompile(`Ensuring load balancer for service (\S+)`)
	patchingRE = regexp.MustCompile(`Patching status for service (\S+)`)
	klogRE     = regexp.MustCompile(`^[IWEF](\d{4}) (\d{2}:\d{2}:\d{2}\.\d{6})`)
)

// readCCMLog adds the CCM's own timestamps: the first sync start and the
// first status patch of each Service.
func readCCMLog(b *testing.B, path string, server map[string]*serverTimes) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	year := time.Now().Year()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		h := klogRE.FindStringSubmatch(line)
		if h == nil {
			continue
		}
		at, err := time.ParseInLocation("2006 0102 15:04:05.000000", fmt.Sprintf("%d %s %s", year, h[1], h[2]), time.Local)
		if err != nil {
			continue
		}
		if m := ensuringRE.FindStringSubmatch(line); m != nil {
			if st := server[strings.Trim(m[1], `"`)]; st != nil && st.syncStart.IsZero() {
				st.syncStart = at
			}
		}
		if m := patchingRE.FindStringSubmatch(line); m != nil {
			if st := server[strings.Trim(m[1], `"`)]; st != nil && st.patchStatus.IsZero() {
				st.patchStatus = at
			}
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
}

// step is one segment of create -> IP, measured per Service.
type step struct {
	label string
	f     func(c clientTimes, s *serverTimes) (time.Duration, bool)
}

func between(a, b time.Time) (time.Duration, bool) {
	if a.IsZero() || b.IsZero() {
		return 0, false
	}
	return b.Sub(a), true
}

func profileReport(b *testing.B, nss map[string]string, client map[string]clientTimes, server map[string]*serverTimes, queue map[string]queueStats) string {
	b.Helper()
	// The CCM's status write is its last patch before the IP: the second
	// on the two-write path (the first adds the finalizer), the first
	// with the policy.
	statusPatch := func(s *serverTimes) (auditEvent, bool) {
		if len(s.patches) == 0 {
			return auditEvent{}, false
		}
		if len(s.patches) >= 2 {
			return s.patches[1], true
		}
		return s.patches[0], true
	}
	finalizerPatch := func(s *serverTimes) (auditEvent, bool) {
		if len(s.patches) >= 2 {
			return s.patches[0], true
		}
		return auditEvent{}, false
	}
	steps := []step{
		{"Create call, client: sent -> response read", func(c clientTimes, s *serverTimes) (time.Duration, bool) { return between(c.call, c.ret) }},
		{"  of it in the apiserver (audit: received -> done)", func(c clientTimes, s *serverTimes) (time.Duration, bool) { return between(s.createRecv, s.createDone) }},
		{"create done -> CCM sync starts (informer + queue)", func(c clientTimes, s *serverTimes) (time.Duration, bool) { return between(s.createDone, s.syncStart) }},
		{"sync start -> finalizer PATCH received", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			p, ok := finalizerPatch(s)
			if !ok {
				return 0, false
			}
			return between(s.syncStart, p.Received.Time)
		}},
		{"finalizer PATCH in the apiserver", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			p, ok := finalizerPatch(s)
			if !ok {
				return 0, false
			}
			return between(p.Received.Time, p.Done.Time)
		}},
		{"finalizer PATCH done -> CCM about to patch status", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			p, ok := finalizerPatch(s)
			if !ok {
				return 0, false
			}
			return between(p.Done.Time, s.patchStatus)
		}},
		{"sync start -> CCM about to patch status (Ensure)", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			if _, two := finalizerPatch(s); two {
				return 0, false
			}
			return between(s.syncStart, s.patchStatus)
		}},
		{"about to patch -> status PATCH received", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			p, ok := statusPatch(s)
			if !ok {
				return 0, false
			}
			return between(s.patchStatus, p.Received.Time)
		}},
		{"status PATCH in the apiserver", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			p, ok := statusPatch(s)
			if !ok {
				return 0, false
			}
			return between(p.Received.Time, p.Done.Time)
		}},
		{"status PATCH done -> IP seen by the client's watch", func(c clientTimes, s *serverTimes) (time.Duration, bool) {
			p, ok := statusPatch(s)
			if !ok {
				return 0, false
			}
			return between(p.Done.Time, c.ip)
		}},
		{"TOTAL, Create sent -> IP seen", func(c clientTimes, s *serverTimes) (time.Duration, bool) { return between(c.call, c.ip) }},
		{"TOTAL, Create returned -> IP seen", func(c clientTimes, s *serverTimes) (time.Duration, bool) { return between(c.ret, c.ip) }},
	}
	var t strings.Builder
	count := 0
	for key := range client {
		if strings.HasPrefix(key, nss[twoWrite]+"/") {
			count++
		}
	}
	fmt.Fprintf(&t, "create -> IP, step by step: %d sequential creates per arm (after 5 warm-up), one arm after the other,\n", count)
	fmt.Fprintf(&t, "one CCM (shipped defaults but --v=2, for its log lines), a control plane of its own with the audit log on.\n")
	fmt.Fprintf(&t, "Sources: client clock (Create sent/returned, watch event with the IP), audit log (each write received/done),\n")
	fmt.Fprintf(&t, "CCM log (\"Ensuring load balancer\" = sync start, \"Patching status\"). One host, one clock. p50 / p90 in ms.\n\n")
	fmt.Fprintf(&t, "  %-52s %17s %17s\n", "step", "two-write", "one-write")
	for _, st := range steps {
		cells := make([]string, 0, 2)
		for _, arm := range []string{twoWrite, oneWrite} {
			var ds []time.Duration
			for key, c := range client {
				if !strings.HasPrefix(key, nss[arm]+"/") {
					continue
				}
				s := server[key]
				if s == nil {
					continue
				}
				if d, ok := st.f(c, s); ok {
					ds = append(ds, d)
				}
			}
			if len(ds) == 0 {
				cells = append(cells, "-")
				continue
			}
			slices.Sort(ds)
			cells = append(cells, fmt.Sprintf("%6.2f / %6.2f", benchutil.Millis(benchutil.Percentile(ds, 50)), benchutil.Millis(benchutil.Percentile(ds, 90))))
		}
		fmt.Fprintf(&t, "  %-52s %17s %17s\n", st.label, cells[0], cells[1])
	}
	fmt.Fprintf(&t, "\nservice workqueue (CCM metrics, mean per item over the arm):\n")
	for _, arm := range []string{twoWrite, oneWrite} {
		q := queue[arm]
		if q.queueCount == 0 || q.workCount == 0 {
			continue
		}
		fmt.Fprintf(&t, "  %-22s waiting in the queue %.2f ms, sync (work) %.2f ms, %.0f items\n",
			arm, 1000*q.queueSum/q.queueCount, 1000*q.workSum/q.workCount, q.workCount)
	}
	writes := map[string][]int{}
	for key := range client {
		arm := twoWrite
		if strings.HasPrefix(key, nss[oneWrite]+"/") {
			arm = oneWrite
		}
		if s := server[key]; s != nil {
			writes[arm] = append(writes[arm], len(s.patches))
		}
	}
	for _, arm := range []string{twoWrite, oneWrite} {
		ws := writes[arm]
		slices.Sort(ws)
		if len(ws) > 0 {
			fmt.Fprintf(&t, "CCM writes to each Service (audit, status subresource), %s: min %d, max %d\n", arm, ws[0], ws[len(ws)-1])
		}
	}
	return t.String()
}
