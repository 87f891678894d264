package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// aptTimeout bounds EnsurePackages when ctx has no deadline: an update and
// an install of frr take well under a minute on the lab machines.
const aptTimeout = 10 * time.Minute

// aptLock is held on top of apt's own lock: test binaries of several
// packages run in parallel and may want the same package at once.
const aptLock = "/run/baremetal-lab.apt.lock"

var aptMu sync.Mutex

// Installed reports whether the Debian package is installed.
func Installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.TrimSpace(string(out)) == "install ok installed"
}

// EnsurePackages installs the Debian packages that are missing (for
// example "frr", "iputils-arping", "socat") with apt-get, and does nothing
// if all are installed. It runs `apt-get update` only if the first install
// fails, since a fresh machine may have no package lists. Without a
// deadline on ctx it is bounded by 10 minutes.
func EnsurePackages(ctx context.Context, pkgs ...string) error {
	var missing []string
	for _, p := range pkgs {
		if !Installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("lab: packages %v are missing and installing them needs root", missing)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("lab: packages %v are missing and there is no apt-get: %w", missing, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, aptTimeout)
		defer cancel()
	}

	aptMu.Lock()
	defer aptMu.Unlock()
	unlock, err := lockFile(ctx, aptLock)
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have installed them while we waited.
	missing = missing[:0]
	for _, p := range pkgs {
		if !Installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}

	install := append([]string{"-o", "DPkg::Lock::Timeout=120", "install", "-y", "--no-install-recommends"}, missing...)
	_, err = apt(ctx, install...)
	if err == nil {
		return nil
	}
	if _, uerr := apt(ctx, "-o", "DPkg::Lock::Timeout=120", "update"); uerr != nil {
		return fmt.Errorf("lab: installing %v: %v; apt-get update: %w", missing, err, uerr)
	}
	if _, err := apt(ctx, install...); err != nil {
		return fmt.Errorf("lab: installing %v: %w", missing, err)
	}
	return nil
}

func apt(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 2000 {
			s = "…" + s[len(s)-2000:]
		}
		return string(out), fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return string(out), nil
}

// lockFile takes an exclusive flock on path, polling until ctx is done.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lab: waiting for %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
