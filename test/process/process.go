// Package process runs a binary as a real child process of a test, for the
// integration tests that start etcd, kube-apiserver, routers and node agents.
//
// Two rules shape this package; both come from running such tests on this
// lab's hosts.
//
// Pdeathsig. A test binary can die without running its cleanups: a panic in
// another goroutine, `go test -timeout`, a SIGKILL from the CI runner or a
// second Ctrl-C. Without help, the children it started (an apiserver holding
// a port, an etcd holding a data directory) would outlive it and disturb the
// next run. Every child is therefore started with
// SysProcAttr.Pdeathsig = SIGKILL, so the kernel kills it when its parent
// goes away. The kernel ties that signal to the parent *thread*, not the
// process, and the Go runtime does end threads (when a goroutine exits while
// locked to its thread, as network-namespace code does). Start therefore
// forks from a goroutine that locks its own OS thread and keeps it locked
// until the child has been reaped, so no other goroutine can ever end that
// thread early. The same locked, fresh thread also guarantees that the child
// starts in the root network namespace even if the caller's goroutine sits
// on a thread that was moved into another one.
//
// Wait. On these hosts PID 1 reaps orphans about a second late, so probing a
// PID with kill -0 can call a dead process alive, and a PID can in principle
// be reused. This package never probes PIDs: each child stays our child and a
// dedicated goroutine Wait()s on it. Exited is closed only once the kernel
// has reported the exit, and Stop and Kill return only after that, so a
// caller that restarts a server on the same port or data directory never
// races the old one.
//
// Output. Stdout and stderr of the child go straight to a log file (the file
// descriptor is handed to the child, no copying goroutine), so a child that
// leaves grandchildren behind cannot block Wait on an open pipe, and the log
// survives the test for post-mortem reading.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// killGrace bounds how long Stop and Kill wait for the kernel to report the
// exit after SIGKILL. A process in uninterruptible sleep can take a while;
// a test must still not hang forever on it.
const killGrace = 10 * time.Second

// Spec describes a child process.
type Spec struct {
	// Name identifies the process in errors and in the log header.
	// Defaults to the base name of Path.
	Name string
	// Path is the binary to run. A name without a slash is looked up in PATH.
	Path string
	// Args are the arguments, without the program name.
	Args []string
	// Env holds extra KEY=VALUE entries appended to the test's environment;
	// later entries win, so they override inherited ones.
	Env []string
	// LogPath receives the child's stdout and stderr (appended, created with
	// its parent directories if missing). Required: a child without a log
	// cannot be debugged after the fact.
	LogPath string
	// Netns, if set, runs the child in that named network namespace via
	// `ip netns exec NS`. ip execs the binary in place, so the child's PID,
	// signals and exit status are the binary's own.
	Netns string
	// Dir is the working directory; empty means the test's own.
	Dir string
}

// Process is a started child. All methods are safe for concurrent use.
type Process struct {
	spec Spec
	cmd  *exec.Cmd
	pid  int

	exited  chan struct{}
	waitErr error // set before exited is closed
	state   *os.ProcessState

	stopMu sync.Mutex // serializes Stop and Kill
}

// Start starts the child described by spec. It returns once the child is
// running (or failed to start); it does not wait for the child to be ready.
//
// If ctx is canceled while the child still runs, the child is killed with
// SIGKILL, as with exec.CommandContext. Pass context.WithoutCancel(ctx) when
// ctx only bounds a setup phase and the child must outlive it.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if spec.Path == "" {
		return nil, errors.New("process: Spec.Path is empty")
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	if spec.LogPath == "" {
		return nil, fmt.Errorf("process %s: Spec.LogPath is empty", spec.Name)
	}

	binary := spec.Path
	args := spec.Args
	if spec.Netns != "" {
		ip, err := LookIP()
		if err != nil {
			return nil, fmt.Errorf("process %s: netns %s: %w", spec.Name, spec.Netns, err)
		}
		args = append([]string{"netns", "exec", spec.Netns, spec.Path}, spec.Args...)
		binary = ip
	} else if !strings.Contains(binary, "/") {
		p, err := exec.LookPath(binary)
		if err != nil {
			return nil, fmt.Errorf("process %s: %w", spec.Name, err)
		}
		binary = p
	} else if _, err := os.Stat(binary); err != nil {
		// Reported here rather than by fork/exec so the message names the
		// process and the missing file plainly.
		return nil, fmt.Errorf("process %s: %w", spec.Name, err)
	}

	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("process %s: log dir: %w", spec.Name, err)
	}
	logFile, err := os.OpenFile(spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("process %s: log: %w", spec.Name, err)
	}
	// The child holds its own copy of the descriptor; ours is only needed
	// until the fork.
	defer logFile.Close()
	fmt.Fprintf(logFile, "### %s %s: %s %s%s\n", time.Now().Format(time.RFC3339Nano), spec.Name,
		spec.Path, strings.Join(spec.Args, " "), netnsNote(spec.Netns))

	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = spec.Dir
	if len(spec.Env) > 0 {
		cmd.Env = append(os.Environ(), spec.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		// Own process group: a Ctrl-C in the terminal goes to the test
		// binary, which then stops its children in order, instead of
		// reaching every child at once.
		Setpgid: true,
	}

	p := &Process{spec: spec, cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		return nil, fmt.Errorf("process %s: start: %w", spec.Name, err)
	}
	return p, nil
}

