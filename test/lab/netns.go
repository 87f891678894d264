package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// inNetns runs fn on an OS thread that has joined the named network
// namespace. Sockets created by fn (listeners, dialers, raw and netlink
// sockets) belong to that namespace for their whole life, and so do the
// sysctls fn writes under /proc/sys/net, since both follow the calling
// thread's namespace.
//
// fn runs on a goroutine of its own, so the caller's goroutine and its lock
// state are never touched. The thread is moved back to the namespace it came
// from before it is unlocked; if that fails, the thread stays locked, and Go
// ends a thread whose locked goroutine returns, so a thread in a lab
// namespace never runs other goroutines. fn must not start goroutines that
// expect to inherit the namespace: they run on other threads.
func inNetns(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns of current thread: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("leaving netns %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// listenIn opens a TCP listener inside the named namespace.
func listenIn(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// dialIn connects from inside the named namespace. The socket is created and
// connected on the namespace's thread; afterwards it can be used anywhere.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// setSysctls sets sysctls given as key, value pairs, such as
// "net.ipv4.ip_forward", "1", inside the named namespace by writing
// /proc/sys on the namespace's thread: no sysctl binary and no fork needed.
func setSysctls(ns string, kv ...string) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("setSysctls: odd number of arguments")
	}
	return inNetns(ns, func() error {
		for i := 0; i < len(kv); i += 2 {
			path := filepath.Join("/proc/sys", dotsToSlashes(kv[i]))
			if err := os.WriteFile(path, []byte(kv[i+1]), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", kv[i], kv[i+1], ns, err)
			}
		}
		return nil
	})
}

// readSysctl reads a sysctl inside the named namespace.
func readSysctl(ns, key string) (string, error) {
	path := filepath.Join("/proc/sys", dotsToSlashes(key))
	var out string
	err := inNetns(ns, func() error {
		b, err := os.ReadFile(path)
		out = strings.TrimSpace(string(b))
		return err
	})
	return out, err
}

// dotsToSlashes turns a sysctl key into a /proc/sys path. Interface names
// with dots are not used in the lab, so the plain translation is enough.
func dotsToSlashes(key string) string {
	return strings.ReplaceAll(key, ".", "/")
}
