package chaos

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// opEntry is one line of the operation log.
type opEntry struct {
	N    int
	At   time.Duration // since the run started
	Kind string
	What string
	Err  string
}

func (e opEntry) String() string {
	s := fmt.Sprintf("%5d %8.2fs %-16s %s", e.N, e.At.Seconds(), e.Kind, e.What)
	if e.Err != "" {
		s += " -> " + e.Err
	}
	return s
}

// opLog is the operation log of a run: every operation and fault, in the
// order the seed drew them, with what the apiserver answered.
type opLog struct {
	mu      sync.Mutex
	start   time.Time
	entries []opEntry
}

func newOpLog() *opLog { return &opLog{start: time.Now()} }

func (l *opLog) add(kind, what string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := opEntry{N: len(l.entries) + 1, At: time.Since(l.start), Kind: kind, What: what}
	if err != nil {
		e.Err = err.Error()
	}
	l.entries = append(l.entries, e)
}

// Len is the number of entries so far; violations carry it to say where
// in the log they were seen.
func (l *opLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Tail returns the last n entries, one per line.
func (l *opLog) Tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.entries)-n)
	var b strings.Builder
	for _, e := range l.entries[from:] {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Around returns the entries from n-before to n.
func (l *opLog) Around(n, before int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.entries[max(0, min(n, len(l.entries))-before):min(n, len(l.entries))] {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteTo writes the whole log.
func (l *opLog) WriteTo(w io.Writer) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, e := range l.entries {
		k, err := fmt.Fprintln(w, e.String())
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
