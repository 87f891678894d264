package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Decoding is done by hand, walking the YAML node tree against the Go types,
// rather than with a strict unmarshaller, for four reasons:
//
//   - every problem is reported, not just the first one, each with the path
//     of the key and its line;
//   - unknown keys are named together with where they were, and a likely
//     intended key is suggested;
//   - string fields take the raw text of any scalar, as MetalLB's yaml.v2
//     decoding did: "name: 2024" or "password: 0123" keep their text instead
//     of failing or turning into 83;
//   - booleans accept YAML 1.1's yes/no/on/off, which MetalLB files use.
//
// The walk stores each good value straight into Config, by reflection, and
// leaves a bad one at its zero value. The json tags are the single source
// of key names.

type decoder struct {
	errs Errors
	// lines is the line of every path present in the file, by its text.
	lines map[string]int
	// bad holds the paths whose value was dropped because it had the wrong
	// type; validation skips them so that one mistake gives one error.
	bad map[string]bool
	// lineOffset converts lines of a ConfigMap's data.config block to
	// lines of the file; noLines is set when that is not possible.
	lineOffset int
	noLines    bool
	// dropped counts the problems found beyond maxProblems.
	dropped int
}

func newDecoder() *decoder {
	return &decoder{
		lines: map[string]int{},
		bad:   map[string]bool{},
	}
}

func (d *decoder) line(n *yaml.Node) int {
	if d.noLines || n == nil || n.Line <= 0 {
		return 0
	}
	return n.Line + d.lineOffset
}

// addf reports a problem of type t at path, on line.
func (d *decoder) addf(t field.ErrorType, path *field.Path, line int, format string, args ...any) {
	if d.full() {
		d.dropped++
		return
	}
	d.errs = append(d.errs, &FieldError{Err: newError(t, path, format, args...), Line: line})
}

// full says whether maxProblems are listed already; callers check it
// before doing work only to describe a problem.
func (d *decoder) full() bool {
	return len(d.errs) >= maxProblems
}

// typeErrorf reports a value of the wrong type and drops it.
func (d *decoder) typeErrorf(path step, n *yaml.Node, format string, args ...any) {
	d.bad[path.text] = true
	d.addf(field.ErrorTypeTypeInvalid, path.path, d.line(n), format, args...)
}

// suppressed says whether the path with this text is, or is inside, a
// value that was dropped.
func (d *decoder) suppressed(path string) bool {
	found := false
	ancestors(path, func(p string) bool {
		found = d.bad[p]
		return !found
	})
	return found
}

// lineOf is the line of the path with this text, or of its nearest
// ancestor present in the file.
func (d *decoder) lineOf(path string) int {
	line := 0
	ancestors(path, func(p string) bool {
		l, ok := d.lines[p]
		line = l
		return !ok
	})
	return line
}

// readDocuments parses every YAML document of data. The YAML parser is
// third-party code fed untrusted bytes; a panic in it becomes an error.
func readDocuments(data []byte) (docs []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = *n.Content[0]
		}
		if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
			continue // an empty document, e.g. after a trailing "---"
		}
		docs = append(docs, &n)
	}
}

var (
	yamlLine     = regexp.MustCompile(`line (\d+)`)
	quotedAnchor = regexp.MustCompile(`anchor '[^']*'`)
)

// yamlError is the YAML parser's error as shown to the user. The parser
// quotes anchor names, which are the file's text; nothing else it says is.
func yamlError(err error) string {
	return quotedAnchor.ReplaceAllString(err.Error(), "anchor")
}

// root finds the config block in data: the only document, or the
// data.config key of a ConfigMap. It returns nil for an empty file, or when
// it reported an error.
func (d *decoder) root(data []byte) *yaml.Node {
	docs, err := readDocuments(data)
	if err != nil {
		d.addf(field.ErrorTypeInvalid, nil, 0, "not valid YAML: %s", yamlError(err))
		return nil
	}
	var maps []*yaml.Node
	for _, doc := range docs {
		if kind := d.k8sKind(doc); kind == "ConfigMap" {
			maps = append(maps, doc)
		}
	}
	switch {
	case len(docs) == 0:
		return nil
	case len(docs) == 1 && len(maps) == 0:
		if kind := d.k8sKind(docs[0]); kind != "" {
			d.addf(field.ErrorTypeNotSupported, field.NewPath("kind"), d.line(docs[0]), "%q is not supported: give MetalLB's classic configuration, either its ConfigMap (kind: ConfigMap, v0.9 to v0.12) or that ConfigMap's config block", kind)
			return nil
		}
		return docs[0]
	case len(maps) == 1:
		return d.configMapBlock(maps[0])
	default:
		d.addf(field.ErrorTypeInvalid, nil, 0, "the file has %d YAML documents, %d of them ConfigMaps: give one config block, or a file with exactly one ConfigMap holding data.config", len(docs), len(maps))
		return nil
	}
}

