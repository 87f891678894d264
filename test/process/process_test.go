package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv switches the test binary into a helper that starts a grandchild
// through this package and then waits to be killed; TestPdeathsig uses it.
const helperEnv = "PROCESS_TEST_PDEATHSIG_HELPER"

func TestMain(m *testing.M) {
	if logPath := os.Getenv(helperEnv); logPath != "" {
		p, err := Start(context.Background(), Spec{Name: "grandchild", Path: "sleep", Args: []string{"60"}, LogPath: logPath})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(p.Pid())
		time.Sleep(time.Minute) // killed by the test long before
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func logPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "logs", "child.log")
}

func waitExited(t *testing.T, p *Process, d time.Duration) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(d):
		t.Fatalf("%s still running after %v", p.Name(), d)
	}
}

// waitForLog polls the child's log until it contains want, so a test can
// sync with a shell script that has installed its traps.
func waitForLog(t *testing.T, p *Process, want string) {
	t.Helper()
	// Match a whole line: the log header repeats the command line, which
	// contains the marker too.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log(), "\n"+want+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("log never contained %q:\n%s", want, p.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExitAndLog(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		env      []string
		wantCode int
		wantLog  []string
	}{
		{name: "clean exit", script: "echo hello", wantCode: 0, wantLog: []string{"hello"}},
		{name: "exit code and stderr", script: "echo out; echo err >&2; exit 3", wantCode: 3, wantLog: []string{"out", "err"}},
		{name: "env override", script: `echo "v=$PROCESS_TEST_VAR"`, env: []string{"PROCESS_TEST_VAR=x", "PROCESS_TEST_VAR=y"}, wantLog: []string{"v=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(context.Background(), Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", tt.script}, Env: tt.env, LogPath: logPath(t)})
			if err != nil {
				t.Fatal(err)
			}
			waitExited(t, p, 5*time.Second)
			if got := p.ExitCode(); got != tt.wantCode {
				t.Errorf("ExitCode() = %d, want %d", got, tt.wantCode)
			}
			if (tt.wantCode == 0) != (p.Err() == nil) {
				t.Errorf("Err() = %v with exit code %d", p.Err(), tt.wantCode)
			}
			log := p.Log()
			for _, w := range tt.wantLog {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			if !strings.Contains(log, "exited") {
				t.Errorf("log lacks the exit trailer:\n%s", log)
			}
			if err := p.Stop(time.Second); err != nil {
				t.Errorf("Stop after exit: %v", err)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		spec Spec
	}{
		{name: "no path", spec: Spec{LogPath: filepath.Join(dir, "a.log")}},
		{name: "no log", spec: Spec{Path: "/bin/sh"}},
		{name: "missing binary", spec: Spec{Path: filepath.Join(dir, "nope"), LogPath: filepath.Join(dir, "b.log")}},
		{name: "missing in PATH", spec: Spec{Path: "no-such-binary-xyz", LogPath: filepath.Join(dir, "c.log")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := Start(context.Background(), tt.spec); err == nil {
				_ = p.Kill()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestStopWithSIGTERM(t *testing.T) {
	p, err := Start(context.Background(), Spec{Path: "sleep", Args: []string{"60"}, LogPath: logPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() <= 0 || !p.Running() {
		t.Fatalf("pid %d running %v", p.Pid(), p.Running())
	}
	start := time.Now()
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v; SIGTERM should end sleep at once", d)
	}
	assertSignaled(t, p, syscall.SIGTERM)
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want ErrProcessDone", err)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	// An ignored signal stays ignored across exec, so sleep ignores SIGTERM.
	p, err := Start(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", `trap "" TERM; echo ready; exec sleep 60`}, LogPath: logPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "ready")
	start := time.Now()
	if err := p.Stop(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Stop returned after %v, before the timeout", d)
	}
	assertSignaled(t, p, syscall.SIGKILL)
}

func TestKill(t *testing.T) {
	p, err := Start(context.Background(), Spec{Path: "sleep", Args: []string{"60"}, LogPath: logPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	assertSignaled(t, p, syscall.SIGKILL)
	if p.ExitCode() != -1 {
		t.Errorf("ExitCode() = %d, want -1 for a signaled child", p.ExitCode())
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

func TestSignal(t *testing.T) {
	p, err := Start(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", `trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.05; done`}, LogPath: logPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	waitForLog(t, p, "ready")
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitExited(t, p, 5*time.Second)
	if p.ExitCode() != 7 || !strings.Contains(p.Log(), "got-usr1") {
		t.Errorf("exit code %d, log:\n%s", p.ExitCode(), p.Log())
	}
}

func TestContextCancelKills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, Spec{Path: "sleep", Args: []string{"60"}, LogPath: logPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitExited(t, p, 5*time.Second)
	assertSignaled(t, p, syscall.SIGKILL)
}

func TestLogTail(t *testing.T) {
	p, err := Start(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", "for i in 1 2 3 4 5 6 7 8 9; do echo line-$i; done"}, LogPath: logPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitExited(t, p, 5*time.Second)
	tail := p.LogTail(100)
	if strings.Contains(tail, "line-1\n") || !strings.Contains(tail, "line-9\n") || !strings.HasPrefix(tail, "…\n") {
		t.Errorf("LogTail(100) = %q", tail)
	}
}

// TestPdeathsig kills a helper process that started a grandchild through
// this package, and checks that the kernel killed the grandchild too.
func TestPdeathsig(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(exe, "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+logPath(t))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading grandchild pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if !alive(pid) {
		t.Fatalf("grandchild %d not running before the helper died", pid)
	}
	_ = helper.Process.Kill()
	_ = helper.Wait()

	// The orphan is reparented to PID 1, which may reap it late; a zombie
	// counts as dead, which is exactly what kill -0 cannot tell apart.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived its parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie, from /proc.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	state := s[i+2]
	return state != 'Z' && state != 'X'
}

func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ip, err := LookIP()
	if err != nil {
		t.Skip(err)
	}
	ns := fmt.Sprintf("t%d-proctest", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", ns).Run() })

	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), Spec{Name: "in-ns", Path: "/bin/sh", Args: []string{"-c", "readlink /proc/self/ns/net; echo pid=$$"}, LogPath: logPath(t), Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	waitExited(t, p, 5*time.Second)
	log := p.Log()
	if p.ExitCode() != 0 || !strings.Contains(log, "net:[") || strings.Contains(log, own) {
		t.Fatalf("exit %d; own netns %s; log:\n%s", p.ExitCode(), own, log)
	}
	// ip execs in place, so the shell's $$ is the PID we hold.
	if !strings.Contains(log, fmt.Sprintf("pid=%d\n", p.Pid())) {
		t.Errorf("Pid() = %d, log:\n%s", p.Pid(), log)
	}
}

func assertSignaled(t *testing.T, p *Process, sig syscall.Signal) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) {
		t.Fatalf("Err() = %v, want an ExitError", p.Err())
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("exit status %v, want killed by %v", ee, sig)
	}
}
