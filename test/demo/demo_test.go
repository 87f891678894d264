package demo

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config/testdata"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/lab"
)

// syncBuffer is the demo's output, read by the test while Run may still
// write to it from a step.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo runs `make demo`'s Run end to end: a real apiserver, our CCM
// and announcers, the lab with FRR, and the walkthrough's steps. It checks
// what each step promises the user: the nodes are initialized, the
// Service gets an IP from the walkthrough's pool, one node answers for it
// over layer 2, another takes over when that node's announcer dies, the
// bgp Service (once the announcer speaks BGP) is spread over the nodes,
// and nothing is left behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the whole demo (control plane, lab, FRR)")
	}
	if err := lab.Supported(); err != nil {
		t.Skipf("lab: %v", err)
	}
	tools, err := controlplane.ToolsDir()
	if err == nil {
		_, err = os.Stat(filepath.Join(tools, controlplane.APIServerBinary))
	}
	if err != nil {
		t.Skipf("control-plane binaries missing (run make tools): %v", err)
	}
	ccmBin, err := ccm.Binary()
	if err != nil {
		t.Fatal(err)
	}
	announcerBin := buildAnnouncer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out syncBuffer
	dir := t.TempDir()
	rep, err := Run(ctx, &out, Options{Dir: dir, CCMBinary: ccmBin, AnnouncerBinary: announcerBin})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		logTails(t, dir)
		t.Fatal(err)
	}

	if want := []string{"node1", "node2", "node3"}; !slices.Equal(rep.InitializedNodes, want) {
		t.Errorf("initialized nodes %v, want %v", rep.InitializedNodes, want)
	}
	if rep.ExternalIP != "203.0.113.200" {
		t.Errorf("EXTERNAL-IP %q, want the pool's first address 203.0.113.200", rep.ExternalIP)
	}
	if rep.L2Owner == "" || rep.L2Answers[rep.L2Owner] != tallyRequests {
		t.Errorf("layer 2: owner %q, answers %v; want every answer from the owner", rep.L2Owner, rep.L2Answers)
	}
	if rep.FailoverFrom != rep.L2Owner || rep.FailoverTo == "" || rep.FailoverTo == rep.FailoverFrom {
		t.Errorf("failover from %q to %q, want from the owner %q to another node", rep.FailoverFrom, rep.FailoverTo, rep.L2Owner)
	}
	// Requests that failed while the IP moved are logged, not asserted:
	// on a loaded machine a short request timeout can expire anyway, and
	// the layer-2 e2e tests prove the gap-free handover.
	t.Logf("failover: %d requests, %d failed", rep.FailoverRequests, rep.FailoverErrors)
	if rep.BGPSkipped == "" {
		if len(rep.BGPNextHops) != 3 {
			t.Errorf("bgp next hops %v, want the three nodes", rep.BGPNextHops)
		}
		if len(rep.BGPAnswers) < 2 || rep.BGPAnswers["error"] > 0 {
			t.Errorf("bgp answers %v, want several nodes (ECMP) and no error", rep.BGPAnswers)
		}
		if len(rep.BGPNextHopsAfterFailover) != 2 {
			t.Errorf("bgp next hops after %s's announcer died: %v, want the two others", rep.FailoverFrom, rep.BGPNextHopsAfterFailover)
		}
	} else {
		t.Logf("BGP step skipped: %s", rep.BGPSkipped)
	}
	for _, want := range []string{"$ kubectl get service", "client$ curl", "[13/13] Tearing down", "==> Done in"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	t.Logf("failover took %v; the demo took %v", rep.FailoverTook, rep.Total)

	// Nothing is left: no lab namespace, no process of ours.
	if len(rep.Namespaces) == 0 {
		t.Error("the report names no lab namespaces")
	}
	if ns, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(ns), "\n") {
			if f := strings.Fields(line); len(f) > 0 && slices.Contains(rep.Namespaces, f[0]) {
				t.Errorf("namespace left behind: %s", line)
			}
		}
	}
}

// buildAnnouncer builds the announcer into the test's directory, with the
// Makefile's flags so `make build`'s cache serves it.
func buildAnnouncer(t *testing.T) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), AnnouncerBinaryName)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/"+AnnouncerBinaryName)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the announcer: %v\n%s", err, out)
	}
	return bin
}

// logTails shows the end of every log the demo kept, for a failed run.
func logTails(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "logs", "*.log"))
	more, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range append(more, logs...) {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("--- %s (tail):\n%s", l, b)
	}
}

