// Command image builds the container images of cloud-provider-baremetal
// without a Docker engine: one OCI image layout per binary
// (baremetal-cloud-controller-manager, baremetal-announcer), each a
// multi-arch index of linux/amd64 and linux/arm64, plus the same layout
// packed as a tar (an "oci-archive").
//
// It is its own Go module so that go-containerregistry never enters the
// product module's dependencies.
//
// The images are reproducible: the same commit gives the same digests on
// any machine with the same Go toolchain (pinned by -toolchain, fetched from
// the module proxy when the local go differs; this program should run on
// the same release, as go.mod's toolchain line asks, because it compresses
// the layers). To get there:
//
//   - the source is the commit itself (git archive), never the working
//     tree, so uncommitted files cannot leak in;
//   - go build runs with -trimpath, -buildvcs=false, CGO_ENABLED=0, the
//     GOAMD64/GOARM64 baseline and a cleared GOFLAGS, and the version is
//     stamped with -X from the commit alone;
//   - every timestamp (file mtimes in the layers, the config's created,
//     the history) is SOURCE_DATE_EPOCH, which defaults to the commit time;
//   - tar entries are sorted, owned by fixed ids with fixed modes and no
//     user or group names, and gzip headers carry no time or name.
//
// Usage, from the repository root (or `make image`):
//
//	go -C build/image run . -repo ../.. -out ../../_output/images
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// defaultToolchain is the Go release the images are built with; a
// different toolchain gives different binaries and so different digests.
const defaultToolchain = "go1.26.8"

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", ".", "Repository to build from (any directory inside it).")
	flag.StringVar(&o.commit, "commit", "HEAD", "Commit to build. The source is exported from git, so uncommitted changes are not in the images.")
	flag.BoolVar(&o.worktree, "worktree", false, "Build the working tree as it is instead of -commit (for development: the version gets -dirty and the digests are not reproducible).")
	flag.StringVar(&o.out, "out", "_output/images", "Output directory: <name>/ (OCI layout), <name>.oci.tar and <name>.digest per image.")
	flag.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "Comma-separated platforms of every image's index.")
	flag.StringVar(&o.cmds, "cmds", strings.Join(defaultCmds, ","), "Comma-separated commands under cmd/ to make images of.")
	flag.StringVar(&o.registry, "registry", "ghcr.io/cloud-provider-baremetal", "Registry and path the layouts name their images under (annotation only: it changes no digest).")
	flag.StringVar(&o.toolchain, "toolchain", defaultToolchain, "GOTOOLCHAIN for go build; empty means the local go.")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "image: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if runtime.Version() != defaultToolchain {
		// The layers are compressed by this program's compress/gzip.
		fmt.Fprintf(os.Stderr, "image: warning: running on %s, not %s: the layers' compression, and so the digests, may differ from other builds\n", runtime.Version(), defaultToolchain)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// defaultCmds are the shipped binaries, one image each.
var defaultCmds = []string{"baremetal-cloud-controller-manager", "baremetal-announcer"}

type options struct {
	repo, commit, out, platforms, cmds, registry, toolchain string
	worktree                                                bool
}

func run(ctx context.Context, o options) error {
	platforms, err := parsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	cmds := strings.Split(o.cmds, ",")
	for _, c := range cmds {
		if c == "" || strings.ContainsAny(c, "/\\.") {
			return fmt.Errorf("-cmds: %q is not a command name under cmd/", c)
		}
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "baremetal-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	src, err := resolveSource(ctx, o.repo, o.commit, o.worktree, filepath.Join(tmp, "src"))
	if err != nil {
		return err
	}
	fmt.Printf("source %s (version %s, SOURCE_DATE_EPOCH %d)\n", src.describe(), src.version, src.epoch.Unix())

	// binaries[platform][cmd] is the path of a built binary.
	binaries := map[platform]map[string]string{}
	for _, p := range platforms {
		dir := filepath.Join(tmp, "bin", p.OS+"_"+p.Arch)
		if err := compile(ctx, src, p, cmds, dir, o.toolchain); err != nil {
			return err
		}
		binaries[p] = map[string]string{}
		for _, c := range cmds {
			binaries[p][c] = filepath.Join(dir, c)
		}
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, c := range cmds {
		if err := ctx.Err(); err != nil {
			return err
		}
		bins := make([]string, len(platforms))
		for i, p := range platforms {
			bins[i] = binaries[p][c]
		}
		res, err := writeImage(imageSpec{
			name: c, registry: o.registry, src: src, platforms: platforms, binaries: bins,
		}, out)
		if err != nil {
			return fmt.Errorf("image %s: %w", c, err)
		}
		fmt.Printf("%s %s\n", c, res.index)
		for i, p := range platforms {
			fmt.Printf("  %-12s %s\n", p, res.manifests[i])
		}
		fmt.Printf("  layout  %s\n  archive %s\n", res.layout, res.archive)
	}
	return nil
}
