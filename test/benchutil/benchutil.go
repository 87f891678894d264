// Package benchutil holds what the benchmarks of test/integration and
// test/e2e share: nearest-rank percentiles of latencies, and the result
// files under bench/results with a header saying when, where and under
// which load they were measured, so that figures from different runs and
// machines can be told apart.
package benchutil

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// RepsEnv, a number, is how many times the benchmarks that compare
// settings or arms run each of them, round-robin, to compare medians. One
// run each (the default, to keep `make bench` short) is noisier on a
// shared machine than the differences it looks for: repeat before acting
// on one.
const RepsEnv = "BAREMETAL_BENCH_REPS"

// Reps is the number in RepsEnv, or 1.
func Reps() int {
	n, err := strconv.Atoi(os.Getenv(RepsEnv))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds,
// which need not be sorted; 0 when ds is empty. Nearest rank always
// answers one of the samples, as a reader of the result expects.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (len(s)*p + 99) / 100 // ceil(len*p/100) in integers
	return s[min(max(rank, 1), len(s))-1]
}

// Millis is d in milliseconds, the unit of every result table.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// LoadAvg is the 1, 5 and 15 minute load average, or "unknown".
func LoadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// WriteResult stores text as bench/results/<name>.txt under a header that
// names the benchmark, the time, the host, the load average (load says
// when it was read, as in "at start 1.00 0.80 0.50") and the setup after
// the control plane's version, and returns the file's content.
func WriteResult(b testing.TB, name, load, setup, text string) string {
	b.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	host, _ := os.Hostname()
	content := fmt.Sprintf("# %s: %s\n# measured %s on %s, load average %s\n# control plane %s, %s\n\n",
		name, b.Name(), time.Now().UTC().Format(time.RFC3339), host, load, controlplane.KubernetesVersion, setup) + text
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
	return content
}
