package config

import (
	"bytes"
	"context"
	"os"
	"time"
)

// PollInterval is how often WatchFile reads the cloud-config file. A
// ConfigMap volume is updated through a symlink swap that file-event
// watches miss unless they follow symlinks; reading a small file every few
// seconds is simpler and cannot miss.
const PollInterval = 5 * time.Second

// WatchFile reads the file at path every interval until ctx ends and calls
// changed with each new content. The content at the call is the baseline
// and is not passed: the caller has already loaded that version. A read
// error is skipped, since during a ConfigMap update the symlink may briefly
// point nowhere; onReadErr, if set, hears about the first read's failure.
func WatchFile(ctx context.Context, path string, interval time.Duration, onReadErr func(error), changed func([]byte)) {
	last, err := os.ReadFile(path)
	if err != nil && onReadErr != nil {
		onReadErr(err)
	}
	watchFrom(ctx, path, interval, last, false, changed)
}

// WatchFileSince is WatchFile for a caller that already holds a version of
// the file, known, read perhaps long ago: a standby replica parses the file
// at start but follows it only once it leads, and the file may have changed
// in between. A file that differs from known is reported at once, then
// every change as WatchFile does.
func WatchFileSince(ctx context.Context, path string, interval time.Duration, known []byte, changed func([]byte)) {
	watchFrom(ctx, path, interval, known, true, changed)
}

func watchFrom(ctx context.Context, path string, interval time.Duration, last []byte, now bool, changed func([]byte)) {
	check := func() {
		data, err := os.ReadFile(path)
		if err != nil || bytes.Equal(data, last) {
			return
		}
		last = data
		changed(data)
	}
	if now {
		check()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		check()
	}
}