// run forks and reaps the child on one locked OS thread; see the package
// comment for why the thread must stay locked for the child's lifetime.
func (p *Process) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := p.cmd.Start(); err != nil {
		started <- err
		return
	}
	p.pid = p.cmd.Process.Pid
	started <- nil

	err := p.cmd.Wait()
	p.waitErr = err
	p.state = p.cmd.ProcessState
	p.appendLog(fmt.Sprintf("### %s %s exited: %v\n", time.Now().Format(time.RFC3339Nano), p.spec.Name, p.describeExit()))
	close(p.exited)
}

func (p *Process) describeExit() string {
	if p.state != nil {
		return p.state.String()
	}
	return fmt.Sprint(p.waitErr)
}

func (p *Process) appendLog(s string) {
	f, err := os.OpenFile(p.spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(s)
}

// Name returns the process name from the Spec.
func (p *Process) Name() string { return p.spec.Name }

// Pid returns the child's PID. With Netns set it is the PID of the binary
// itself, since `ip netns exec` execs it in place.
func (p *Process) Pid() int { return p.pid }

// LogPath returns the file that holds the child's output.
func (p *Process) LogPath() string { return p.spec.LogPath }

// Exited is closed once the child has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the child has not been reaped yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitCode returns the child's exit status once it has exited, and -1 while
// it runs or if a signal ended it.
func (p *Process) ExitCode() int {
	select {
	case <-p.exited:
		if p.state == nil {
			return -1
		}
		return p.state.ExitCode()
	default:
		return -1
	}
}

// Err returns the error from Wait once the child has exited (nil for a
// clean exit 0, *exec.ExitError otherwise), and nil while it runs.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
		return nil
	}
}

// Signal sends sig to the child. Signalling a child that has already been
// reaped returns os.ErrProcessDone; Go signals through a pidfd here, so a
// reused PID is never hit.
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Stop asks the child to exit with SIGTERM, sends SIGKILL if it is still
// running after timeout, and returns once the child has been reaped. It is
// idempotent: stopping an exited child returns nil. The child's own exit
// status is not an error here; use ExitCode or Err for it.
func (p *Process) Stop(timeout time.Duration) error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("process %s: SIGTERM: %w", p.spec.Name, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
	}
	return p.killLocked()
}

// Kill sends SIGKILL and returns once the child has been reaped. Like Stop
// it is idempotent.
func (p *Process) Kill() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	return p.killLocked()
}

func (p *Process) killLocked() error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("process %s: SIGKILL: %w", p.spec.Name, err)
	}
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
		return fmt.Errorf("process %s (pid %d): not reaped %v after SIGKILL", p.spec.Name, p.pid, killGrace)
	}
}

// Wait blocks until the child exits or ctx is done, and returns Err or the
// context's error.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.exited:
		return p.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Log returns the whole log file, or a note if it cannot be read.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.spec.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading log of %s: %v)", p.spec.Name, err)
	}
	return string(b)
}

// LogTail returns at most the last maxBytes of the log, cut at a line start,
// for error messages that should show why a child failed without flooding
// the test output.
func (p *Process) LogTail(maxBytes int) string {
	s := p.Log()
	if len(s) <= maxBytes {
		return s
	}
	s = s[len(s)-maxBytes:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i+1 < len(s) {
		s = s[i+1:]
	}
	return "…\n" + s
}

func netnsNote(ns string) string {
	if ns == "" {
		return ""
	}
	return " (netns " + ns + ")"
}

// LookIP finds the ip command (iproute2) even when /usr/sbin is not in
// PATH, as under sudo or a minimal CI environment.
func LookIP() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the ip command (iproute2) is not installed")
}

// ReadFileFrom returns up to 1 MiB of path from offset off, or "" if it
// cannot be read. Harnesses use it to look only at what a child logged since
// a given moment, e.g. to tell a port clash from another start failure.
func ReadFileFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}
