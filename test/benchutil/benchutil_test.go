package benchutil

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    int
		want time.Duration
	}{
		{name: "no samples", ds: nil, p: 50, want: 0},
		{name: "one sample is every percentile", ds: ms(7), p: 99, want: 7 * time.Millisecond},
		{name: "median of an odd count is the middle", ds: ms(3, 1, 2), p: 50, want: 2 * time.Millisecond},
		{name: "median of an even count is the lower middle", ds: ms(4, 1, 3, 2), p: 50, want: 2 * time.Millisecond},
		{name: "p90 of ten is the ninth", ds: ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), p: 90, want: 9 * time.Millisecond},
		{name: "p99 of 100 is the 99th", ds: ms(hundred...), p: 99, want: 99 * time.Millisecond},
		{name: "p100 is the maximum", ds: ms(5, 9, 1), p: 100, want: 9 * time.Millisecond},
		{name: "a tiny p is the minimum", ds: ms(5, 9, 1), p: 1, want: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %d) = %v, want %v", tt.ds, tt.p, got, tt.want)
			}
		})
	}
}

func TestPercentileLeavesItsInputAlone(t *testing.T) {
	ds := []time.Duration{3, 1, 2}
	Percentile(ds, 50)
	if ds[0] != 3 || ds[1] != 1 || ds[2] != 2 {
		t.Errorf("Percentile sorted its input: %v", ds)
	}
}
