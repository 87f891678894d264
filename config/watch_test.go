package config

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWatchFileReportsEachNewContentOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud-config.yaml")
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchFile(ctx, path, 5*time.Millisecond, nil, func(b []byte) { got <- string(b) })
	}()
	time.Sleep(30 * time.Millisecond) // several polls of the baseline: nothing reported
	select {
	case v := <-got:
		t.Fatalf("baseline reported as a change: %q", v)
	default:
	}
	// Replaced in one step, as a ConfigMap volume does: os.WriteFile
	// truncates first, and a poll in between would see an empty file.
	next := path + ".new"
	if err := os.WriteFile(next, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "v2" {
			t.Fatalf("got %q, want v2", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("change not reported")
	}
	time.Sleep(30 * time.Millisecond)
	if len(got) != 0 {
		t.Errorf("one change reported %d more times", len(got))
	}
	cancel()
	<-done
}

func TestWatchFileSinceReportsAChangeMadeBeforeItStarted(t *testing.T) {
	tests := []struct {
		name   string
		known  string
		onDisk string
		want   []string
	}{
		{name: "changed while waiting", known: "v1", onDisk: "v2", want: []string{"v2"}},
		{name: "unchanged", known: "v1", onDisk: "v1", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cloud-config.yaml")
			if err := os.WriteFile(path, []byte(tt.onDisk), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var got []string
			done := make(chan struct{})
			go func() {
				defer close(done)
				// An hour between polls: only the first check can report.
				WatchFileSince(ctx, path, time.Hour, []byte(tt.known), func(b []byte) { got = append(got, string(b)) })
			}()
			time.Sleep(50 * time.Millisecond)
			cancel()
			<-done
			if !slices.Equal(got, tt.want) {
				t.Fatalf("changes reported: %q, want %q", got, tt.want)
			}
		})
	}
}
