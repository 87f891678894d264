package loadbalancer

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func testLease(holder string, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "baremetal-system", Name: "cloud-controller-manager"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: &holder,
			RenewTime:      &metav1.MicroTime{Time: renewed},
		},
	}
}

func TestLeaseFenceCheck(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		readings []*coordinationv1.Lease
		wantErr  string // "" means writable
		wantExit bool
	}{
		{name: "not read yet", wantErr: "has not been read yet"},
		{name: "fresh", readings: []*coordinationv1.Lease{testLease("a", now.Add(-2*time.Second))}},
		{name: "just inside the renew deadline", readings: []*coordinationv1.Lease{testLease("a", now.Add(-10*time.Second))}},
		{name: "stale", readings: []*coordinationv1.Lease{testLease("a", now.Add(-10*time.Second-time.Millisecond))}, wantErr: "more than the renew deadline of 10s"},
		{
			name:     "renewed again after going stale",
			readings: []*coordinationv1.Lease{testLease("a", now.Add(-20*time.Second)), testLease("a", now.Add(-time.Second))},
		},
		{
			// A reading that arrives out of order must not make the lease
			// look older, nor younger, than the newest one seen.
			name:     "older reading after a newer one",
			readings: []*coordinationv1.Lease{testLease("a", now.Add(-time.Second)), testLease("a", now.Add(-30*time.Second))},
		},
		{
			name:     "another holder",
			readings: []*coordinationv1.Lease{testLease("a", now.Add(-time.Second)), testLease("b", now)},
			wantErr:  "another replica holds the leader lease", wantExit: true,
		},
		{
			// Deposed for good: this replica must restart as a standby
			// even if it wins the lease back before it exits.
			name:     "holder back after another held it",
			readings: []*coordinationv1.Lease{testLease("a", now.Add(-time.Second)), testLease("b", now), testLease("a", now)},
			wantErr:  "another replica holds the leader lease", wantExit: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exited := make(chan struct{}, 2)
			f := newLeaseFence("baremetal-system", "cloud-controller-manager", 10*time.Second, 2*time.Second, func() { exited <- struct{}{} })
			f.now = func() time.Time { return now }
			for _, l := range tt.readings {
				f.observe(context.Background(), l)
			}
			err := f.check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check() = %v, want writable", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("check() = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.wantExit {
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					t.Fatal("a deposed replica did not exit")
				}
				select {
				case <-exited:
					t.Fatal("exit called twice")
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}

// TestLeaseFenceNilIsOpen: without leader election there is no fence.
func TestLeaseFenceNilIsOpen(t *testing.T) {
	var f *leaseFence
	if err := f.check(); err != nil {
		t.Fatalf("nil fence: %v", err)
	}
	f.start(context.Background(), nil) // must not panic
}

// TestLeaseFenceFollowsTheAPI: the fence reads the Lease through the API,
// refuses when renewals stop and exits when another replica takes it.
func TestLeaseFenceFollowsTheAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	cs := fake.NewClientset(testLease("me", start))
	exited := make(chan struct{})
	f := newLeaseFence("baremetal-system", "cloud-controller-manager", time.Second, 200*time.Millisecond, func() { close(exited) })
	// The fence's clock, not the machine's: under -race on a loaded box
	// the first reading alone can take longer than the 1 s deadline.
	f.now = func() time.Time { return start.Add(100 * time.Millisecond) }
	f.start(ctx, cs)
	if err := f.check(); err != nil {
		t.Fatalf("right after the first reading: %v", err)
	}
	// No renewal for longer than the renew deadline.
	f.now = func() time.Time { return start.Add(1500 * time.Millisecond) }
	if err := f.check(); err == nil {
		t.Fatal("no renewal for 1.5 s with a 1 s renew deadline: still writable")
	}
	// Renewed: writable again once the poll has seen it.
	if _, err := cs.CoordinationV1().Leases("baremetal-system").Update(ctx, testLease("me", start.Add(time.Second)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return f.check() == nil })
	// Taken over.
	if _, err := cs.CoordinationV1().Leases("baremetal-system").Update(ctx, testLease("other", start.Add(2*time.Second)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the fence did not exit after another replica took the lease")
	}
	if err := f.check(); err == nil {
		t.Fatal("deposed, still writable")
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
