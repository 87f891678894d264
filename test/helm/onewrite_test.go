package helm

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestOneWriteFinalizer: the chart installs the one-write MutatingAdmission
// Policy only when asked, and then exactly as deploy/'s component has it,
// so the two cannot drift.
func TestOneWriteFinalizer(t *testing.T) {
	e := newEnv(t)
	for _, o := range decode(t, e.template(t, "")) {
		if k := str(o, "kind"); k == "MutatingAdmissionPolicy" || k == "MutatingAdmissionPolicyBinding" {
			t.Errorf("%s rendered by default; it needs Kubernetes v1.36+ and must be asked for", id(o))
		}
	}
	raw, err := os.ReadFile(filepath.Join(e.root, "deploy/components/one-write-finalizer/policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := decode(t, string(raw))
	got := decode(t, e.template(t, "", "--set", "oneWriteFinalizer=true"))
	if len(want) != 2 {
		t.Fatalf("deploy/components/one-write-finalizer/policy.yaml has %d objects, want the policy and its binding", len(want))
	}
	for _, w := range want {
		g := find(t, got, str(w, "kind"), str(w, "metadata", "name"))
		if !reflect.DeepEqual(field(g, "spec"), field(w, "spec")) {
			t.Errorf("%s: the chart's spec differs from deploy/'s:\n%s", id(w), diff(t, g, w))
		}
		if str(g, "apiVersion") != str(w, "apiVersion") {
			t.Errorf("%s: apiVersion %s, deploy/ has %s", id(w), str(g, "apiVersion"), str(w, "apiVersion"))
		}
	}
}
