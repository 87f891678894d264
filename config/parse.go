package config

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
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
// and the error is an Errors listing every problem found.
func Parse(data []byte) (*Config, error) {
	d := newDecoder()
	var cfg Config
	if root := d.root(data); root != nil {
		tree, ok := d.walk(root, reflect.TypeOf(cfg), "")
		if ok && tree != nil {
			// The tree only holds values of the right JSON type and range, so
			// this cannot fail; if it does, it is a bug worth reporting.
			js, err := json.Marshal(tree)
			if err == nil {
				err = json.Unmarshal(js, &cfg)
			}
			if err != nil {
				d.addf("", 0, "internal error: %v", err)
			}
		}
	}
	if d.tooBig {
		// An alias bomb is not a configuration worth checking further.
		return nil, d.errs
	}
	v := &validator{d: d, c: &cfg}
	v.validate()
	if len(d.errs) > 0 {
		// File order, so a user can fix the file top to bottom. Problems
		// that are not on any one line come first.
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		return nil, d.errs
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