func TestFormatTally(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]int
		want string
	}{
		{name: "empty", in: map[string]int{}, want: ""},
		{name: "one node", in: map[string]int{"node2": 30}, want: "node2 ×30"},
		{name: "sorted by name", in: map[string]int{"node3": 1, "error": 2, "node1": 4}, want: "error ×2, node1 ×4, node3 ×1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatTally(tt.in); got != tt.want {
				t.Errorf("formatTally(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestShellJoin(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{name: "plain", in: []string{"get", "nodes"}, want: "get nodes"},
		{name: "jsonpath is quoted", in: []string{"-o", `custom-columns=A:.x[?(@.t=="I")].a`}, want: `-o 'custom-columns=A:.x[?(@.t=="I")].a'`},
		{name: "single quote", in: []string{"it's"}, want: `'it'\''s'`},
		{name: "empty", in: []string{""}, want: "''"},
		{name: "shell expression kept", in: []string{`--from-literal=k="$(openssl rand -base64 32)"`}, want: `--from-literal=k="$(openssl rand -base64 32)"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shellJoin(tt.in); got != tt.want {
				t.Errorf("shellJoin(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestInstalledNextHops(t *testing.T) {
	type nh = struct {
		IP     string `json:"ip"`
		Active bool   `json:"active"`
		FIB    bool   `json:"fib"`
	}
	tests := []struct {
		name string
		in   []routeEntry
		want []string
	}{
		{name: "no route", in: nil, want: nil},
		{name: "ECMP, sorted", in: []routeEntry{{Protocol: "bgp", Selected: true, Nexthops: []nh{{IP: "203.0.113.13", FIB: true}, {IP: "203.0.113.11", FIB: true}}}},
			want: []string{"203.0.113.11", "203.0.113.13"}},
		{name: "not in the FIB", in: []routeEntry{{Protocol: "bgp", Selected: true, Nexthops: []nh{{IP: "203.0.113.11", FIB: true}, {IP: "203.0.113.12"}}}},
			want: []string{"203.0.113.11"}},
		{name: "unselected or not bgp", in: []routeEntry{{Protocol: "bgp", Nexthops: []nh{{IP: "203.0.113.11", FIB: true}}}, {Protocol: "static", Selected: true, Nexthops: []nh{{IP: "203.0.113.12", FIB: true}}}},
			want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := installedNextHops(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("installedNextHops = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCloudConfig checks the demo's cloud-config, with and without BGP: it
// is valid, its first pool is the walkthrough's (layer2, in the lab's
// layer-2 range), and the ConfigMap the user applies carries it unchanged.
func TestCloudConfig(t *testing.T) {
	tests := []struct {
		name      string
		bgp       bool
		wantPools []string
		wantPeers int
	}{
		{name: "layer 2 only", wantPools: []string{"default"}},
		{name: "with the bgp pool and the router", bgp: true, wantPools: []string{"default", bgpPoolName}, wantPeers: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := cloudConfig(tt.bgp)
			cfg, err := config.Parse([]byte(text))
			if err != nil {
				t.Fatalf("cloud-config is invalid: %v\n%s", err, text)
			}
			var names []string
			for _, p := range cfg.Pools {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.wantPools) {
				t.Errorf("pools %v, want %v", names, tt.wantPools)
			}
			if p := cfg.Pools[0]; p.Protocol != "layer2" || !slices.Equal(p.Addresses, []string{lab.L2PoolV4}) {
				t.Errorf("first pool %s %v, want layer2 %s", p.Protocol, p.Addresses, lab.L2PoolV4)
			}
			if len(cfg.Peers) != tt.wantPeers {
				t.Errorf("%d peers, want %d", len(cfg.Peers), tt.wantPeers)
			}
			var cm struct {
				Metadata struct{ Name, Namespace string }
				Data     map[string]string
			}
			if err := yaml.Unmarshal([]byte(configMapManifest(text)), &cm); err != nil {
				t.Fatal(err)
			}
			if cm.Metadata.Namespace != systemNS || cm.Metadata.Name != "baremetal-cloud-config" || cm.Data["cloud-config.yaml"] != text {
				t.Errorf("ConfigMap %s/%s carries %q, want %q", cm.Metadata.Namespace, cm.Metadata.Name, cm.Data["cloud-config.yaml"], text)
			}
		})
	}
}

// TestServices checks the Services the demo applies: the walkthrough's
// nginx as it is, and its copy for the bgp pool, which only changes the
// name and adds MetalLB's pool annotation.
func TestServices(t *testing.T) {
	var nginx, bgp corev1.Service
	if err := sigsyaml.UnmarshalStrict([]byte(testdata.WalkthroughService), &nginx); err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.UnmarshalStrict([]byte(nginxBGPService), &bgp); err != nil {
		t.Fatalf("%v\n%s", err, nginxBGPService)
	}
	if nginx.Name != "nginx" || nginx.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("walkthrough Service %s of type %s, want nginx of type LoadBalancer", nginx.Name, nginx.Spec.Type)
	}
	if bgp.Name != "nginx-bgp" || !maps.Equal(bgp.Annotations, map[string]string{"metallb.universe.tf/address-pool": bgpPoolName}) {
		t.Errorf("bgp Service %s with annotations %v, want nginx-bgp asking for pool %s", bgp.Name, bgp.Annotations, bgpPoolName)
	}
	bgp.Name, bgp.Annotations = nginx.Name, nil
	if !reflect.DeepEqual(bgp, nginx) {
		t.Errorf("the bgp Service differs from the walkthrough's beyond its name and annotation:\n%+v\n%+v", bgp, nginx)
	}
}
