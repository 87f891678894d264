package config

import (
	"runtime"
	"syscall"
	"time"
)

// rusageThread is RUSAGE_THREAD, which package syscall does not name.
const rusageThread = 1

// onCPU runs f and returns the CPU time the calling thread spent on it:
// what f would take on a machine of its own, less noisy on a shared one
// than the time on the clock. Work by other threads, such as the garbage
// collector's background marking, is not counted.
func onCPU(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	if syscall.Getrusage(rusageThread, &before) != nil {
		return onClock(f)
	}
	f()
	if syscall.Getrusage(rusageThread, &after) != nil {
		return onClock(f)
	}
	return time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
}
