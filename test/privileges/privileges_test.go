package privileges

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/controlplane"
)

func ptr[T any](v T) *T { return &v }

// TestAnnouncerManifest: deploy/base's announcer runs as uid 0 with only
// NET_RAW and no privilege escalation, which setpriv reproduces.
func TestAnnouncerManifest(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p, err := FromManifest(filepath.Join(root, "deploy", "base", "announcer-daemonset.yaml"), "announcer")
	if err != nil {
		t.Fatal(err)
	}
	want := Privileges{UID: 0, GID: 0, Capabilities: []string{"NET_RAW"}, NoNewPrivs: true}
	if !equal(p, want) {
		t.Fatalf("privileges %+v, want %+v", p, want)
	}
	path, args := p.Command("/announcer", "--v=2")
	wantArgs := []string{"--reuid=0", "--regid=0", "--clear-groups", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+net_raw", "--no-new-privs", "--", "/announcer", "--v=2"}
	if path != SetprivBinary || !slices.Equal(args, wantArgs) {
		t.Errorf("command %s %q, want %s %q", path, args, SetprivBinary, wantArgs)
	}
}

func equal(a, b Privileges) bool {
	return a.UID == b.UID && a.GID == b.GID && a.NoNewPrivs == b.NoNewPrivs && slices.Equal(a.Capabilities, b.Capabilities)
}

// TestFromContainer translates securityContexts as containerd and runc
// would apply them.
func TestFromContainer(t *testing.T) {
	defaults := slices.Clone(RuntimeDefault)
	slices.Sort(defaults)
	tests := []struct {
		name    string
		pod     *corev1.PodSecurityContext
		sc      *corev1.SecurityContext
		want    Privileges
		wantErr string
	}{
		{
			name: "drop all, add one",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), AllowPrivilegeEscalation: ptr(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_RAW"}}},
			want: Privileges{Capabilities: []string{"NET_RAW"}, NoNewPrivs: true},
		},
		{
			name: "drop all, add none",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"all"}}},
			want: Privileges{},
		},
		{
			name: "nothing dropped: the runtime's default set",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0))},
			want: Privileges{Capabilities: defaults},
		},
		{
			name: "one dropped from the default set",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}}},
			want: Privileges{Capabilities: slices.DeleteFunc(slices.Clone(defaults), func(c string) bool { return c == "NET_RAW" })},
		},
		{
			name: "CAP_ prefix and lower case, as the runtimes accept",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"cap_net_admin", "net_raw"}}},
			want: Privileges{Capabilities: []string{"NET_ADMIN", "NET_RAW"}},
		},
		{
			name: "add ALL",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"ALL"}}},
			want: Privileges{Capabilities: sorted(known)},
		},
		{
			name: "privileged: every capability, escalation allowed",
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Privileged: ptr(true), AllowPrivilegeEscalation: ptr(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			want: Privileges{Capabilities: sorted(known)},
		},
		{
			name: "user and group from the pod",
			pod:  &corev1.PodSecurityContext{RunAsUser: ptr(int64(65532)), RunAsGroup: ptr(int64(65533))},
			sc:   &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			want: Privileges{UID: 65532, GID: 65533},
		},
		{
			name: "the container's user wins over the pod's",
			pod:  &corev1.PodSecurityContext{RunAsUser: ptr(int64(65532)), RunAsGroup: ptr(int64(65532))},
			sc:   &corev1.SecurityContext{RunAsUser: ptr(int64(0)), RunAsGroup: ptr(int64(0)), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			want: Privileges{},
		},
		{
			name:    "no user",
			sc:      &corev1.SecurityContext{},
			wantErr: "c.securityContext.runAsUser: not set",
		},
		{
			name:    "non-root without a group",
			sc:      &corev1.SecurityContext{RunAsUser: ptr(int64(1000))},
			wantErr: "c.securityContext.runAsGroup: not set for runAsUser 1000",
		},
		{
			name:    "unknown capability added",
			sc:      &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_RAW", "NET_RAWW"}}},
			wantErr: `c.securityContext.capabilities.add[1]: unknown capability "NET_RAWW"`,
		},
		{
			name:    "unknown capability dropped",
			sc:      &corev1.SecurityContext{RunAsUser: ptr(int64(0)), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"EVERYTHING"}}},
			wantErr: `c.securityContext.capabilities.drop[0]: unknown capability "EVERYTHING"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromContainer(tt.pod, &corev1.Container{Name: "c", SecurityContext: tt.sc}, "c")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestParse(t *testing.T) {
	const two = `apiVersion: v1
kind: ConfigMap
metadata: {name: x}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      securityContext: {runAsUser: 0}
      containers:
      - name: other
      - name: main
        securityContext:
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
`
	p, err := Parse(strings.NewReader(two), "main")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Privileges{Capabilities: []string{"NET_BIND_SERVICE"}}); !equal(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
	if _, err := Parse(strings.NewReader(two), "missing"); err == nil || !strings.Contains(err.Error(), `Deployment d has no container "missing"`) {
		t.Errorf("missing container: err %v", err)
	}
	if _, err := Parse(strings.NewReader("kind: ConfigMap\n"), "main"); err == nil || !strings.Contains(err.Error(), "no document with spec.template") {
		t.Errorf("no workload: err %v", err)
	}
}

// TestSetprivAppliesThem runs a program through setpriv and reads back,
// from the kernel, what it got: this is what the lab's announcers run
// with.
func TestSetprivAppliesThem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change capabilities")
	}
	if _, err := exec.LookPath(SetprivBinary); err != nil {
		t.Fatalf("%s (util-linux) is needed to run lab processes with a manifest's privileges: %v", SetprivBinary, err)
	}
	netRaw, netAdmin := uint64(1)<<13, uint64(1)<<12
	tests := []struct {
		name string
		p    Privileges
		// want are /proc/self/status lines.
		want []string
	}{
		{
			name: "root with NET_RAW",
			p:    Privileges{Capabilities: []string{"NET_RAW"}, NoNewPrivs: true},
			want: []string{"Uid:\t0\t0\t0\t0", "CapInh:\t" + hex(0), "CapPrm:\t" + hex(netRaw), "CapEff:\t" + hex(netRaw), "CapBnd:\t" + hex(netRaw), "CapAmb:\t" + hex(0), "NoNewPrivs:\t1"},
		},
		{
			name: "root with two, escalation allowed",
			p:    Privileges{Capabilities: []string{"NET_ADMIN", "NET_RAW"}},
			want: []string{"CapEff:\t" + hex(netRaw|netAdmin), "CapBnd:\t" + hex(netRaw|netAdmin), "NoNewPrivs:\t0"},
		},
		{
			// What Kubernetes gives a non-root container that adds
			// capabilities: they are bounded, never effective.
			name: "non-root keeps none",
			p:    Privileges{UID: 65532, GID: 65532, Capabilities: []string{"NET_RAW"}, NoNewPrivs: true},
			want: []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532", "CapPrm:\t" + hex(0), "CapEff:\t" + hex(0), "CapBnd:\t" + hex(netRaw)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, args := tt.p.Command("/bin/cat", "/proc/self/status")
			out, err := exec.Command(path, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %q: %v\n%s", path, args, err, out)
			}
			for _, w := range tt.want {
				if !bytes.Contains(out, []byte(w+"\n")) {
					t.Errorf("no line %q in\n%s", w, out)
				}
			}
			if err := tt.p.CheckStatus(string(out)); err != nil {
				t.Errorf("CheckStatus: %v", err)
			}
			// And CheckStatus tells another set apart.
			other := tt.p
			other.Capabilities = append(slices.Clone(tt.p.Capabilities), "SYS_ADMIN")
			if err := other.CheckStatus(string(out)); err == nil || !strings.Contains(err.Error(), "CapBnd") {
				t.Errorf("CheckStatus with SYS_ADMIN added: err %v, want a CapBnd mismatch", err)
			}
		})
	}
}

// hex formats a capability mask as /proc/PID/status does.
func hex(v uint64) string { return fmt.Sprintf("%016x", v) }

func FuzzParse(f *testing.F) {
	if root, err := controlplane.RepoRoot(); err == nil {
		if b, err := os.ReadFile(filepath.Join(root, "deploy", "base", "announcer-daemonset.yaml")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(bytes.NewReader(b), "announcer")
		if err != nil {
			return
		}
		if p.UID < 0 || p.GID < 0 || !slices.IsSorted(p.Capabilities) {
			t.Fatalf("bad privileges %+v", p)
		}
		for _, c := range p.Capabilities {
			if !slices.Contains(known, c) {
				t.Fatalf("unknown capability %q in %+v", c, p)
			}
		}
	})
}