// k8sKind is the "kind" of a document that looks like a Kubernetes object.
func (d *decoder) k8sKind(doc *yaml.Node) string {
	if doc.Kind != yaml.MappingNode {
		return ""
	}
	if k := lookup(doc, "kind"); k != nil && k.Kind == yaml.ScalarNode {
		return k.Value
	}
	return ""
}

// lookup finds key in a mapping node, without reporting anything.
// Aliases are not followed: they are refused (see noAliases).
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// configMapBlock parses data.config of a ConfigMap: a MetalLB user's
// existing manifest works as the cloud-config file unchanged. The rest of
// the ConfigMap (metadata, other data keys) is ignored.
func (d *decoder) configMapBlock(cm *yaml.Node) *yaml.Node {
	block := lookup(lookup(cm, "data"), "config")
	if block == nil || block.Kind != yaml.ScalarNode || block.ShortTag() == "!!null" {
		d.addf(field.ErrorTypeRequired, dataConfig, d.line(cm), "the ConfigMap has no data.config string: MetalLB's configuration is the text under data.config")
		return nil
	}
	// A literal block ("config: |") keeps line breaks, so its line N is line
	// block.Line+N of the file. Other styles fold lines; give no lines then.
	if block.Style == yaml.LiteralStyle {
		d.lineOffset = block.Line
	} else {
		d.noLines = true
	}
	// The block's text is not the file's: escapes in a quoted string can
	// make it hold more entries than the file seemed to.
	if msg := checkSize([]byte(block.Value)); msg != "" {
		d.addf(field.ErrorTypeInvalid, dataConfig, 0, "%s", msg)
		return nil
	}
	docs, err := readDocuments([]byte(block.Value))
	if err != nil {
		msg := yamlError(err)
		if !d.noLines {
			msg = yamlLine.ReplaceAllStringFunc(msg, func(s string) string {
				n, _ := strconv.Atoi(strings.TrimPrefix(s, "line "))
				return "line " + strconv.Itoa(n+d.lineOffset)
			})
		}
		d.addf(field.ErrorTypeInvalid, dataConfig, 0, "not valid YAML: %s", msg)
		return nil
	}
	switch len(docs) {
	case 0:
		return nil
	case 1:
		return docs[0]
	}
	d.addf(field.ErrorTypeInvalid, dataConfig, 0, "holds %d YAML documents, want one", len(docs))
	return nil
}

var durationType = reflect.TypeOf(Duration{})

var (
	// dataConfig is where a ConfigMap holds the config block.
	dataConfig = field.NewPath("data", "config")
	// topLevel names the file's top level, where unknown keys are
	// reported: "top level: unknown key ...".
	topLevel = field.NewPath("top level")
)

