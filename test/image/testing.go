package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/privileges"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// Workload is an image and the manifest in deploy/base, and its
// container, that runs it.
type Workload struct {
	Image, Manifest, Container string
}

// Workloads are the shipped images.
var Workloads = []Workload{
	{"baremetal-cloud-controller-manager", "ccm-deployment.yaml", "cloud-controller-manager"},
	{"baremetal-announcer", "announcer-daemonset.yaml", "announcer"},
}

// Images are the images under test: those of one commit.
type Images struct {
	// Root is the repository root.
	Root    string
	Builder *Builder
	Commit  string
	// Out holds an <image>/ layout per image; built here, it has
	// linux/amd64 only.
	Out string
	// Reused is true for BAREMETAL_IMAGES (make image's output, both
	// platforms).
	Reused bool
}

var (
	imagesOnce sync.Once
	imagesVal  *Images
	imagesErr  error
)

// BuildTimeout bounds one build: cross-compiling both binaries with a
// cold build cache takes many minutes on a busy 2-core machine.
const BuildTimeout = 30 * time.Minute

// ForTest returns the images under test, building them at the first call
// of the test binary (or reusing BAREMETAL_IMAGES, or those built for
// this commit by this builder before, in _output/image-test/). It skips with -short.
func ForTest(t testing.TB) *Images {
	t.Helper()
	if testing.Short() {
		t.Skip("builds container images; skipped with -short")
	}
	imagesOnce.Do(func() { imagesVal, imagesErr = build() })
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return imagesVal
}

func build() (*Images, error) {
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	cache := filepath.Join(root, "_output", "image-test")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	// go test runs packages in parallel, and two of them use the images:
	// one builds, the other waits and reuses them.
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	im := &Images{Root: root}
	if im.Builder, err = NewBuilder(ctx, root, cache); err != nil {
		return nil, err
	}
	if dir := os.Getenv("BAREMETAL_IMAGES"); dir != "" {
		im.Out, im.Reused = dir, true
		idx, err := Layout{Dir: filepath.Join(dir, Workloads[0].Image)}.Index()
		if err != nil {
			return nil, fmt.Errorf("BAREMETAL_IMAGES=%s: %w", dir, err)
		}
		im.Commit = idx.Annotations["org.opencontainers.image.revision"]
		return im, nil
	}
	if im.Commit, err = HeadCommit(ctx, root); err != nil {
		return nil, err
	}
	// Keyed by the builder too: a changed builder makes other images.
	key, err := fileKey(im.Builder.Path)
	if err != nil {
		return nil, err
	}
	im.Out = filepath.Join(cache, im.Commit+"-"+key)
	complete := true
	for _, w := range Workloads {
		// The digest file is written last.
		if _, err := Digest(im.Out, w.Image); err != nil {
			complete = false
		}
	}
	if complete {
		return im, nil
	}
	// Only the newest images are kept.
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if e.IsDir() && cacheRE.MatchString(e.Name()) && e.Name() != filepath.Base(im.Out) {
			_ = os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
	if err := os.RemoveAll(im.Out); err != nil {
		return nil, err
	}
	if _, err := im.Builder.Build(ctx, im.Commit, "linux/amd64", im.Out, nil, ""); err != nil {
		return nil, err
	}
	return im, nil
}

var cacheRE = regexp.MustCompile(`^[0-9a-f]{40}-[0-9a-f]{12}$`)

// fileKey is the start of the file's SHA-256, in hex.
func fileKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6]), nil
}

// Layout is the OCI layout of image name.
func (im *Images) Layout(name string) Layout { return Layout{Dir: filepath.Join(im.Out, name)} }

// Epoch is the time the images must record: SOURCE_DATE_EPOCH if set,
// else the commit's time.
func (im *Images) Epoch(t testing.TB) time.Time {
	t.Helper()
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		out, err := exec.Command("git", "-C", im.Root, "show", "-s", "--format=%ct", im.Commit).Output()
		if err != nil {
			t.Fatalf("git show %s: %v", im.Commit, err)
		}
		v = strings.TrimSpace(string(out))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(n, 0).UTC()
}

// Rootfs unpacks the linux/amd64 image of name into a new directory,
// with the mount points a runtime adds, and returns the directory and
// the image.
func (im *Images) Rootfs(t testing.TB, name string) (string, *Image) {
	t.Helper()
	img, err := im.Layout(name).Image("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := img.Unpack(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, img
}

// Container returns the Container that runs w's image, unpacked at root,
// as deploy/base's manifest runs it: its command (or the image's
// entrypoint) and arguments, or argv instead when given; the image's
// environment plus env; the manifest's user, capabilities and read-only
// root.
func (im *Images) Container(t testing.TB, w Workload, root string, img *Image, argv, env []string) Container {
	t.Helper()
	path := filepath.Join(im.Root, "deploy", "base", w.Manifest)
	c, err := WorkloadContainer(path, w.Container)
	if err != nil {
		t.Fatal(err)
	}
	p, err := privileges.FromManifest(path, w.Container)
	if err != nil {
		t.Fatal(err)
	}
	if argv == nil {
		argv = slices.Clone(img.Config.Config.Entrypoint)
		if len(c.Command) > 0 {
			argv = slices.Clone(c.Command)
		}
		argv = append(argv, c.Args...)
	}
	return Container{
		Root:         root,
		Argv:         argv,
		Env:          append(slices.Clone(img.Config.Config.Env), env...),
		Privileges:   p,
		ReadOnlyRoot: c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem,
	}
}

// Start runs c in h's namespace; the test's cleanup stops it.
func Start(t testing.TB, ctx context.Context, h *lab.Host, name string, c Container) *process.Process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env, err := c.EnvEntry()
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(ctx, process.Spec{Name: name, Path: self, Env: []string{env}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	return p
}
