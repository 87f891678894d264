package lab

import (
	"context"
	"testing"
)

// logTailBytes is how much of each process log a failed test shows.
const logTailBytes = 3000

// NewForTest builds a lab for one test and registers its Close with
// t.Cleanup. It skips the test, with the reason, when the machine cannot
// run the lab (not root, no ip command). If opts.Dir is empty it uses
// t.TempDir(); if the test failed, the cleanup first logs the tail of every
// process log, since that directory is removed afterwards. Setup is bounded
// by one minute.
func NewForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if err := Supported(); err != nil {
		t.Skipf("lab: %v", err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), newBudget)
	defer cancel()
	l, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range l.Processes() {
				t.Logf("--- %s log (%s), last %d bytes:\n%s", p.Name(), p.LogPath(), logTailBytes, p.LogTail(logTailBytes))
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return l
}
