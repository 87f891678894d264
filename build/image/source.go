package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// source is the tree the binaries are built from and what the images say
// about it.
type source struct {
	// dir is the module root to run go build in.
	dir string
	// commit is the full commit id; dirty means the working tree was
	// built instead, with whatever changes it had.
	commit string
	dirty  bool
	// version is the binaries' and images' version: the tag on the
	// commit, or a Go pseudo-version (v0.0.0-<time>-<commit>), plus
	// "-dirty" for a working tree.
	version string
	// epoch is SOURCE_DATE_EPOCH: every time the images record.
	epoch time.Time
}

func (s source) describe() string {
	if s.dirty {
		return s.commit + " + uncommitted changes"
	}
	return s.commit
}

// resolveSource finds the commit in repo and exports its tree to dir, or
// with worktree uses repo's working tree as it is.
func resolveSource(ctx context.Context, repo, commit string, worktree bool, dir string) (source, error) {
	top, err := git(ctx, repo, "rev-parse", "--show-toplevel")
	if err != nil {
		return source{}, fmt.Errorf("-repo %s: not in a git checkout: %w", repo, err)
	}
	if worktree {
		commit = "HEAD"
	}
	full, err := git(ctx, top, "rev-parse", "--verify", "--end-of-options", commit+"^{commit}")
	if err != nil {
		return source{}, fmt.Errorf("-commit %q: %w", commit, err)
	}
	s := source{commit: full}
	if s.epoch, err = sourceDateEpoch(ctx, top, full); err != nil {
		return source{}, err
	}
	s.version = pseudoVersion(s.epoch, full)
	if tag, err := git(ctx, top, "describe", "--tags", "--exact-match", "--match", "v[0-9]*", full); err == nil {
		s.version = tag
	}
	if worktree {
		s.dir, s.dirty = top, true
		s.version += "-dirty"
		return s, nil
	}
	if err := exportTree(ctx, top, full, dir); err != nil {
		return source{}, err
	}
	s.dir = dir
	return s, nil
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH if set (the reproducible-builds
// convention), else the commit's committer time.
func sourceDateEpoch(ctx context.Context, repo, commit string) (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		var err error
		if v, err = git(ctx, repo, "show", "-s", "--format=%ct", commit); err != nil {
			return time.Time{}, err
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a count of seconds since 1970", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// pseudoVersion names an untagged commit as Go names one:
// v0.0.0-20261202104424-a5f7628c1b2d. It is valid semver, which
// component-base's version checks expect, and sorts by time.
func pseudoVersion(t time.Time, commit string) string {
	return "v0.0.0-" + t.UTC().Format("20060102150405") + "-" + commit[:12]
}

// exportTree writes commit's tree to dir with `git archive`, which only
// reads the repository: other people may be working in the same checkout.
func exportTree(ctx context.Context, repo, commit, dir string) error {
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	extractErr := extract(r, dir)
	// Drain, so that git never blocks on a full pipe after an error.
	_, _ = io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive %s: %w: %s", commit, err, strings.TrimSpace(stderr.String()))
	}
	return extractErr
}

// extract writes the tar stream of git archive under dir. It takes
// regular files, directories and symlinks, and refuses paths that would
// leave dir.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading git archive: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("git archive: entry %q leaves the tree", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, path); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
			// git's comment with the commit id.
		default:
			return fmt.Errorf("git archive: entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

// git runs a git command in dir and returns its trimmed output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
