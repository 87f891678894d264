package config

import (
	"fmt"
	"os"
	"reflect"
	"sort"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultClusterID is the cluster-id used when the file sets none.
const DefaultClusterID = "baremetal"

// Parse reads a cloud-config file, checks all of it, and fills in defaults
// and the parsed (json:"-") fields.
//
// data is either MetalLB's classic config block (the text under data.config
// of its ConfigMap) or that whole ConfigMap manifest: a document with
// "kind: ConfigMap" is taken to be one, and its data.config is parsed.
// The manifest may hold other documents too (a Namespace, say) if exactly
// one of them is a ConfigMap.
//
// An empty file is a valid, empty configuration. On error the result is nil
// and the error is an Errors listing every problem found (the first
// hundred, and how many more). A valid file may still carry Warnings.
//
// Parse answers quickly whatever data holds: see limits.go.
func Parse(data []byte) (*Config, error) {
	if msg := checkSize(data); msg != "" {
		return nil, Errors{{Err: newError(field.ErrorTypeInvalid, nil, "%s", msg)}}
	}
	d := newDecoder()
	var cfg Config
	if root := d.root(data); root != nil {
		d.walk(root, reflect.ValueOf(&cfg).Elem(), step{})
	}
	v := &validator{
		c:    &cfg,
		skip: d.suppressed,
		room: maxProblems - len(d.errs),
	}
	v.validate()
	errs := d.errs
	for _, e := range v.errs {
		errs = append(errs, &FieldError{Err: e, Line: d.lineOf(e.Field)})
	}
	if len(errs) > 0 {
		// File order, so a user can fix the file top to bottom. Problems
		// that are not on any one line come first.
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		if dropped := d.dropped + v.dropped; dropped > 0 {
			errs = append(errs, &FieldError{Err: newError(field.ErrorTypeTooMany, nil, "and %d more problems, not listed", dropped)})
		}
		return nil, errs
	}
	for _, w := range v.warnings {
		cfg.Warnings = append(cfg.Warnings, (&FieldError{Err: w, Line: d.lineOf(w.Field)}).Error())
	}
	return &cfg, nil
}

// Load reads and parses the cloud-config file at path. Errors name the path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading cloud config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cloud config %s: %w", path, err)
	}
	return cfg, nil
}
