package controlplane

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// startBudget bounds a whole Start from the test helpers: port retries,
// etcd, the apiserver's ReadyTimeout and the namespace wait together.
const startBudget = 3 * time.Minute

// StartForTest starts a control plane for one test and registers its Stop
// with t.Cleanup. If opts.Dir is empty it uses t.TempDir(). When the test
// has failed, the cleanup first logs the tail of each process log, since the
// directory is gone afterwards.
func StartForTest(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startBudget)
	defer cancel()
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			cp.logTails(func(format string, args ...any) { t.Logf(format, args...) })
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
	})
	return cp
}

// RunMain is the body of a TestMain that shares one control plane among the
// tests of a package:
//
//	func TestMain(m *testing.M) {
//		os.Exit(controlplane.RunMain(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
//	}
//
// It starts the control plane, hands it to set, runs the tests and stops it,
// and returns the exit code for os.Exit. If the control plane cannot start
// it prints why and returns 1 without running any test.
//
// While it runs, SIGINT and SIGTERM stop the control plane (or abort its
// start) and exit the binary with 128+signal, so an interrupted `go test`
// leaves no etcd or apiserver behind and no half-written data directory in
// use. The children would die with the test binary anyway (see package
// process); the handler makes the shutdown orderly.
func RunMain(m *testing.M, opts Options, set func(*ControlPlane)) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithTimeout(context.Background(), startBudget)
	defer cancel()

	var (
		mu      sync.Mutex
		current *ControlPlane
		sigCode int // 128+signal once a signal arrived; Start's result must then be stopped
	)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			cancel() // aborts a Start in progress
			code := 128 + int(sig.(syscall.Signal))
			mu.Lock()
			sigCode = code
			cp := current
			mu.Unlock()
			if cp == nil {
				// Start is still running; it sees the canceled context,
				// cleans up and RunMain returns an error code.
				return
			}
			fmt.Fprintf(os.Stderr, "controlplane: %v: stopping control plane in %s\n", sig, cp.Dir())
			if err := cp.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "controlplane: stop: %v\n", err)
			}
			os.Exit(code)
		case <-done:
		}
	}()

	cp, err := Start(ctx, opts)
	mu.Lock()
	current = cp
	interrupted := sigCode
	mu.Unlock()
	if interrupted != 0 {
		if cp != nil {
			_ = cp.Stop()
		}
		fmt.Fprintln(os.Stderr, "controlplane: interrupted while starting")
		return interrupted
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		return 1
	}
	cancel()

	set(cp)
	code := m.Run()
	if code != 0 {
		cp.logTails(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
	}
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: stop: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// logTails reports where the logs are and the end of each, for a failed run.
func (cp *ControlPlane) logTails(logf func(format string, args ...any)) {
	for _, p := range []*process.Process{cp.etcd, cp.apiserver, cp.kcm} {
		if p == nil {
			continue
		}
		logf("--- %s log (%s), last %d bytes:\n%s", p.Name(), p.LogPath(), logTailBytes, p.LogTail(logTailBytes))
	}
}
