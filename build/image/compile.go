package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// platform is an image platform; the binaries are cross-compiled for it,
// so no emulation is needed.
type platform struct {
	OS, Arch string
}

func (p platform) String() string { return p.OS + "/" + p.Arch }

// variant is the OCI platform variant: arm64 images say v8, as registries
// and runtimes expect.
func (p platform) variant() string {
	if p.Arch == "arm64" {
		return "v8"
	}
	return ""
}

// supported are the platforms the project ships; others would build but
// are untested.
var supported = []platform{{"linux", "amd64"}, {"linux", "arm64"}}

func parsePlatforms(s string) ([]platform, error) {
	var ps []platform
	for _, f := range strings.Split(s, ",") {
		os, arch, ok := strings.Cut(strings.TrimSpace(f), "/")
		p := platform{os, arch}
		if !ok || !slices.Contains(supported, p) {
			return nil, fmt.Errorf("-platforms: %q is not one of linux/amd64, linux/arm64", f)
		}
		if slices.Contains(ps, p) {
			return nil, fmt.Errorf("-platforms: %q given twice", f)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// buildEnv is the environment of go build: the caller's, minus everything
// that changes the output, plus fixed values for it.
func buildEnv(p platform, toolchain string) []string {
	fixed := map[string]string{
		"CGO_ENABLED": "0", // static: the image has no libc
		"GOOS":        p.OS,
		"GOARCH":      p.Arch,
		// The architecture baselines, whatever the caller's defaults.
		"GOAMD64": "v1",
		"GOARM64": "v8.0",
		// -mod, -tags, -race or a GOEXPERIMENT would change the binary.
		"GOFLAGS":      "-mod=readonly",
		"GOEXPERIMENT": "",
	}
	if toolchain != "" {
		fixed["GOTOOLCHAIN"] = toolchain
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := fixed[k]; !ok {
			env = append(env, kv)
		}
	}
	for k, v := range fixed {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// ldflags strips the symbol table and DWARF (smaller, and no build paths)
// and stamps the version that --version and the build_info metric show.
func ldflags(s source) string {
	const v = "k8s.io/component-base/version."
	tree := "clean"
	if s.dirty {
		tree = "dirty"
	}
	return strings.Join([]string{
		"-s", "-w",
		"-X " + v + "gitVersion=" + s.version,
		"-X " + v + "gitCommit=" + s.commit,
		"-X " + v + "gitTreeState=" + tree,
		"-X " + v + "buildDate=" + s.epoch.Format(time.RFC3339),
	}, " ")
}

// compile builds cmds for p into dir.
func compile(ctx context.Context, s source, p platform, cmds []string, dir, toolchain string) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags(s), "-o", dir + "/"}
	for _, c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	start := time.Now()
	fmt.Printf("go build %s for %s ...\n", strings.Join(cmds, " "), p)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = s.dir
	cmd.Env = buildEnv(p, toolchain)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", p, err)
	}
	fmt.Printf("go build for %s: %s\n", p, time.Since(start).Round(time.Second))
	return nil
}
