package config

import "fmt"

// Parse runs at CCM start-up and in both reload loops, on a file anyone
// with write access to the ConfigMap controls. Whatever the file holds,
// Parse must answer quickly: a stalled parse blocks start-up and every
// later reload. Its work is bounded in three ways.
//
//   - The file is at most MaxFileSize bytes.
//   - YAML aliases and merge keys are refused (see walk and pairs), so
//     nothing is ever expanded: the work follows the size of the file,
//     not what a few kilobytes of nested aliases would expand to.
//   - Before the YAML parser runs, yamlEntries counts the entries the
//     file can hold; more than maxEntries is refused. The YAML parser
//     costs about a microsecond per node, so a megabyte of "a,a,a,..."
//     (half a million nodes) alone would take a second.
//
// Problems beyond maxProblems are counted, not listed, so that a file
// with a million mistakes does not take seconds to describe them.

// MaxFileSize is the largest cloud-config file Parse reads: 1 MiB, the
// limit of a ConfigMap.
const MaxFileSize = 1 << 20

// maxEntries bounds the YAML entries a file may have. MetalLB's example
// pool is 6 entries, and testdata/full-example.yaml, with every key, 140:
// this is room for well over a thousand pools. At the limit, the slowest
// input found (BenchmarkParseWorstCase) takes 20 to 60 ms of CPU on the
// 2-core CI machine.
const maxEntries = 10000

// maxProblems is how many problems Parse lists, and maxMessage how long
// the text of one may be.
const (
	maxProblems = 100
	maxMessage  = 1000
)

// checkSize refuses data that Parse will not read, before any parsing.
func checkSize(data []byte) string {
	switch {
	case len(data) > MaxFileSize:
		return fmt.Sprintf("cloud-config is %d bytes; the limit is 1 MiB (%d bytes)", len(data), MaxFileSize)
	case len(data) >= 2 && (data[0] == 0xfe && data[1] == 0xff || data[0] == 0xff && data[1] == 0xfe):
		// The YAML parser would read it, but yamlEntries counts bytes of
		// UTF-8.
		return "the file is UTF-16: write it as UTF-8"
	}
	if n := yamlEntries(data); n > maxEntries {
		return fmt.Sprintf("the file has more than %d YAML entries (%d list items, keys and flow separators); a cloud-config needs far fewer, and the limit keeps parsing fast", maxEntries, n)
	}
	return ""
}

// yamlEntries is an upper bound, within a small factor, of the nodes the
// YAML parser would build from data, computed from the bytes alone in one
// pass. It counts the characters that can start a YAML node:
//
//   - "-" followed by a blank or line break (a block list item);
//   - ":" that may be a mapping value indicator (see valueIndicator);
//   - "?", ",", "[" and "{" (explicit keys and flow collections);
//   - "..." (a document end, after which a new document may start).
//
// Every node but a document's root follows one of these, and each of them
// starts at most a few nodes ("- a: b" starts a mapping, a key and a
// value): FuzzYAMLEntries holds the parser to maxNodesPerEntry nodes per
// entry, plus the first document and its root.
// Counting a character that is really inside a quoted scalar or a comment
// only makes the bound looser; the one thing skipped, comment lines, is
// skipped only where it provably holds no node.
func yamlEntries(data []byte) int {
	n := 0
	plainColon := false // data[i-1] is a ':' inside a plain scalar
	for i := skipCommentLine(data, 0); i < len(data); i++ {
		c := data[i]
		wasPlainColon := plainColon
		plainColon = false
		switch c {
		case '\n', '\r':
			i = skipCommentLine(data, i+1) - 1
		case '?', ',', '[', '{':
			n++
		case '-':
			if i+1 == len(data) || blankOrBreak(data[i+1]) {
				n++
			}
		case ':':
			if valueIndicator(data, i, wasPlainColon) {
				n++
			} else {
				plainColon = true
			}
		case '.':
			if i+2 < len(data) && data[i+1] == '.' && data[i+2] == '.' {
				n++
				i += 2
			}
		}
	}
	return n
}

// blankOrBreak says whether a byte may be, or begin, YAML white space or
// a line break. Bytes from 0x80 up are taken to be one: the parser also
// breaks lines at U+0085, U+2028 and U+2029.
func blankOrBreak(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0 || c >= 0x80
}

// valueIndicator says whether the ':' at data[i] may be a mapping value
// indicator. The parser takes it for one when it is followed by a blank or
// line break, or when it starts a token inside a flow collection. It does
// not start a token when it continues a plain scalar: the one before it is
// a letter or digit that is not the end of an anchor, alias or tag name,
// or is a ':' that was itself inside the scalar. So "2001:db8::1" counts
// nothing, and "&a:" counts.
func valueIndicator(data []byte, i int, afterPlainColon bool) bool {
	if i+1 == len(data) {
		return true
	}
	switch next := data[i+1]; {
	case blankOrBreak(next), next == ',', next == '[', next == ']', next == '{', next == '}', next == '?':
		return true
	}
	if afterPlainColon {
		return false
	}
	if i == 0 || !alnum(data[i-1]) {
		return true
	}
	// The run of name characters before ':' must not follow '&', '*' or
	// '!', which would make it an anchor, alias or tag.
	j := i - 1
	for j >= 0 && (alnum(data[j]) || data[j] == '-' || data[j] == '_') {
		j--
	}
	return j >= 0 && (data[j] == '&' || data[j] == '*' || data[j] == '!')
}

func alnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// skipCommentLine returns the end of the line starting at data[i] if that
// line is only a comment, else i. A line whose first non-blank character
// is '#' holds no node: it is a comment, or it is inside a block or
// multi-line scalar. The exception is a line that ends a quoted scalar, so
// a line with a quote is not skipped; nor is one with a byte from 0x80 up,
// which may hide a line break.
func skipCommentLine(data []byte, i int) int {
	j := i
	for j < len(data) && (data[j] == ' ' || data[j] == '\t') {
		j++
	}
	if j == len(data) || data[j] != '#' {
		return i
	}
	for ; j < len(data) && data[j] != '\n' && data[j] != '\r'; j++ {
		if c := data[j]; c == '"' || c == '\'' || c >= 0x80 {
			return i
		}
	}
	return j
}
