package loadbalancer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestStallGuard(t *testing.T) {
	tests := []struct {
		name      string
		frozenFor time.Duration // time between the last tick and the check
		wantErr   bool
	}{
		{name: "running", frozenFor: 0, wantErr: false},
		{name: "frozen past the lease", frozenFor: 60 * time.Millisecond, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var exits atomic.Int32
			g := newStallGuard(30*time.Millisecond, func() { exits.Add(1) })
			g.touch()
			time.Sleep(tt.frozenFor) // no ticker runs: the process is "stopped"
			err := g.check(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("check() = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr {
				return
			}
			// Once tripped it stays tripped, even after a fresh tick, and
			// exits only once.
			g.touch()
			if g.check(context.Background()) == nil {
				t.Fatal("check() after a trip = nil, want an error")
			}
			deadline := time.Now().Add(5 * time.Second)
			for exits.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := exits.Load(); n != 1 {
				t.Fatalf("exit called %d times, want 1", n)
			}
		})
	}
}

func TestStallGuardNilAllowsEverything(t *testing.T) {
	var g *stallGuard
	if err := g.check(context.Background()); err != nil {
		t.Fatalf("nil guard: check() = %v", err)
	}
}