// walk checks n against the type of v, which must be settable, and stores
// its value there. set is false when nothing was stored: the value is null,
// or it was dropped, with an error. The caller records the line of path.
func (d *decoder) walk(n *yaml.Node, v reflect.Value, path step) (set bool) {
	if n.Kind == yaml.AliasNode {
		d.typeErrorf(path, n, "a YAML alias (*) is not accepted: %s", noAliases)
		return false
	}
	if n.Anchor != "" {
		d.addf(field.ErrorTypeForbidden, path.path, d.line(n), "a YAML anchor (&) is not accepted: %s", noAliases)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return false
	}
	t := v.Type()
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			d.typeErrorf(path, n, "want a duration like \"90s\", got %s", d.describe(path, n))
			return false
		}
		dur, err := parseDuration(n.Value)
		if err != nil {
			d.typeErrorf(path, n, "%v", err)
			return false
		}
		v.Set(reflect.ValueOf(Duration{dur}))
		return true
	}
	switch t.Kind() {
	case reflect.Pointer:
		elem := reflect.New(t.Elem())
		if !d.walk(n, elem.Elem(), path) {
			return false
		}
		v.Set(elem)
		return true
	case reflect.Struct:
		return d.walkStruct(n, v, path)
	case reflect.Map:
		return d.walkMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeErrorf(path, n, "want a list, got %s", d.describe(path, n))
			return false
		}
		// An element that is null or dropped stays the zero value.
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			ip := path.index(i)
			d.lines[ip.text] = d.line(e)
			d.walk(e, s.Index(i), ip)
		}
		v.Set(s)
		return true
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.typeErrorf(path, n, "want a string, got %s", d.describe(path, n))
			return false
		}
		v.SetString(n.Value)
		return true
	case reflect.Bool:
		if b, ok := yamlBool(n); ok {
			v.SetBool(b)
			return true
		}
		d.typeErrorf(path, n, "want true or false, got %s", d.describe(path, n))
		return false
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return d.walkInt(n, v, path)
	}
	// Only reachable if a field of an unsupported type is added to Config.
	d.typeErrorf(path, n, "internal error: cannot decode into %v", t)
	return false
}

func (d *decoder) walkInt(n *yaml.Node, v reflect.Value, path step) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			d.typeErrorf(path, n, "want a whole number, got the string %q (remove the quotes)", n.Value)
		} else {
			d.typeErrorf(path, n, "want a whole number, got %s", d.describe(path, n))
		}
		return false
	}
	t := v.Type()
	var lo, hi int64
	var uhi uint64
	unsigned := false
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		unsigned = true
		uhi = uint64(1)<<(t.Bits()-1)<<1 - 1
	default:
		lo, hi = -1<<(t.Bits()-1), 1<<(t.Bits()-1)-1
	}
	var i int64
	if err := n.Decode(&i); err == nil {
		if (unsigned && (i < 0 || uint64(i) > uhi)) || (!unsigned && (i < lo || i > hi)) {
			d.typeErrorf(path, n, "%s is out of range: want %s", n.Value, numRange(lo, hi, uhi))
			return false
		}
		if unsigned {
			v.SetUint(uint64(i))
		} else {
			v.SetInt(i)
		}
		return true
	}
	var u uint64
	if err := n.Decode(&u); err == nil && unsigned && u <= uhi {
		v.SetUint(u)
		return true
	}
	d.typeErrorf(path, n, "%s is out of range: want %s", n.Value, numRange(lo, hi, uhi))
	return false
}

