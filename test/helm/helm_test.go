package helm

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

const (
	// namespace is where deploy/ puts everything; the chart uses the
	// release namespace, so rendering into this one must give the same.
	namespace = "baremetal-system"
	release   = "baremetal"
	chartPath = "deploy/helm/cloud-provider-baremetal"
	// helmBinary is built next to the control-plane tools.
	helmBinary = "helm"
	// commandTimeout bounds one helm or kubectl run; the box may be loaded.
	commandTimeout = 2 * time.Minute
)

// valueSets are the renderings every test covers: the chart's defaults and
// its two examples. overlay names the kustomize overlay that must render the
// same objects, where there is one.
var valueSets = []struct {
	name    string
	values  string // relative to the chart; "" for the defaults
	overlay string // relative to the repository root
	// protocol every pool of the rendered cloud-config must have.
	protocol string
	// memberlistSecret: whether the chart creates the Secret.
	memberlistSecret bool
}{
	{name: "default", overlay: "deploy/overlays/layer2", protocol: "layer2", memberlistSecret: true},
	{name: "layer2", values: "examples/layer2.yaml", protocol: "layer2", memberlistSecret: false},
	{name: "bgp", values: "examples/bgp.yaml", overlay: "deploy/overlays/bgp", protocol: "bgp", memberlistSecret: true},
}

// env is what the tests run helm and kubectl with.
type env struct {
	root, chart, helm, kubectl string
	// home keeps helm's cache, config and data out of the user's home.
	home string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools, err := controlplane.ToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		root:    root,
		chart:   filepath.Join(root, chartPath),
		helm:    filepath.Join(tools, helmBinary),
		kubectl: filepath.Join(tools, controlplane.KubectlBinary),
		home:    t.TempDir(),
	}
	for _, b := range []string{e.helm, e.kubectl} {
		if st, err := os.Stat(b); err != nil || st.Mode()&0o111 == 0 {
			t.Fatalf("%s is missing: run `make tools` (test/tools/build.sh) at the repository root", b)
		}
	}
	return e
}

