package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KubernetesVersion is the release of the control-plane binaries the tests
// run. It must equal K8S_VERSION in test/tools/build.sh; a test checks that.
const KubernetesVersion = "v1.37.2"

// ToolsDirEnv names the environment variable that, when set, points straight
// at a directory holding the binaries (etcd, kube-apiserver,
// kube-controller-manager, kubectl), bypassing the repository lookup.
const ToolsDirEnv = "BAREMETAL_TOOLS_DIR"

// modulePath identifies the repository root: the directory whose go.mod
// declares exactly this module (test/tools has its own, longer, path).
const modulePath = "github.com/cloud-provider-baremetal/cloud-provider-baremetal"

// Binary names inside the tools directory.
const (
	EtcdBinary              = "etcd"
	APIServerBinary         = "kube-apiserver"
	ControllerManagerBinary = "kube-controller-manager"
	KubectlBinary           = "kubectl"
)

// ToolsDir returns the directory holding the control-plane binaries:
// $BAREMETAL_TOOLS_DIR if set, else _output/tools/<KubernetesVersion> under
// the repository root. It does not check that the binaries exist.
func ToolsDir() (string, error) {
	if d := os.Getenv(ToolsDirEnv); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "_output", "tools", KubernetesVersion), nil
}

// RepoRoot finds the repository root by walking up from the working
// directory (go test runs in the package directory) and, failing that, from
// this source file, to the directory whose go.mod declares the main module.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	// Empty or relative under -trimpath; then only the working directory helps.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isRepoRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no go.mod for module %s above %v; set %s to the directory with the control-plane binaries", modulePath, starts, ToolsDirEnv)
}

func isRepoRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

// checkTools verifies that every binary the caller needs is an executable
// file in dir, and otherwise explains how to build them.
func checkTools(dir string, names ...string) error {
	var missing []string
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return errors.New("control-plane binaries missing from " + dir + ": " + strings.Join(missing, ", ") +
		"; run `make tools` (or test/tools/build.sh) at the repository root, or set " + ToolsDirEnv)
}
