package ccm

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

// BinaryEnv, when set, names the CCM binary to run instead of the one in bin/.
const BinaryEnv = "BAREMETAL_CCM_BINARY"

// KeepLogsEnv, when set to a non-empty value, keeps the log directory of
// passing tests too.
const KeepLogsEnv = "BAREMETAL_KEEP_TEST_LOGS"

const binaryName = "baremetal-cloud-controller-manager"

// sourceDirs are the folders the binary is built from, for the staleness
// check.
var sourceDirs = []string{"cmd", "provider", "loadbalancer", "config"}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the CCM binary to run: $BAREMETAL_CCM_BINARY, else
// bin/baremetal-cloud-controller-manager at the repository root. That one is
// built (as `make build` does) if it is missing or older than a source file
// of the product, so a test never silently runs yesterday's code. The build
// goes to a temporary name and is renamed into place, so test packages
// running in parallel never see a half-written binary.
func Binary() (string, error) {
	binaryOnce.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			binaryPath, binaryErr = filepath.Abs(p)
			return
		}
		root, err := controlplane.RepoRoot()
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(root, "bin", binaryName)
		if !stale(root, binaryPath) {
			return
		}
		tmp := fmt.Sprintf("%s.%d.tmp", binaryPath, os.Getpid())
		cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, "./cmd/"+binaryName)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.Remove(tmp)
			binaryErr = fmt.Errorf("building %s: %v\n%s", binaryName, err, out)
			return
		}
		binaryErr = os.Rename(tmp, binaryPath)
	})
	return binaryPath, binaryErr
}

// stale reports whether bin is missing or older than go.mod, go.sum or a
// non-test Go file of the product.
func stale(root, bin string) bool {
	st, err := os.Stat(bin)
	if err != nil {
		return true
	}
	built := st.ModTime()
	newer := func(path string) bool {
		s, err := os.Stat(path)
		return err == nil && s.ModTime().After(built)
	}
	if newer(filepath.Join(root, "go.mod")) || newer(filepath.Join(root, "go.sum")) {
		return true
	}
	found := false
	for _, d := range sourceDirs {
		_ = filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if found {
				return filepath.SkipAll
			}
			if err != nil {
				return filepath.SkipDir
			}
			if !e.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && newer(path) {
				found = true
			}
			return nil
		})
	}
	return found
}

var (
	deployMu   sync.Mutex
	deployDone = map[*controlplane.ControlPlane]bool{}
)

// ApplyDeploy applies deploy/base to cp with kubectl, as a user would
// (`kubectl apply --server-side -k deploy/base`), once per control plane.
// It brings the namespace, the ServiceAccount and its RBAC. The Deployment
// and DaemonSet in it never run: the test control plane has no scheduler
// and no kubelet.
func ApplyDeploy(ctx context.Context, cp *controlplane.ControlPlane) error {
	deployMu.Lock()
	defer deployMu.Unlock()
	if deployDone[cp] {
		return nil
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	if _, err := cp.Kubectl(ctx, "apply", "--server-side", "-k", filepath.Join(root, "deploy", "base")); err != nil {
		return fmt.Errorf("applying deploy/base: %w", err)
	}
	deployDone[cp] = true
	return nil
}

var (
	logDirMu sync.Mutex
	logDirs  = map[testing.TB]string{}
)

// LogDir returns the test's log directory (see the package comment),
// creating it empty on first use and registering its removal or report.
func LogDir(t testing.TB) string {
	t.Helper()
	logDirMu.Lock()
	defer logDirMu.Unlock()
	if d, ok := logDirs[t]; ok {
		return d
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pkg := "unknown"
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(root, wd); err == nil && !strings.HasPrefix(rel, "..") {
			pkg = rel
		}
	}
	dir := filepath.Join(root, "_output", "test-logs", pkg, sanitize(t.Name()))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logDirs[t] = dir
	t.Cleanup(func() {
		logDirMu.Lock()
		delete(logDirs, t)
		logDirMu.Unlock()
		if t.Failed() {
			reportLogs(t, dir)
			return
		}
		if os.Getenv(KeepLogsEnv) == "" {
			_ = os.RemoveAll(dir)
			// Drop parents the removal left empty, up to test-logs.
			for p := filepath.Dir(dir); strings.HasPrefix(p, filepath.Join(root, "_output", "test-logs")); p = filepath.Dir(p) {
				if os.Remove(p) != nil {
					break
				}
			}
		}
	})
	return dir
}

// reportLogs prints where a failed test's logs are kept and their tails.
func reportLogs(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(logs)
	t.Logf("CCM logs kept in %s", dir)
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		s := string(b)
		if len(s) > logTailBytes {
			s = s[len(s)-logTailBytes:]
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = "…\n" + s[i+1:]
			}
		}
		t.Logf("--- %s, last %d bytes:\n%s", l, logTailBytes, s)
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_', r == '/':
			return r
		}
		return '_'
	}, s)
}

// MetricValue returns the value of the series name{labels} in a Prometheus
// text exposition. Every label in labels must match; the series may have
// more.
func MetricValue(text, name string, labels map[string]string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch rest[0] {
		case '{':
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			lbls, rest = rest[1:end], rest[end+1:]
		case ' ':
		default:
			continue // a longer metric name with this prefix
		}
		if !hasLabels(lbls, labels) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		return strconv.ParseFloat(fields[0], 64)
	}
	return 0, fmt.Errorf("%s%v: %w", name, labels, errNotFound)
}

func hasLabels(s string, want map[string]string) bool {
	for k, v := range want {
		if !strings.Contains(s, k+`="`+v+`"`) {
			return false
		}
	}
	return true
}