func (e *env) run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(e.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(e.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(e.home, "data"),
		// No cluster unless a test passes --kubeconfig.
		"KUBECONFIG="+filepath.Join(e.home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (e *env) helmArgs(values string, args ...string) []string {
	if values != "" {
		args = append(args, "-f", filepath.Join(e.chart, values))
	}
	return args
}

// template renders the chart as `helm template` does, into namespace.
func (e *env) template(t *testing.T, values string, extra ...string) string {
	t.Helper()
	args := e.helmArgs(values, append([]string{"template", release, e.chart, "--namespace", namespace}, extra...)...)
	out, err := e.run(t, e.helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// object is one decoded manifest.
type object = map[string]any

func decode(t *testing.T, stream string) []object {
	t.Helper()
	var objs []object
	for i, doc := range strings.Split(stream, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

func field(o object, path ...string) any {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func str(o object, path ...string) string {
	s, _ := field(o, path...).(string)
	return s
}

func id(o object) string {
	id := str(o, "kind") + "/"
	if ns := str(o, "metadata", "namespace"); ns != "" {
		id += ns + "/"
	}
	return id + str(o, "metadata", "name")
}

func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if str(o, "kind") == kind && str(o, "metadata", "name") == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// TestLint runs `helm lint --strict` (warnings fail too) on every value set.
func TestLint(t *testing.T) {
	e := newEnv(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			out, err := e.run(t, e.helm, e.helmArgs(vs.values, "lint", "--strict", e.chart)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestTemplate renders every value set and checks what the values promise:
// a cloud-config our own parser accepts with the expected pools, the
// memberlist Secret created or not, images, node selectors.
func TestTemplate(t *testing.T) {
	e := newEnv(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := decode(t, e.template(t, vs.values))
			for _, o := range objs {
				if ns := str(o, "metadata", "namespace"); ns != "" && ns != namespace && ns != "kube-system" {
					t.Errorf("%s: namespace %q, want %s (the release namespace) or kube-system", id(o), ns, namespace)
				}
			}

			cm := find(t, objs, "ConfigMap", "baremetal-cloud-config")
			cc := str(cm, "data", "cloud-config.yaml")
			cfg, err := config.Parse([]byte(cc))
			if err != nil {
				t.Fatalf("rendered cloud-config does not parse: %v\n%s", err, cc)
			}
			if len(cfg.Pools) == 0 {
				t.Fatalf("rendered cloud-config has no pools:\n%s", cc)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("rendered cloud-config has warnings: %v\n%s", cfg.Warnings, cc)
			}
			for _, p := range cfg.Pools {
				if string(p.Protocol) != vs.protocol {
					t.Errorf("pool %s: protocol %q, want %q", p.Name, p.Protocol, vs.protocol)
				}
			}
			if vs.protocol == "bgp" && len(cfg.Peers) == 0 {
				t.Errorf("bgp cloud-config without peers:\n%s", cc)
			}

			var secret object
			for _, o := range objs {
				if str(o, "kind") == "Secret" {
					secret = o
				}
			}
			if got := secret != nil; got != vs.memberlistSecret {
				t.Fatalf("memberlist Secret rendered = %v, want %v", got, vs.memberlistSecret)
			}
			if secret != nil {
				key, err := base64.StdEncoding.DecodeString(str(secret, "data", "secretkey"))
				if err != nil || len(key) < 32 {
					t.Errorf("generated memberlist key %q: %d bytes, %v; want a random base64 key of 32 bytes or more", str(secret, "data", "secretkey"), len(key), err)
				}
			}

			ds := find(t, objs, "DaemonSet", "baremetal-announcer")
			args, _ := field(ds, "spec", "template", "spec", "containers").([]any)
			if len(args) != 1 {
				t.Fatalf("announcer containers: %v", args)
			}
			if got := fmt.Sprint(field(args[0].(object), "args")); !strings.Contains(got, "--memberlist-secret=baremetal-memberlist") {
				t.Errorf("announcer args %s lack --memberlist-secret=baremetal-memberlist", got)
			}
			if vs.name == "layer2" {
				if got := fmt.Sprint(field(ds, "spec", "template", "spec", "nodeSelector")); got != "map[example.com/lb-announcer:true]" {
					t.Errorf("announcer nodeSelector = %s, want the example's", got)
				}
				if got := str(args[0].(object), "image"); got != "ghcr.io/cloud-provider-baremetal/baremetal-announcer:v0.1.0" {
					t.Errorf("announcer image = %s, want the pinned tag v0.1.0", got)
				}
			}
		})
	}
}

// TestTemplateValues checks single values: digests, replicas, tolerations,
// extra args, metrics off, and a given memberlist key.
func TestTemplateValues(t *testing.T) {
	e := newEnv(t)
	digest := "sha256:" + strings.Repeat("ab", 32)
	objs := decode(t, e.template(t, "",
		"--set", "ccm.image.digest="+digest,
		"--set", "ccm.replicas=3",
		"--set", "ccm.nodeSelector.node-role\\.kubernetes\\.io/control-plane=",
		"--set", "announcer.tolerations=null",
		"--set", "announcer.extraArgs={--v=4}",
		"--set", "metrics.services=false",
		"--set", "metrics.readerClusterRole=false",
		"--set", "memberlist.key=my-key",
	))
	dep := find(t, objs, "Deployment", "baremetal-cloud-controller-manager")
	if got := field(dep, "spec", "replicas"); got != float64(3) {
		t.Errorf("replicas = %v, want 3", got)
	}
	ccm := field(dep, "spec", "template", "spec", "containers").([]any)[0].(object)
	if got, want := str(ccm, "image"), "ghcr.io/cloud-provider-baremetal/baremetal-cloud-controller-manager@"+digest; got != want {
		t.Errorf("image = %s, want %s", got, want)
	}
	if got := fmt.Sprint(field(dep, "spec", "template", "spec", "nodeSelector")); got != "map[node-role.kubernetes.io/control-plane:]" {
		t.Errorf("ccm nodeSelector = %s", got)
	}
	ds := find(t, objs, "DaemonSet", "baremetal-announcer")
	if got := field(ds, "spec", "template", "spec", "tolerations"); got != nil {
		t.Errorf("announcer tolerations = %v, want none", got)
	}
	ann := field(ds, "spec", "template", "spec", "containers").([]any)[0].(object)
	if got := fmt.Sprint(field(ann, "args")); !strings.HasSuffix(got, " --v=4]") {
		t.Errorf("announcer args = %s, want --v=4 last", got)
	}
	for _, o := range objs {
		if k := str(o, "kind"); k == "Service" || (k == "ClusterRole" && str(o, "metadata", "name") == "baremetal-metrics-reader") {
			t.Errorf("%s rendered with metrics off", id(o))
		}
	}
	secret := find(t, objs, "Secret", "baremetal-memberlist")
	if got := str(secret, "data", "secretkey"); got != base64.StdEncoding.EncodeToString([]byte("my-key")) {
		t.Errorf("secretkey = %s, want base64 of the given key", got)
	}
}

// TestBadValues: a mistyped or misspelt value is refused, naming it.
func TestBadValues(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		set  string
		want string // in the error
	}{
		{"ccm.replicas=two", "replicas"},
		{"ccm.replica=3", "replica"},
		{"ccm.image.digest=abc", "digest"},
		{"cloudConfig.address-pools=null", "address-pools"},
		{"announcer.image.pullPolicy=Sometimes", "pullPolicy"},
		{"metric.services=false", "metric"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := e.run(t, e.helm, "template", release, e.chart, "--namespace", namespace, "--set", tc.set)
			if err == nil {
				t.Fatalf("rendered without error:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q: %v", tc.want, err)
			}
		})
	}
}

// helmOnlyLabels are the labels the chart adds that kustomize does not.
var helmOnlyLabels = []string{"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"}

// normalize removes what legitimately differs between the chart and
// deploy/: Helm's own labels, and the cloud-config's text (comments,
// quoting), which is compared as the YAML value it holds.
func normalize(t *testing.T, o object) {
	t.Helper()
	for _, path := range [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}} {
		if labels, ok := field(o, path...).(map[string]any); ok {
			for _, l := range helmOnlyLabels {
				delete(labels, l)
			}
		}
	}
	if str(o, "kind") == "ConfigMap" && str(o, "metadata", "name") == "baremetal-cloud-config" {
		data := field(o, "data").(map[string]any)
		var v any
		if err := yaml.Unmarshal([]byte(data["cloud-config.yaml"].(string)), &v); err != nil {
			t.Fatalf("cloud-config: %v", err)
		}
		data["cloud-config.yaml"] = v
	}
}

var rbacKinds = map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}

// TestRBACMatchesDeploy: the chart's RBAC is deploy/'s, object for object
// and rule for rule, so that neither can grant what the other does not.
func TestRBACMatchesDeploy(t *testing.T) {
	compareWithKustomize(t, func(kind string) bool { return rbacKinds[kind] })
}

// TestObjectsMatchDeploy: with the same settings the chart renders the same
// Deployment, DaemonSet, Services and cloud-config as the kustomize
// overlays, apart from Helm's labels; the only objects of one and not the
// other are the Namespace (deploy/ only; `helm install` cannot label the
// namespace it installs into) and the memberlist Secret (chart only).
func TestObjectsMatchDeploy(t *testing.T) {
	compareWithKustomize(t, func(kind string) bool { return !rbacKinds[kind] })
}

func compareWithKustomize(t *testing.T, want func(kind string) bool) {
	e := newEnv(t)
	for _, vs := range valueSets {
		if vs.overlay == "" {
			continue
		}
		t.Run(vs.name, func(t *testing.T) {
			kout, err := e.run(t, e.kubectl, "kustomize", filepath.Join(e.root, vs.overlay))
			if err != nil {
				t.Fatal(err)
			}
			kobjs, hobjs := map[string]object{}, map[string]object{}
			for _, o := range decode(t, kout) {
				if want(str(o, "kind")) && !(str(o, "kind") == "Namespace" && str(o, "metadata", "name") == namespace) {
					normalize(t, o)
					kobjs[id(o)] = o
				}
			}
			for _, o := range decode(t, e.template(t, vs.values)) {
				if want(str(o, "kind")) && !(str(o, "kind") == "Secret" && str(o, "metadata", "name") == "baremetal-memberlist") {
					normalize(t, o)
					hobjs[id(o)] = o
				}
			}
			if len(kobjs) == 0 {
				t.Fatalf("kubectl kustomize %s rendered none of these objects", vs.overlay)
			}
			var ids []string
			for k := range kobjs {
				ids = append(ids, k)
			}
			for k := range hobjs {
				if _, ok := kobjs[k]; !ok {
					ids = append(ids, k)
				}
			}
			sort.Strings(ids)
			equal := 0
			for _, k := range ids {
				ko, kok := kobjs[k]
				ho, hok := hobjs[k]
				switch {
				case !hok:
					t.Errorf("%s: in %s, not rendered by the chart", k, vs.overlay)
				case !kok:
					t.Errorf("%s: rendered by the chart, not in %s", k, vs.overlay)
				case !reflect.DeepEqual(ko, ho):
					t.Errorf("%s differs between %s and the chart:\n%s", k, vs.overlay, diff(t, ko, ho))
				default:
					equal++
				}
			}
			t.Logf("%d of %d objects equal", equal, len(ids))
		})
	}
}

// diff shows both objects' YAML from a little before their first
// difference.
func diff(t *testing.T, a, b object) string {
	t.Helper()
	ay, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	by, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	al, bl := strings.Split(string(ay), "\n"), strings.Split(string(by), "\n")
	first := 0
	for first < len(al) && first < len(bl) && al[first] == bl[first] {
		first++
	}
	from := max(first-3, 0)
	excerpt := func(lines []string) string {
		return strings.Join(lines[from:min(from+12, len(lines))], "\n  ")
	}
	return fmt.Sprintf("first difference at line %d of the YAML\ndeploy/:\n  %s\nchart:\n  %s", first+1, excerpt(al), excerpt(bl))
}

// TestAgainstAPIServer sends every rendering to a real kube-apiserver as a
// server-side dry-run (schema, defaulting and admission, nothing stored),
// then installs and upgrades the default release for real, to check that
// a generated memberlist key survives upgrades.
func TestAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts etcd and kube-apiserver")
	}
	e := newEnv(t)
	cp := controlplane.StartForTest(t, controlplane.Options{})
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := e.run(t, e.kubectl, append([]string{"--kubeconfig", cp.AdminKubeconfig()}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// What deploy/README.md tells Helm users to do first.
	kubectl("create", "namespace", namespace)
	kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=privileged")

	for _, vs := range valueSets {
		t.Run("dry-run/"+vs.name, func(t *testing.T) {
			rendered := e.template(t, vs.values)
			file := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(file, []byte(rendered), 0o600); err != nil {
				t.Fatal(err)
			}
			out := kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=helm-test", "-f", file)
			objs := decode(t, rendered)
			if got := strings.Count(out, "serverside-applied (server dry run)"); got != len(objs) {
				t.Errorf("server dry run applied %d objects, want %d:\n%s", got, len(objs), out)
			}
		})
	}

	helm := func(args ...string) string {
		t.Helper()
		out, err := e.run(t, e.helm, append(args, "--kubeconfig", cp.AdminKubeconfig(), "--namespace", namespace)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	secretKey := func() string {
		t.Helper()
		return kubectl("get", "secret", "-n", namespace, "baremetal-memberlist", "-o", "jsonpath={.data.secretkey}")
	}
	t.Run("install-upgrade", func(t *testing.T) {
		helm("install", release, e.chart)
		first := secretKey()
		if first == "" {
			t.Fatal("install created no memberlist key")
		}
		helm("upgrade", release, e.chart, "--set", "ccm.replicas=3")
		if got := kubectl("get", "deployment", "-n", namespace, "baremetal-cloud-controller-manager", "-o", "jsonpath={.spec.replicas}"); got != "3" {
			t.Errorf("replicas after upgrade = %q, want 3", got)
		}
		if got := secretKey(); got != first {
			t.Errorf("memberlist key changed on upgrade: %s -> %s; running announcers would split", first, got)
		}
		helm("uninstall", release)
		out, err := e.run(t, e.kubectl, "--kubeconfig", cp.AdminKubeconfig(), "get", "clusterrole", "baremetal-announcer")
		if err == nil || !strings.Contains(err.Error(), "NotFound") {
			t.Errorf("ClusterRole baremetal-announcer after uninstall: %q, %v", out, err)
		}
	})
}