func numRange(lo, hi int64, uhi uint64) string {
	if uhi != 0 {
		return fmt.Sprintf("0 to %d", uhi)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// yamlBool accepts YAML 1.1 booleans, as MetalLB's yaml.v2 did, unless
// quoted.
func yamlBool(n *yaml.Node) (value, ok bool) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "true", "yes", "y", "on":
		return true, true
	case "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// describe names what n is for an error about the value at path: a
// scalar's text, quoted, except where it may be a secret.
func (d *decoder) describe(path step, n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if secretPath(path.text) {
			return "a value " + hidden(n.Value)
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// secretPath says whether the value or the keys at path may be a secret,
// and so must never be quoted in an error: a peer's password and
// password-secret with everything in them, and a peer itself, where a
// mis-indented password lands as an unknown key or a bare scalar.
func secretPath(path string) bool {
	if path == "peers" {
		return true
	}
	rest, ok := strings.CutPrefix(path, "peers[")
	if !ok {
		return false
	}
	_, rest, ok = strings.Cut(rest, "]")
	return ok && (rest == "" || strings.HasPrefix(rest, ".password"))
}

// hidden stands for a value or key that must not be shown, after "a
// value" or "key".
func hidden(s string) string {
	return fmt.Sprintf("of %d bytes (not shown: it may be a secret)", len(s))
}

// noAliases ends every error about anchors, aliases and merge keys.
// Following aliases is what lets a few kilobytes of YAML expand to
// billions of values; a cloud-config never needs them.
const noAliases = "write the values out (anchors, aliases and merge keys are refused: they can expand a small file to billions of values)"

type pair struct{ k, v *yaml.Node }

// pairs lists the entries of a mapping, reporting keys that appear twice
// and merge keys ("<<: *x"), which are refused.
func (d *decoder) pairs(n *yaml.Node, path step) []pair {
	var out []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			// The keys it would have brought are missing: checking the
			// rest of this mapping would only report them as such.
			d.typeErrorf(path, k, "a YAML merge key (<<) is not accepted: %s", noAliases)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.addf(field.ErrorTypeTypeInvalid, path.path, d.line(k), "keys must be strings, got %s", d.describe(path, k))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.addf(field.ErrorTypeDuplicate, path.path, d.line(k), "key %s appears twice, first on line %d", d.quoteKey(path, k.Value), d.line(prev))
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	return out
}

// quoteKey quotes a mapping key for an error, to follow "key", unless it
// may be a secret: a key where secrets are that is none of the keys
// known there.
func (d *decoder) quoteKey(path step, key string) string {
	if secretPath(path.text) && !isPeerKey(key) {
		return hidden(key)
	}
	return strconv.Quote(key)
}

// isPeerKey says whether key is one of a peer's keys or password-secret's.
func isPeerKey(key string) bool {
	for _, t := range []reflect.Type{reflect.TypeOf(Peer{}), reflect.TypeOf(SecretKeyRef{})} {
		for _, f := range fields(t) {
			if f.name == key {
				return true
			}
		}
	}
	return false
}

func (d *decoder) walkMap(n *yaml.Node, v reflect.Value, path step) bool {
	if n.Kind != yaml.MappingNode {
		d.typeErrorf(path, n, "want a mapping, got %s", d.describe(path, n))
		return false
	}
	t := v.Type()
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, path) {
		kp := path.child(p.k.Value)
		d.lines[kp.text] = d.line(p.k)
		e := reflect.New(t.Elem()).Elem()
		if d.walk(p.v, e, kp) {
			m.SetMapIndex(reflect.ValueOf(p.k.Value).Convert(t.Key()), e)
		}
	}
	v.Set(m)
	return true
}

type fieldInfo struct {
	name  string
	index int
}

// fieldCache holds fields' answers; the types of Config are few and fixed.
var fieldCache sync.Map // reflect.Type -> []fieldInfo

// fields lists the JSON keys of a struct type: the json tags are the
// file's key names.
func fields(t reflect.Type) []fieldInfo {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]fieldInfo)
	}
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		out = append(out, fieldInfo{name, i})
	}
	fieldCache.Store(t, out)
	return out
}

func (d *decoder) walkStruct(n *yaml.Node, v reflect.Value, path step) bool {
	if n.Kind != yaml.MappingNode {
		d.typeErrorf(path, n, "want a mapping, got %s", d.describe(path, n))
		return false
	}
	fs := fields(v.Type())
	for _, p := range d.pairs(n, path) {
		key := p.k.Value
		var f *fieldInfo
		for i := range fs {
			if fs[i].name == key {
				f = &fs[i]
			}
		}
		if f == nil {
			d.unknownKey(path, p.k, fs)
			continue
		}
		kp := path.child(key)
		d.lines[kp.text] = d.line(p.k)
		d.walk(p.v, v.Field(f.index), kp)
	}
	return true
}

func (d *decoder) unknownKey(path step, k *yaml.Node, fs []fieldInfo) {
	where := path.path
	if where == nil {
		where = topLevel
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.name)
	}
	if d.full() {
		d.dropped++
		return
	}
	msg := "unknown key " + d.quoteKey(path, k.Value)
	if s := suggest(k.Value, names); s != "" {
		msg += fmt.Sprintf(", did you mean %q?", s)
	} else {
		sort.Strings(names)
		msg += "; known keys here: " + strings.Join(names, ", ")
	}
	d.addf(field.ErrorTypeNotSupported, where, d.line(k), "%s", msg)
}

// suggest finds the known key a typo most likely meant: the same key in
// another spelling (matchLabels for match-labels), or one within two edits.
func suggest(key string, names []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 3
	for _, name := range names {
		if norm(name) == norm(key) {
			return name
		}
		if dist := editDistance(norm(key), norm(name)); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // not worth comparing, and bounds the work on junk input
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseDuration parses a Duration's text; the error names the value.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like \"90s\": %v", s, err)
	}
	return v, nil
}
