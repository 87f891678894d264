package layer2

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// BenchmarkMemory5000 is BenchmarkScale5000's scenario (three announcers,
// 5,000 layer2 Services with one IPv6 address each, created while they
// run) seen from the memory side: each announcer's RSS (anon and file
// parts), peak RSS and Go heap, once everything is announced and after a
// quiet 30 s, with the environment the shipped DaemonSet sets (its
// GOMEMLIMIT).
//
// It records one section of bench/results/layer2-memory.txt, named by
// $L2MEM_LABEL ("after" by default), and keeps the other sections, so that
// a run of an older binary (BAREMETAL_ANNOUNCER=..., L2MEM_LABEL=before,
// L2MEM_ENV=none) sits next to this tree's. L2MEM_ENV=none runs without
// the DaemonSet's environment.
func BenchmarkMemory5000(b *testing.B) {
	const n = 5000
	label := os.Getenv("L2MEM_LABEL")
	if label == "" {
		label = "after"
	}
	env := map[string]string{}
	if os.Getenv("L2MEM_ENV") != "none" {
		var err error
		if env, err = daemonSetEnv(); err != nil {
			b.Fatal(err)
		}
	}
	// The announcers inherit the test's environment.
	for k, v := range env {
		b.Setenv(k, v)
	}
	tb := benchTestbed(b, true)
	time.Sleep(10 * time.Second)
	idle := tb.memUsages(b)

	b.ResetTimer()
	start := time.Now()
	tb.createScale(scaleIPs(n))
	tb.waitAnnounced(n, 5*time.Minute)
	announced := time.Since(start)
	b.StopTimer()
	loaded := tb.memUsages(b)
	time.Sleep(30 * time.Second)
	after := tb.memUsages(b)

	bin := announcerBinary()
	var text strings.Builder
	fmt.Fprintf(&text, "## %s\n\n", label)
	fmt.Fprintf(&text, "binary: %s\n", describeBinary(bin))
	fmt.Fprintf(&text, "environment: %s\n", describeEnv(env))
	fmt.Fprintf(&text, "%d Services announced %.1f s after the first create\n\n", n, announced.Seconds())
	fmt.Fprintf(&text, "  %-6s %9s %10s %9s %9s %10s %10s %11s %10s %10s\n",
		"node", "idle RSS", "loaded RSS", "(anon)", "(file)", "RSS +30 s", "peak HWM", "heap loaded", "heap +30 s", "CPU 30 s")
	worst := memUsage{}
	for _, h := range tb.Lab.Nodes() {
		i, l, a := idle[h.Name()], loaded[h.Name()], after[h.Name()]
		fmt.Fprintf(&text, "  %-6s %5.1f MiB %6.1f MiB %5.1f MiB %5.1f MiB %6.1f MiB %6.1f MiB %7.1f MiB %6.1f MiB %8.2f s\n",
			h.Name(), mib(i.rssKB), mib(l.rssKB), mib(l.anonKB), mib(l.fileKB), mib(a.rssKB), mib(a.hwmKB),
			l.heap/(1<<20), a.heap/(1<<20), (a.cpu - l.cpu).Seconds())
		worst.rssKB, worst.hwmKB = max(worst.rssKB, l.rssKB, a.rssKB), max(worst.hwmKB, a.hwmKB)
		worst.heap = max(worst.heap, l.heap, a.heap)
	}
	fmt.Fprintf(&text, "\n  worst RSS %.1f MiB, worst peak %.1f MiB, worst heap in use %.1f MiB\n\n",
		mib(worst.rssKB), mib(worst.hwmKB), worst.heap/(1<<20))
	b.ReportMetric(mib(worst.rssKB), "rss-MiB")
	b.ReportMetric(mib(worst.hwmKB), "hwm-MiB")
	b.ReportMetric(worst.heap/(1<<20), "heap-MiB")
	writeMemorySection(b, label, text.String())
}

// memUsage is usage plus the Go heap in use.
type memUsage struct {
	usage
	heap float64
}

// memUsages reads every announcer's memory, CPU time and Go heap in use.
func (tb *testbed) memUsages(b *testing.B) map[string]memUsage {
	b.Helper()
	out := map[string]memUsage{}
	for name, u := range tb.usages(b) {
		m := memUsage{usage: u}
		body, err := tb.Scrape(tb.Lab.Host(name), "/metrics", 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
				m.heap, _ = strconv.ParseFloat(v, 64)
			}
		}
		out[name] = m
	}
	return out
}

