//go:build !linux

package config

import "time"

// onCPU runs f and returns the time it took: the time on the clock where
// the thread's CPU time is not available.
func onCPU(f func()) time.Duration {
	return onClock(f)
}
