package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// Bookkeeping. Every lab owns a directory RunBase/<prefix> holding
//
//	owner       "<pid> <start time in clock ticks>" of the process that runs the lab
//	namespaces  one namespace name per line, appended as each is created
//
// The directory is claimed before the first namespace exists and removed
// after the last one is gone, so a run that died at any point leaves enough
// behind for Sweep to finish its teardown. It is also where FRR's sockets
// live, because the frr user must be able to reach them (a test's TempDir
// is private to root).
const (
	RunBase        = "/run/baremetal-lab"
	netnsDir       = "/run/netns"
	ownerFile      = "owner"
	namespacesFile = "namespaces"
	// A run directory without an owner file is either being claimed right
	// now or left by a process that died in between; after this long it is
	// the latter.
	unclaimedGrace = 30 * time.Second
)

// claimRunDir creates RunBase/<prefix> and writes the owner file. If the
// directory exists, its owner must be dead (then it is swept first).
func claimRunDir(prefix string) (string, error) {
	if err := os.MkdirAll(RunBase, 0o755); err != nil {
		return "", err
	}
	// MkdirAll honours umask; FRR, running as user frr, must traverse it.
	if err := os.Chmod(RunBase, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(RunBase, prefix)
	for attempt := 0; ; attempt++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return "", fmt.Errorf("lab: claiming %s: %w", dir, err)
		}
		if pid, alive := ownerAlive(dir); alive {
			return "", fmt.Errorf("lab: prefix %q is in use by the live process %d", prefix, pid)
		}
		if err := sweepDir(dir, nil); err != nil {
			return "", fmt.Errorf("lab: prefix %q has leftovers that cannot be removed: %w", prefix, err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	start, err := procStartTime(os.Getpid())
	if err != nil {
		return "", err
	}
	owner := fmt.Sprintf("%d %d\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// Sweep removes the leftovers of labs whose owning process is dead: it kills
// the processes in their namespaces, deletes the namespaces and their
// bookkeeping. Only labs whose prefix starts with prefix are considered; ""
// means all. A lab of a live process is never touched, and neither is a
// namespace that no lab recorded as its own. New calls Sweep(""), so a run
// killed hard (SIGKILL, a lost watchdog) is cleaned up by the next run.
func Sweep(prefix string) error {
	entries, err := os.ReadDir(RunBase)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		dir := filepath.Join(RunBase, e.Name())
		if _, alive := ownerAlive(dir); alive {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); errors.Is(err, fs.ErrNotExist) {
			if info, err := os.Stat(dir); err == nil && time.Since(info.ModTime()) < unclaimedGrace {
				continue
			}
		}
		if err := sweepDir(dir, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweepDir removes the namespaces recorded in a lab's run directory and
// then the directory.
func sweepDir(dir string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var errs []error
	b, err := os.ReadFile(filepath.Join(dir, namespacesFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	names := strings.Fields(string(b))
	for i := len(names) - 1; i >= 0; i-- {
		if err := removeNS(names[i], logf); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerAlive reports the owner of a run directory and whether it still
// runs. A zombie counts as dead, and so does a PID reused by another
// process (its start time differs); kill -0 would get both wrong.
func ownerAlive(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return pid, pidAlive(pid, start)
}

func pidAlive(pid int, start uint64) bool {
	state, got, err := procStat(pid)
	if err != nil || state == "Z" || state == "X" || state == "x" {
		return false
	}
	return got == start
}

func procStartTime(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat returns the state and start time (field 22) of a process.
func procStat(pid int) (state string, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	// The command name, field 2, may contain spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0], start, err
}

// pidsIn lists the processes whose network namespace is ns, as
// `ip netns pids` does (same device and inode), without this process: a
// thread of ours may sit in a lab namespace for a moment, and the lab must
// never kill the test itself.
func pidsIn(ns string) ([]int, error) {
	var target syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, ns), &target); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue // gone, a zombie, or a kernel thread
		}
		if st.Dev == target.Dev && st.Ino == target.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func killPid(pid int) error {
	err := syscall.Kill(pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// watchdog is a small shell process, outside the test's process group and
// without a parent-death signal, that holds the read end of a pipe whose
// write end only the test holds. When the test process ends for any reason
// (a failed test, Ctrl-C, SIGTERM, `go test -timeout`, a panic, SIGKILL)
// the kernel closes the write end, the shell reads EOF and tears the lab
// down. A Close that ran writes "ok" first, and the shell exits without
// touching anything. This is what makes teardown independent of how the
// test binary ends, and of other signal handlers (controlplane.RunMain
// calls os.Exit from its own).
type watchdog struct {
	cmd    *exec.Cmd
	w      *os.File
	exited chan struct{}
}

// The script reads the namespace list only after EOF, so it sees every
// namespace New managed to create.
const watchdogScript = `
IFS= read -r line
[ "$line" = ok ] && exit 0
dir=$1
if [ -f "$dir/namespaces" ]; then
	# Kill until no process is left (a dying parent may fork once more),
	# at most 20 rounds.
	round=0
	while [ $round -lt 20 ]; do
		round=$((round + 1))
		found=
		while IFS= read -r ns; do
			pids=$(ip netns pids "$ns" 2>/dev/null)
			if [ -n "$pids" ]; then
				found=1
				kill -9 $pids 2>/dev/null
			fi
		done < "$dir/namespaces"
		[ -z "$found" ] && break
		sleep 0.05
	done
	while IFS= read -r ns; do ip netns del "$ns" 2>/dev/null; done < "$dir/namespaces"
fi
rm -rf "$dir"
`

func startWatchdog(runDir string) (*watchdog, error) {
	r, w, err := os.Pipe() // close-on-exec: no other child inherits w
	if err != nil {
		return nil, err
	}
	ip, err := process.LookIP()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "lab-watchdog", runDir)
	cmd.Stdin = r
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(ip)+":/usr/sbin:/usr/bin:/sbin:/bin")
	// Its own session: a Ctrl-C to the terminal's process group must not
	// kill the watchdog along with the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("lab: starting watchdog: %w", err)
	}
	r.Close()
	wd := &watchdog{cmd: cmd, w: w, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(wd.exited)
	}()
	return wd, nil
}

// release tells the watchdog that teardown is done (ok) or that it should
// tear down itself (!ok), and waits for it to exit.
func (wd *watchdog) release(ok bool) error {
	var werr error
	if ok {
		_, werr = wd.w.Write([]byte("ok\n"))
	}
	wd.w.Close()
	select {
	case <-wd.exited:
	case <-time.After(killWait):
		_ = wd.cmd.Process.Kill()
		<-wd.exited
		return errors.New("lab: watchdog did not exit")
	}
	if werr != nil {
		return fmt.Errorf("lab: releasing watchdog: %w", werr)
	}
	return nil
}
