package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// The files in testdata/bombs stalled the parser for tens of seconds to
// minutes (merge-9.8k: 32 to 49 s, merge-20k: 74 to 95 s, on the 2-core
// CI machine). They must now be refused, each problem where it is. How
// fast is for FuzzParseTime and BenchmarkParseWorstCase; tests assert no
// times.
func TestBombsAreRefused(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"merge-9.8k.yaml", []string{"peers[0].node-selectors[0].match-labels: a YAML merge key (<<) is not accepted", "(line 12)"}},
		{"merge-20k.yaml", []string{"peers[0].node-selectors[0].match-labels: a YAML merge key (<<) is not accepted"}},
		{"aliases.yaml", []string{
			"address-pools[0]: a YAML anchor (&) is not accepted",
			"address-pools[0].service-selectors[0].matchExpressions[1]: a YAML alias (*) is not accepted",
			"address-pools[19]: a YAML alias (*) is not accepted",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "bombs", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted a bomb: %+v", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLimits(t *testing.T) {
	// entries(n) has n entries: ":", "[" and n-2 commas.
	entries := func(n int) string { return "removed-nodes: [" + strings.Repeat("a,", n-2) + "a]\n" }
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"over 1 MiB", "cluster-id: " + strings.Repeat("a", MaxFileSize),
			[]string{"cloud-config is 1048588 bytes; the limit is 1 MiB (1048576 bytes)"}},
		{"too many entries", entries(maxEntries + 1),
			[]string{"the file has more than 10000 YAML entries (10001 list items, keys and flow separators)"}},
		// Escapes in a quoted data.config can hide entries from the file.
		{"too many entries in data.config", "kind: ConfigMap\ndata:\n  config: \"removed-nodes:" + strings.Repeat(`\n\x2d a`, maxEntries) + "\"\n",
			[]string{"data.config: the file has more than 10000 YAML entries"}},
		{"UTF-16", "\xff\xfea\x00:\x00", []string{"the file is UTF-16: write it as UTF-8"}},
		{"first 100 problems, and a count", "removed-nodes: [" + strings.Repeat("A,", 149) + "A]\n",
			append(repeat(`is not a valid node name`, maxProblems), "and 50 more problems, not listed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, tt.input, tt.want...)
		})
	}
	// At the limit is fine.
	mustParse(t, entries(maxEntries))

	// A long value is cut short in the message.
	_, err := Parse([]byte("cluster-id: " + strings.Repeat("A", 5000) + "\n"))
	if msg := err.Error(); len(msg) > maxMessage+100 || !strings.Contains(msg, "... (4") || !strings.HasSuffix(msg, "more bytes) (line 1)") {
		t.Errorf("a 5000-byte value is not cut short: %d bytes: %.200s", len(msg), msg)
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestYAMLEntries(t *testing.T) {
	tests := []struct {
		input string
		want  int
	}{
		{"", 0},
		{"a", 0},
		{"a: b\n", 1},
		{"a:\n  - b\n  - c\n", 3},
		{"[a, b, {c: d}]", 5},
		// Inside plain scalars: IPv6 addresses, ranges and names count nothing.
		{"- 2001:db8::/64\n- 203.0.113.10-203.0.113.20\n- address-pools\n", 3},
		{"k: a:b", 1},
		// ... unless ':' ends a token: an anchor, alias or tag, or a quote.
		{"[&a:b]", 2},
		{"[*a:b]", 2},
		{`{"a":b}`, 2},
		{"[a:,b]", 3},
		{"a::", 1},
		{"a: ::1", 3}, // an overcount, which is harmless
		{"---\n...\n---\n", 3},
		// Comment lines count nothing, unless they might end a quoted scalar.
		{"# - a: [b, c]\n  # ---\na: b\n", 1},
		{"a: \"x\n# \" , [b, c]\n", 4},
		{"a: 'x\n#' , [b]\n", 3},
		{"#\xe2\x80\xa8- a\n", 1},
		{"a: b # - c: [d]\n", 4},
	}
	for _, tt := range tests {
		if got := yamlEntries([]byte(tt.input)); got != tt.want {
			t.Errorf("yamlEntries(%q) = %d, want %d", tt.input, got, tt.want)
		}
	}
}

// countNodes counts the nodes the YAML parser builds from data, documents
// included, or returns false if it does not parse.
func countNodes(data []byte) (int, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var count func(*yaml.Node) int
	count = func(n *yaml.Node) int {
		c := 1
		for _, e := range n.Content {
			c += count(e)
		}
		return c
	}
	total := 0
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return total, true
		}
		if err != nil {
			return 0, false
		}
		total += count(&n)
	}
}

// maxNodesPerEntry is what FuzzYAMLEntries holds yamlEntries to: the YAML
// parser builds at most maxNodesPerEntry nodes per entry, plus two (the
// first document and its root).
const maxNodesPerEntry = 4

// FuzzYAMLEntries checks the promise that makes the entries limit a bound
// on parsing work: whatever the bytes, the YAML parser builds no more than
// a few nodes per entry yamlEntries counts.
func FuzzYAMLEntries(f *testing.F) {
	for _, s := range []string{"a: b\n", "- - - a\n", "{a, b, c}", "[&a:b, *a:c]", "---\n...\n", "? a\n: b\n", "a:\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := yamlEntries(data)
		nodes, ok := countNodes(data)
		if ok && nodes > maxNodesPerEntry*entries+2 {
			t.Fatalf("%q: the parser built %d nodes for %d entries", data, nodes, entries)
		}
	})
}

