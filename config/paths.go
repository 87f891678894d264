package config

import (
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Paths name a place in the file the way a user reads it
// ("address-pools[1].addresses[0]") and are field.Paths, as in Kubernetes'
// own validation. The root, the file as a whole, is the nil path.
//
// Map keys are the one addition: field.Path.Key writes a key bare, and a
// label key such as "x.io/y" would then read as two fields. child quotes
// such keys.

// child is the path of a mapping key under path: path.key for a plain key,
// path["x.io/y"] for one (a label name) that would otherwise be ambiguous.
func child(path *field.Path, key string) *field.Path {
	if !simpleKey(key) {
		return path.Key(quote(key))
	}
	return path.Child(key)
}

// step is a path with its text, for the decoder, which keys what it
// learns by the text of every path in the file. Each step adds its
// segment to its parent's text, as field.Path.String writes it, where
// String would render the whole path again: Parse must stay fast (see
// limits.go). TestStepText holds the two to the same text.
type step struct {
	path *field.Path
	text string
}

// child is the step to a mapping key, as child is for paths.
func (s step) child(key string) step {
	switch {
	case !simpleKey(key):
		q := quote(key)
		return step{s.path.Key(q), s.text + "[" + q + "]"}
	case s.path == nil:
		return step{s.path.Child(key), key}
	}
	return step{s.path.Child(key), s.text + "." + key}
}

// index is the step to a list item.
func (s step) index(i int) step {
	return step{s.path.Index(i), s.text + "[" + strconv.Itoa(i) + "]"}
}

// pathText is path as the user reads it, "" for the file as a whole.
func pathText(path *field.Path) string {
	if path == nil {
		return ""
	}
	return path.String()
}

// simpleKey says whether key can follow a "." in a path unquoted. A loop,
// not a regexp: it runs for every key of the file.
func simpleKey(key string) bool {
	for i := 0; i < len(key); i++ {
		if c := key[i]; !alnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return key != ""
}

// quote is strconv.Quote, with a shortcut for the printable ASCII that
// label keys are: paths are built for every key of the file.
func quote(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	return `"` + s + `"`
}

// ancestors calls f with the text of path and of each of its ancestors,
// nearest first, down to the root's "", until f returns false.
//
// field.Path keeps its parent to itself, so this works on the text: an
// ancestor's text is the prefix before a "." or "[" that starts a segment.
// A "." or "[" inside a quoted key gives a prefix that is no path's text
// (it ends inside an open `["`, whose quote no key can close early, since
// quote escapes quotes); callers look prefixes up among the paths of the
// file, so such a prefix matches nothing.
func ancestors(path string, f func(string) bool) {
	for i := len(path); i >= 0; i-- {
		if i < len(path) && i > 0 && path[i] != '.' && path[i] != '[' {
			continue
		}
		if !f(path[:i]) {
			return
		}
	}
}
