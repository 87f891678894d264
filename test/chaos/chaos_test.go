package chaos

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/benchutil"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// The environment of a run.
const (
	// SeedEnv replays a run: the seed fixes every operation, its target and
	// its arguments, and where the faults fall. Timing is the machine's.
	SeedEnv = "CHAOS_SEED"
	// ProfileEnv is short (the default, in `make test`) or soak.
	ProfileEnv = "CHAOS_PROFILE"
	// BinaryEnv runs another CCM build, e.g. one from before a fix.
	BinaryEnv = "CHAOS_CCM_BINARY"
	// ResultsEnv names a file the summary is written to (make soak and
	// bench/run.sh set it; `make test` does not, so tests never write into
	// the repository).
	ResultsEnv = "CHAOS_RESULTS"
)

// TestChaos drives the real CCM binary, two replicas with leader election,
// against a real kube-apiserver and etcd with random operations and faults
// drawn from a seed, and checks the invariants of issue 9 throughout and
// after quiescence: no address shown twice, none given that no pool
// allowed, none moved or dropped unless the Service's own spec asked, no
// deleted Service left behind, the allocator agreeing with status, and no
// Service waiting while a free address could serve it.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite against a real apiserver; skipped with -short")
	}
	prof, err := profileByName(os.Getenv(ProfileEnv))
	if err != nil {
		t.Fatal(err)
	}
	seed := drawSeed(t)
	t.Logf("chaos: seed %d (replay with %s=%d %s=%s)", seed, SeedEnv, seed, ProfileEnv, prof.Name)
	if b := os.Getenv(BinaryEnv); b != "" {
		t.Setenv(ccm.BinaryEnv, b)
	}
	bin, err := ccm.Binary()
	if err != nil {
		t.Fatal(err)
	}

	wallStart := time.Now()
	budget := 20 * time.Minute
	if prof.Name == "soak" {
		budget = 4 * time.Hour
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()

	cp := controlplane.StartForTest(t, controlplane.Options{
		// Dual-stack, so that ipFamilyPolicy edits mean something; a /16
		// IPv4 service range for the soak's 5,000 ClusterIPs.
		DualStack:     true,
		APIServerArgs: []string{"--service-cluster-ip-range=10.0.0.0/16," + controlplane.ServiceCIDRv6},
	})
	cfg := cp.AdminConfig()
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := "chaos-" + strconv.FormatUint(seed%1_000_000, 10)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	log := newOpLog()
	configs := &configHistory{}
	r := &run{
		t: t, ctx: ctx, prof: prof, seed: seed, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		cs: cs, ns: ns, configs: configs, log: log,
		cfg: prof.initialConfig(), fileValid: true, lastConfigWrite: time.Now(),
		ops: map[string]int{}, rejected: map[string]int{}, faults: map[string]int{}, edits: map[string]int{},
	}
	configs.add(r.cfg)
	r.obs = newObserver(configs, log.Len)
	r.startInformer()
	r.reps = startReplicas(t, cp, cs, r.cfg.render(), r.ensureValidFile, func(format string, args ...any) { t.Logf("chaos: "+format, args...) })

	r.populate()
	r.drive()
	settle := 3 * time.Minute
	if prof.Name == "soak" {
		settle = 15 * time.Minute
	}
	r.quiesce(settle)

	summary := r.summary(bin, time.Since(wallStart))
	t.Logf("chaos summary:\n%s", summary)
	dir := ccm.LogDir(t)
	if f, err := os.Create(filepath.Join(dir, "operations.log")); err == nil {
		_, _ = log.WriteTo(f)
		_ = f.Close()
	}
	if out := os.Getenv(ResultsEnv); out != "" {
		if err := os.WriteFile(out, []byte(resultsHeader()+summary), 0o644); err != nil {
			t.Errorf("writing %s: %v", out, err)
		}
	}
	vs, byKind := r.obs.Violations()
	if n := sum(byKind); n > 0 {
		t.Errorf("%d invariant violations (seed %d); last operations:\n%s", n, seed, log.Tail(40))
		for i, v := range vs {
			if i == 10 {
				break
			}
			t.Errorf("%s\n  operations before it:\n%s", v, indent(log.Around(v.Op, 8)))
		}
		t.Logf("full operation log: %s", filepath.Join(dir, "operations.log"))
	}
}

// drawSeed returns $CHAOS_SEED, or a fresh random seed.
func drawSeed(t *testing.T) uint64 {
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		return v
	}
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	// Short enough to type.
	return binary.LittleEndian.Uint64(b[:]) % 1_000_000_000
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

// resultsHeader says when and on what a results file was made, as
// bench/run.sh does for the benchmarks.
func resultsHeader() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# chaos suite (test/chaos), written by TestChaos\n")
	fmt.Fprintf(&b, "# date:   %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# go:     %s, nproc %d\n", runtime.Version(), runtime.NumCPU())
	if root, err := controlplane.RepoRoot(); err == nil {
		commit := "unknown"
		if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
			commit = strings.TrimSpace(string(out))
		}
		if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			commit += " (with uncommitted changes)"
		}
		fmt.Fprintf(&b, "# commit: %s\n", commit)
	}
	fmt.Fprintf(&b, "# load:   %s (1, 5, 15 min, at the end; the machine is shared)\n", benchutil.LoadAvg())
	return b.String()
}
