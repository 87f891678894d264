package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/privileges"
)

// Container is a process to run from an unpacked image as a container
// runtime would: the image's root filesystem as its root, read-only as
// readOnlyRootFilesystem asks, with /proc, /sys and /dev mounted, and the
// user, capabilities and no_new_privs of a manifest's securityContext.
//
// setpriv, which the rest of the lab uses for privileges, cannot do this:
// it would have to run inside the new root, where there is nothing but
// the image's binary. So the test binary itself does it: started again
// with the Container in its environment (EnvEntry, RunIfContainer), it sets
// up the root and the privileges on one locked thread and execs the
// entrypoint in place, so the process's PID is the entrypoint's and
// /proc/PID/status can be checked with privileges.CheckStatus.
type Container struct {
	// Root is the unpacked root filesystem.
	Root string
	// Argv is the entrypoint and its arguments, as paths in Root.
	Argv []string
	// Env is the whole environment of the entrypoint.
	Env []string
	// Privileges are the manifest's user, capabilities and no_new_privs.
	Privileges privileges.Privileges
	// ReadOnlyRoot mounts Root read-only (readOnlyRootFilesystem: true).
	ReadOnlyRoot bool
}

// containerEnv carries a Container to the re-executed test binary.
const containerEnv = "BAREMETAL_IMAGE_TEST_CONTAINER"

// EnvEntry returns the environment entry that makes the test binary, started
// with it, run c instead of tests.
func (c Container) EnvEntry() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return containerEnv + "=" + string(b), nil
}

// RunIfContainer runs the Container of the environment, if there is one,
// and never returns then. TestMain calls it first.
func RunIfContainer() {
	v, ok := os.LookupEnv(containerEnv)
	if !ok {
		return
	}
	var c Container
	err := json.Unmarshal([]byte(v), &c)
	if err == nil {
		err = c.exec()
	}
	fmt.Fprintf(os.Stderr, "container: %v\n", err)
	os.Exit(127)
}

// Linux constants that package syscall does not name.
const (
	prCapbsetDrop      = 24
	prSetNoNewPrivs    = 38
	prCapAmbient       = 47
	prCapAmbientClear  = 4
	linuxCapVersion3   = 0x20080522
	prSetPdeathsig     = 1
	mountFlagsReadOnly = syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
)

// exec sets the container up and execs its entrypoint. Credentials,
// capability sets, no_new_privs and the root are per thread in Linux and
// execve takes the calling thread's, so everything runs on one locked
// thread with raw system calls that touch only it.
func (c Container) exec() error {
	if len(c.Argv) == 0 {
		return fmt.Errorf("no entrypoint")
	}
	runtime.LockOSThread()
	// A mount namespace of this thread alone: nothing mounted here is
	// seen outside, and it all goes away with the process.
	if err := syscall.Unshare(syscall.CLONE_NEWNS | syscall.CLONE_FS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	root := c.Root
	if err := syscall.Mount(root, root, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting the root: %w", err)
	}
	if c.ReadOnlyRoot {
		if err := syscall.Mount("", root, "", mountFlagsReadOnly, ""); err != nil {
			return fmt.Errorf("remounting the root read-only: %w", err)
		}
	}
	// What every runtime mounts. /sys is the one `ip netns exec` mounted
	// for the network namespace, as a hostNetwork Pod sees the node's.
	mounts := []struct {
		target, fstype, source string
		flags                  uintptr
	}{
		{"proc", "proc", "proc", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
		{"sys", "", "/sys", syscall.MS_BIND | syscall.MS_REC},
		{"dev", "", "/dev", syscall.MS_BIND | syscall.MS_REC},
	}
	for _, m := range mounts {
		if err := syscall.Mount(m.source, filepath.Join(root, m.target), m.fstype, m.flags, ""); err != nil {
			return fmt.Errorf("mounting /%s: %w", m.target, err)
		}
	}
	if err := syscall.Chroot(root); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}

	// Capabilities: the bounding set first (dropping needs CAP_SETPCAP,
	// which root still has), then no ambient or inheritable ones.
	last, err := capLastCap()
	if err != nil {
		return err
	}
	keep := c.Privileges.Mask()
	for capNum := 0; capNum <= last; capNum++ {
		if keep&(1<<capNum) == 0 {
			if err := prctl(prCapbsetDrop, uintptr(capNum), 0); err != nil {
				return fmt.Errorf("dropping capability %d from the bounding set: %w", capNum, err)
			}
		}
	}
	if err := prctl(prCapAmbient, prCapAmbientClear, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	if err := clearInheritable(); err != nil {
		return err
	}

	// Then the user: no supplementary groups, the group, the user. For
	// uid 0 the permitted and effective sets stay (the exec limits them
	// to the bounding set); any other uid loses them all, as in a Pod.
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	gid, uid := uintptr(c.Privileges.GID), uintptr(c.Privileges.UID)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return fmt.Errorf("setresgid %d: %w", gid, e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return fmt.Errorf("setresuid %d: %w", uid, e)
	}
	// A change of uid clears the parent-death signal that package
	// process set; the test must still take the container with it.
	if err := prctl(prSetPdeathsig, uintptr(syscall.SIGKILL), 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if c.Privileges.NoNewPrivs {
		if err := prctl(prSetNoNewPrivs, 1, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	return syscall.Exec(c.Argv[0], c.Argv, c.Env)
}

func prctl(option, arg2, arg3 uintptr) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, option, arg2, arg3, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// capLastCap is the highest capability number this kernel knows, from
// the /proc mounted in the new root.
func capLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// clearInheritable empties the thread's inheritable set and keeps its
// permitted and effective sets.
func clearInheritable() error {
	hdr := struct {
		version uint32
		pid     int32
	}{version: linuxCapVersion3}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capget: %w", e)
	}
	data[0].inheritable, data[1].inheritable = 0, 0
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}
