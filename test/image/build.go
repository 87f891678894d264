package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Builder runs build/image, the program behind `make image`. It is its
// own Go module (it pulls go-containerregistry), so it is built with
// `go -C build/image`.
type Builder struct {
	// Root is the repository root.
	Root string
	// Path is the built program.
	Path string
}

// NewBuilder builds build/image into dir.
func NewBuilder(ctx context.Context, root, dir string) (*Builder, error) {
	b := &Builder{Root: root, Path: filepath.Join(dir, "image-builder")}
	cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(root, "build", "image"), "build", "-o", b.Path, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building build/image: %v\n%s", err, out)
	}
	return b, nil
}

// Build makes the images of commit for platforms (such as "linux/amd64")
// in out, and returns the program's output. extraEnv is added to the
// environment; shell, if not empty, is run before the program in the
// same sh (to set a umask, say).
func (b *Builder) Build(ctx context.Context, commit, platforms, out string, extraEnv []string, shell string) (string, error) {
	args := []string{"-repo", b.Root, "-commit", commit, "-platforms", platforms, "-out", out}
	script := `exec "$0" "$@"`
	if shell != "" {
		script = shell + "; " + script
	}
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", script, b.Path}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("%s %s: %v\n%s", b.Path, strings.Join(args, " "), err, buf.String())
	}
	return buf.String(), nil
}

// Digest reads the index digest that Build wrote for image name in out.
func Digest(out, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(out, name+".digest"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// HeadCommit is the commit HEAD names in the repository at root.
func HeadCommit(ctx context.Context, root string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--verify", "HEAD^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse HEAD: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
