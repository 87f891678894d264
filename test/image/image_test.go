package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/privileges"
)

func TestMain(m *testing.M) {
	// Started again as a container's runner (see Container)?
	RunIfContainer()
	os.Exit(m.Run())
}

// TestImageContents: each image is an OCI image index with a linux/amd64
// image (and linux/arm64 from make image) whose entrypoint is a static
// binary, which runs as uid 65532 unless the manifest says otherwise, and
// whose every timestamp is the commit's, with sorted, root-owned tar
// entries: what makes the digest depend on the commit alone.
func TestImageContents(t *testing.T) {
	im := ForTest(t)
	epoch := im.Epoch(t)
	for _, w := range Workloads {
		t.Run(w.Image, func(t *testing.T) {
			l := im.Layout(w.Image)
			top, err := l.Top()
			if err != nil {
				t.Fatal(err)
			}
			if top.MediaType != MediaTypeIndex || top.Annotations["org.opencontainers.image.ref.name"] == "" {
				t.Errorf("index.json names %+v, want an image index with a ref.name", top)
			}
			idx, err := l.Index()
			if err != nil {
				t.Fatal(err)
			}
			if got := idx.Annotations["org.opencontainers.image.revision"]; got != im.Commit {
				t.Errorf("index revision %q, want %s", got, im.Commit)
			}
			var platforms []string
			for _, d := range idx.Manifests {
				platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
				img, err := l.Image(d.Platform.OS, d.Platform.Architecture)
				if err != nil {
					t.Fatal(err)
				}
				checkImage(t, w.Image, img, im.Commit, epoch)
			}
			if !slices.Contains(platforms, "linux/amd64") || (im.Reused && !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"})) {
				t.Errorf("platforms %q, want linux/amd64 (and linux/arm64 from make image)", platforms)
			}
			checkManifest(t, im.Root, w.Image, w.Manifest, w.Container, l)
		})
	}
}

// checkImage checks one platform's image of name.
func checkImage(t *testing.T, name string, img *Image, commit string, epoch time.Time) {
	t.Helper()
	p := img.Descriptor.Platform
	cfg := img.Config
	if img.Manifest.MediaType != MediaTypeManifest {
		t.Errorf("%s: manifest media type %q", p.Architecture, img.Manifest.MediaType)
	}
	wantVariant := map[string]string{"arm64": "v8"}[p.Architecture]
	if cfg.OS != "linux" || cfg.Architecture != p.Architecture || cfg.Variant != wantVariant || p.Variant != wantVariant {
		t.Errorf("%s: config says %s/%s/%s, index %s/%s/%s", p.Architecture, cfg.OS, cfg.Architecture, cfg.Variant, p.OS, p.Architecture, p.Variant)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("%s: User %q, want 65532:65532 (distroless nonroot)", p.Architecture, cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/" + name}) || len(cfg.Config.Cmd) != 0 {
		t.Errorf("%s: Entrypoint %q Cmd %q, want [/%s] and no Cmd", p.Architecture, cfg.Config.Entrypoint, cfg.Config.Cmd, name)
	}
	if cfg.Config.Labels["org.opencontainers.image.revision"] != commit {
		t.Errorf("%s: revision label %q, want %s", p.Architecture, cfg.Config.Labels["org.opencontainers.image.revision"], commit)
	}
	if !cfg.Created.Equal(epoch) {
		t.Errorf("%s: created %v, want the commit's time %v", p.Architecture, cfg.Created, epoch)
	}
	for i, h := range cfg.History {
		if !h.Created.Equal(epoch) {
			t.Errorf("%s: history[%d] created %v, want %v", p.Architecture, i, h.Created, epoch)
		}
	}
	if len(img.Manifest.Layers) != 2 || len(cfg.History) != 2 {
		t.Fatalf("%s: %d layers, %d history entries; want 2 (base files, binary)", p.Architecture, len(img.Manifest.Layers), len(cfg.History))
	}
	files := map[string]Entry{}
	for i := range img.Manifest.Layers {
		entries, err := img.Layer(i)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range entries {
			h := e.Header
			files[h.Name] = e
			if j > 0 && entries[j-1].Header.Name >= h.Name {
				t.Errorf("%s: layer %d: %q after %q, want sorted entries", p.Architecture, i, h.Name, entries[j-1].Header.Name)
			}
			if !h.ModTime.Equal(epoch) {
				t.Errorf("%s: layer %d: %s dated %v, want %v", p.Architecture, i, h.Name, h.ModTime, epoch)
			}
			wantID := 0
			if h.Name == "home/nonroot/" {
				wantID = 65532
			}
			if h.Uid != wantID || h.Gid != wantID || h.Uname != "" || h.Gname != "" {
				t.Errorf("%s: layer %d: %s owned by %d:%d (%q:%q), want %d:%d by number", p.Architecture, i, h.Name, h.Uid, h.Gid, h.Uname, h.Gname, wantID, wantID)
			}
			if h.Mode&0o6000 != 0 {
				t.Errorf("%s: layer %d: %s is set-id (mode %o)", p.Architecture, i, h.Name, h.Mode)
			}
		}
	}
	if e, ok := files["etc/passwd"]; !ok || !bytes.Contains(e.Data, []byte("\nnonroot:x:65532:65532:")) {
		t.Errorf("%s: /etc/passwd has no nonroot user 65532", p.Architecture)
	}
	bin, ok := files[name]
	if !ok {
		t.Fatalf("%s: no /%s in the image", p.Architecture, name)
	}
	if bin.Header.Mode != 0o755 {
		t.Errorf("%s: /%s mode %o, want 755", p.Architecture, name, bin.Header.Mode)
	}
	checkStatic(t, p.Architecture, bin.Data)
}

// checkStatic: the binary is an ELF for arch with no interpreter and no
// shared libraries, so it runs on an image without libc.
func checkStatic(t *testing.T, arch string, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: binary: %v", arch, err)
	}
	defer f.Close()
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != want {
		t.Errorf("%s: ELF machine %v, want %v", arch, f.Machine, want)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: binary has a %v segment: not static", arch, prog.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: binary needs %q: not static", arch, libs)
	}
}

