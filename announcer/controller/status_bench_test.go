package controller

import (
	"fmt"
	"testing"
)

// BenchmarkDesiredStatus is what keeping the conditions adds to a pass
// over 5,000 layer2 Services on 3 and 100 nodes (decide's cost excluded):
// the conditions of the Services this node writes, built and compared in
// memory, with no API call unless one changed.
func BenchmarkDesiredStatus(b *testing.B) {
	for _, nodes := range []int{3, 100} {
		b.Run(fmt.Sprintf("5000 services, %d nodes", nodes), func(b *testing.B) {
			s := bigSnapshot(b, nodes)
			decisions, mine := decide(s)
			var written int
			for b.Loop() {
				written = len(desiredStatus(s, decisions, mine))
			}
			b.ReportMetric(float64(written), "services-written-by-node0")
		})
	}
}