// daemonSetEnv returns the environment the shipped DaemonSet gives the
// announcer container that a process outside Kubernetes can have: literal
// values and resourceFieldRef ones (computed from the container's
// resources, in bytes as the downward API gives them).
func daemonSetEnv() (map[string]string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	manifest := filepath.Join(root, "deploy", "base", "announcer-daemonset.yaml")
	data, err := os.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	var ds appsv1.DaemonSet
	if err := yaml.Unmarshal(data, &ds); err != nil {
		return nil, fmt.Errorf("%s: %w", manifest, err)
	}
	env := map[string]string{}
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != "announcer" {
			continue
		}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				env[e.Name] = e.Value
			case e.ValueFrom.ResourceFieldRef != nil:
				ref := e.ValueFrom.ResourceFieldRef
				var q resource.Quantity
				switch ref.Resource {
				case "requests.memory":
					q = c.Resources.Requests[corev1.ResourceMemory]
				case "limits.memory":
					q = c.Resources.Limits[corev1.ResourceMemory]
				default:
					return nil, fmt.Errorf("%s: env %s: resource %q not handled here", manifest, e.Name, ref.Resource)
				}
				divisor := int64(1)
				if !ref.Divisor.IsZero() {
					divisor = ref.Divisor.Value()
				}
				env[e.Name] = strconv.FormatInt(q.Value()/divisor, 10)
			}
		}
	}
	return env, nil
}

// announcerBinary is the binary the announcers run.
func announcerBinary() string {
	if p := os.Getenv("BAREMETAL_ANNOUNCER"); p != "" {
		return p
	}
	return "built by the test (go build -trimpath)"
}

// describeBinary gives a binary's size and whether it has a symbol table.
func describeBinary(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return path
	}
	stripped := "not stripped"
	if f, err := elf.Open(path); err == nil {
		if f.Section(".symtab") == nil && f.Section(".debug_info") == nil {
			stripped = "stripped (-s -w)"
		}
		f.Close()
	}
	return fmt.Sprintf("%s, %.1f MB, %s", path, float64(st.Size())/1e6, stripped)
}

func describeEnv(env map[string]string) string {
	if len(env) == 0 {
		return "none set (Go defaults: GOGC=100, no memory limit)"
	}
	var parts []string
	for k, v := range env {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ") + " (from deploy/base/announcer-daemonset.yaml)"
}

// writeMemorySection replaces (or appends) the section "## label" of
// bench/results/layer2-memory.txt and prints it.
func writeMemorySection(b *testing.B, label, section string) {
	b.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(root, "bench", "results", "layer2-memory.txt")
	old, _ := os.ReadFile(path)
	host, _ := os.Hostname()
	header := fmt.Sprintf("# layer2-memory: BenchmarkMemory5000 (test/e2e/layer2), one section per binary/environment\n"+
		"# 5,000 layer2 Services with one IPv6 address each, three announcers, --v=0, control plane %s\n"+
		"# RSS is VmRSS, anon/file its RssAnon/RssFile, peak is VmHWM (/proc/<pid>/status); heap is\n"+
		"# go_memstats_heap_inuse_bytes; CPU 30 s is utime+stime over the quiet 30 s. MetalLB speaker: %d-%d MB.\n\n",
		controlplane.KubernetesVersion, metallbRSSLowMB, metallbRSSHiMB)
	section = fmt.Sprintf("%smeasured %s on %s, load average at start %s\n\n",
		section, time.Now().UTC().Format(time.RFC3339), host, loadAtStart)
	sections := map[string]string{}
	var order []string
	body := string(old)
	if i := strings.Index(body, "## "); i >= 0 {
		body = body[i:]
	} else {
		body = ""
	}
	for _, s := range strings.SplitAfter(body, "\n## ") {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "## "), "\n## ")
		if s == "" {
			continue
		}
		name, _, _ := strings.Cut(s, "\n")
		sections[name] = "## " + strings.TrimRight(s, "\n") + "\n\n"
		order = append(order, name)
	}
	if _, ok := sections[label]; !ok {
		order = append(order, label)
	}
	sections[label] = section
	var out strings.Builder
	out.WriteString(header)
	for _, name := range order {
		out.WriteString(sections[name])
	}
	fmt.Print(section)
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}