// FuzzNameChecks holds each fast loop of names.go to its Kubernetes rule.
func FuzzNameChecks(f *testing.F) {
	for _, s := range []string{"", "a", "a-b", "-a", "a.b", "A", "a_b", "example.com/key", "/key", "a/b/c", ".", "..", "..a", ".a",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a.", 126) + "a", strings.Repeat("b", 70) + ".com/k"} {
		f.Add(s)
	}
	checks := map[string]nameCheck{"dns1123Label": dns1123Label, "dns1123Subdomain": dns1123Subdomain,
		"qualifiedName": qualifiedName, "labelValue": labelValue, "configMapKey": configMapKey}
	f.Fuzz(func(t *testing.T, s string) {
		for name, c := range checks {
			if fast, full := c.valid(s), len(c.full(s)) == 0; fast != full {
				t.Errorf("%s(%q): loop says %v, Kubernetes %v", name, s, fast, full)
			}
			if len(s) > c.max && len(c.full(s)) == 0 {
				t.Errorf("%s(%q): valid beyond max %d", name, s, c.max)
			}
		}
	})
}

// parseBudget is the time one Parse may take: 100 ms, times 4 because
// the fuzzing binary is instrumented for coverage, which makes Parse 3 to
// 4 times slower (BenchmarkParseWorstCase has the uninstrumented figures).
// FuzzParseTime enforces it only while fuzzing (go test -fuzz, without
// -race; -parallel 1 is kindest to the measure): as a plain test it would
// be a timed assertion on a shared machine.
const parseBudget = 4 * 100 * time.Millisecond

// FuzzParseTime checks that Parse answers in time whatever the input: the
// input itself, and the input repeated up to 1 MiB, which turns any cost
// that grows faster than the input into a slow parse. Time is the
// thread's CPU time (onCPU), and a slow parse is timed three times and
// fails only if all three are over budget, so that a busy machine does
// not fail it.
func FuzzParseTime(f *testing.F) {
	f.Add([]byte("a: [b, c]\n"))
	timed := flag.Lookup("test.fuzz").Value.String() != ""
	f.Fuzz(func(t *testing.T, data []byte) {
		inputs := [][]byte{data}
		if len(data) > 0 && len(data) < MaxFileSize {
			inputs = append(inputs, bytes.Repeat(data, MaxFileSize/len(data)))
		}
		for _, in := range inputs {
			took := parseTime(in)
			for i := 0; i < 2 && took > parseBudget; i++ {
				took = min(took, parseTime(in))
			}
			if timed && took > parseBudget {
				t.Errorf("Parse of %d bytes took %v, over %v: %.200q", len(in), took, parseBudget, in)
			}
		}
	})
}

func parseTime(data []byte) time.Duration {
	return onCPU(func() {
		if _, err := Parse(data); err != nil {
			_ = err.Error()
		}
	})
}

func onClock(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// BenchmarkParseWorstCase times Parse on the worst inputs found for each
// kind of work: YAML nodes at the entries limit, bytes, validation, and
// the bombs that used to stall it.
func BenchmarkParseWorstCase(b *testing.B) {
	upTo := func(prefix string, unit func(i int) string) []byte {
		var buf strings.Builder
		buf.WriteString(prefix)
		n := yamlEntries([]byte(prefix))
		for i := 0; ; i++ {
			u := unit(i)
			k := yamlEntries([]byte(u))
			if buf.Len()+len(u) > MaxFileSize || n+k > maxEntries {
				return []byte(buf.String())
			}
			n += k
			buf.WriteString(u)
		}
	}
	inputs := map[string][]byte{
		"labels": upTo("peers:\n- peer-address: 192.0.2.1\n  peer-asn: 1\n  my-asn: 2\n  node-selectors:\n  - match-labels:\n",
			func(i int) string { return fmt.Sprintf("      example.com/k%x: v%d\n", i, i) }),
		"long-label-keys": upTo("peers:\n- peer-address: 192.0.2.1\n  peer-asn: 1\n  my-asn: 2\n  node-selectors:\n  - match-labels:\n",
			func(i int) string { return fmt.Sprintf("      %0200d.example.com/k%x: v%054d\n", i, i, i) }),
		"addresses-v6": upTo("address-pools:\n- name: a\n  protocol: layer2\n  addresses: [",
			func(i int) string { return fmt.Sprintf("2001:db8::%x:0/120,", i) }),
		"pools": upTo("address-pools:\n", func(i int) string {
			return fmt.Sprintf("- {name: p%d, protocol: layer2, addresses: [2001:db8::%x/128]}\n", i, i)
		}),
		"communities":  upTo("bgp-communities:\n", func(i int) string { return fmt.Sprintf("  k%x: 1:%d\n", i, i%65535) }),
		"unknown-keys": upTo("", func(i int) string { return fmt.Sprintf("k%d:\n", i) }),
		"long-scalar":  []byte("cluster-id: " + strings.Repeat("a", MaxFileSize-20) + "\n"),
		"flow-items":   []byte("zz: [" + strings.Repeat("a,", MaxFileSize/2-10) + "a]\n"),
	}
	for _, f := range []string{"merge-9.8k.yaml", "merge-20k.yaml", "aliases.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "bombs", f))
		if err != nil {
			b.Fatal(err)
		}
		inputs[f] = data
	}
	for name, data := range inputs {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				_, _ = Parse(data)
			}
		})
	}
}