// checkManifest: deploy/base runs the image as the image says: the same
// image name, the image's entrypoint, and for a non-root user the image's
// user.
func checkManifest(t *testing.T, root, name, manifest, container string, l Layout) {
	t.Helper()
	path := filepath.Join(root, "deploy", "base", manifest)
	c, err := WorkloadContainer(path, container)
	if err != nil {
		t.Fatal(err)
	}
	img, err := l.Image("linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if c.Image != name {
		t.Errorf("%s: container %s runs image %q, want %q", manifest, container, c.Image, name)
	}
	if len(c.Command) > 0 && c.Command[0] != img.Config.Config.Entrypoint[0] {
		t.Errorf("%s: command %q, but the image's entrypoint is %q", manifest, c.Command[0], img.Config.Config.Entrypoint)
	}
	p, err := privileges.FromManifest(path, container)
	if err != nil {
		t.Fatal(err)
	}
	if user := fmt.Sprintf("%d:%d", p.UID, p.GID); p.UID != 0 && user != img.Config.Config.User {
		t.Errorf("%s: runs as %s, the image as %s", manifest, user, img.Config.Config.User)
	}
}

// TestReproducible: building the same commit again, with another umask,
// another temporary directory and minutes later, gives the same image
// digests, byte for byte the same archives.
func TestReproducible(t *testing.T) {
	im := ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	out := filepath.Join(t.TempDir(), "images")
	log, err := im.Builder.Build(ctx, im.Commit, "linux/amd64", out, []string{"TMPDIR=" + t.TempDir()}, "umask 077")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second build:\n%s", log)
	for _, w := range Workloads {
		first, err := im.Layout(w.Image).Image("linux", "amd64")
		if err != nil {
			t.Fatal(err)
		}
		second, err := Layout{Dir: filepath.Join(out, w.Image)}.Image("linux", "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if first.Descriptor.Digest != second.Descriptor.Digest {
			t.Errorf("%s linux/amd64: %s, then %s\nconfig %s vs %s\nlayers %v vs %v", w.Image,
				first.Descriptor.Digest, second.Descriptor.Digest,
				first.Manifest.Config.Digest, second.Manifest.Config.Digest,
				first.Manifest.Layers, second.Manifest.Layers)
			continue
		}
		t.Logf("%s linux/amd64: %s twice", w.Image, first.Descriptor.Digest)
		if im.Reused {
			// make image's index has arm64 too; only amd64 was
			// rebuilt.
			continue
		}
		d1, _ := Digest(im.Out, w.Image)
		d2, _ := Digest(out, w.Image)
		if d1 != d2 || d1 == "" {
			t.Errorf("%s index: %q, then %q", w.Image, d1, d2)
		}
		if s1, s2 := fileSum(t, filepath.Join(im.Out, w.Image+".oci.tar")), fileSum(t, filepath.Join(out, w.Image+".oci.tar")); s1 != s2 {
			t.Errorf("%s.oci.tar: sha256 %s, then %s", w.Image, s1, s2)
		}
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestEntrypointsRun runs each image's entrypoint from its unpacked root
// filesystem in a lab node's network namespace, with the user,
// capabilities and read-only root its manifest asks for: the
// cloud-controller-manager as uid 65532 with no capability prints its
// version, the announcer as uid 0 with only NET_RAW its help.
func TestEntrypointsRun(t *testing.T) {
	im := ForTest(t)
	l := lab.NewForTest(t, lab.Options{Nodes: 1})
	idx, err := im.Layout(Workloads[0].Image).Index()
	if err != nil {
		t.Fatal(err)
	}
	version := idx.Annotations["org.opencontainers.image.version"]
	tests := []struct {
		w          Workload
		flag, want string
	}{
		{Workloads[0], "--version", "Kubernetes " + version},
		{Workloads[1], "--help", "baremetal-announcer runs on every node"},
	}
	for _, tt := range tests {
		t.Run(tt.w.Image, func(t *testing.T) {
			// Generous: a loaded machine takes minutes to start a process.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			root, img := im.Rootfs(t, tt.w.Image)
			c := im.Container(t, tt.w, root, img, append(slices.Clone(img.Config.Config.Entrypoint), tt.flag), nil)
			t.Logf("running %q as %+v, read-only root %v", c.Argv, c.Privileges, c.ReadOnlyRoot)
			p := Start(t, ctx, l.Node(1), tt.w.Image, c)
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("%s %s: %v\n%s", tt.w.Image, tt.flag, err, p.Log())
			}
			if out := p.Log(); !strings.Contains(out, tt.want) {
				t.Errorf("%s %s printed no %q:\n%s", tt.w.Image, tt.flag, tt.want, out)
			}
		})
	}
}
