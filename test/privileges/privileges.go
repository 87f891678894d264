// Package privileges runs lab processes with exactly the privileges a
// Kubernetes manifest grants a container. It reads the container's
// securityContext (runAsUser, runAsGroup, capabilities, privileged,
// allowPrivilegeEscalation) from a workload manifest such as
// deploy/base/announcer-daemonset.yaml and turns it into a setpriv(1)
// command line (util-linux) that drops everything else before it execs the
// binary. A manifest that asks for too little then fails the lab tests, as
// it would fail on a real node.
//
// The translation follows what containerd and runc do for a CRI container:
//
//   - The capability set starts from the runtime's default set, or from
//     nothing when drop lists ALL; drop removes from it and add adds to
//     it; privileged grants every capability.
//   - That set becomes the bounding, permitted and effective sets. The
//     inheritable and ambient sets stay empty (runc has not filled the
//     inheritable set since CVE-2022-29162, and Kubernetes has no ambient
//     capabilities).
//   - Across execve, uid 0 keeps its bounding set as permitted and
//     effective, while any other uid keeps no capability at all (no
//     ambient set, no file capabilities under no_new_privs). setpriv
//     reproduces both: it limits the bounding set, changes the uid and
//     execs, and the kernel applies the same rules.
//   - allowPrivilegeEscalation: false sets no_new_privs.
package privileges

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// SetprivBinary is util-linux's setpriv, in Debian's essential util-linux
// package.
const SetprivBinary = "setpriv"

// RuntimeDefault is the capability set containerd (and Docker, and CRI-O)
// gives a container that drops nothing.
var RuntimeDefault = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// known are the Linux capabilities, by their Kubernetes names (no CAP_
// prefix), in kernel order.
var known = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
	"SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// Privileges are what a container's process runs with.
type Privileges struct {
	// UID and GID are the process's user and group.
	UID, GID int64
	// Capabilities are the bounding set, in Kubernetes names (NET_RAW),
	// sorted. uid 0 also has them permitted and effective.
	Capabilities []string
	// NoNewPrivs is allowPrivilegeEscalation: false.
	NoNewPrivs bool
}

// FromManifest reads the workload (DaemonSet, Deployment) in the YAML file
// at path and returns the privileges of its container named container.
func FromManifest(path, container string) (Privileges, error) {
	f, err := os.Open(path)
	if err != nil {
		return Privileges{}, err
	}
	defer f.Close()
	p, err := Parse(f, container)
	if err != nil {
		return Privileges{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse is FromManifest on the manifest's text; the first document with a
// pod template is used.
func Parse(r io.Reader, container string) (Privileges, error) {
	dec := yaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		// Every workload kind keeps its pod template at spec.template.
		var obj appsv1.DaemonSet
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return Privileges{}, errors.New("no document with spec.template")
		} else if err != nil {
			return Privileges{}, err
		}
		if len(obj.Spec.Template.Spec.Containers) == 0 {
			continue
		}
		spec := &obj.Spec.Template.Spec
		for i := range spec.Containers {
			if spec.Containers[i].Name == container {
				return FromContainer(spec.SecurityContext, &spec.Containers[i], fmt.Sprintf("spec.template.spec.containers[%d]", i))
			}
		}
		return Privileges{}, fmt.Errorf("%s %s has no container %q", obj.Kind, obj.Name, container)
	}
}

// FromContainer returns the privileges of container c in a pod whose
// securityContext is pod (either may be nil); field is c's path, for
// errors. The container's settings win over the pod's.
func FromContainer(pod *corev1.PodSecurityContext, c *corev1.Container, field string) (Privileges, error) {
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	var p Privileges
	// The image's USER is not in the manifest, so it must say who runs.
	switch {
	case sc.RunAsUser != nil:
		p.UID = *sc.RunAsUser
	case pod.RunAsUser != nil:
		p.UID = *pod.RunAsUser
	default:
		return p, fmt.Errorf("%s.securityContext.runAsUser: not set; the lab cannot know the image's USER", field)
	}
	switch {
	case sc.RunAsGroup != nil:
		p.GID = *sc.RunAsGroup
	case pod.RunAsGroup != nil:
		p.GID = *pod.RunAsGroup
	case p.UID == 0:
		p.GID = 0
	default:
		return p, fmt.Errorf("%s.securityContext.runAsGroup: not set for runAsUser %d; the lab cannot know the image's group", field, p.UID)
	}
	if p.UID < 0 || p.GID < 0 {
		return p, fmt.Errorf("%s.securityContext: negative runAsUser %d or runAsGroup %d", field, p.UID, p.GID)
	}

	privileged := sc.Privileged != nil && *sc.Privileged
	// Kubernetes' default is true; privileged forces it.
	p.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation && !privileged

	set := map[string]bool{}
	if privileged {
		for _, c := range known {
			set[c] = true
		}
	} else {
		var add, drop []corev1.Capability
		if sc.Capabilities != nil {
			add, drop = sc.Capabilities.Add, sc.Capabilities.Drop
		}
		dropAll := false
		for i, d := range drop {
			name, err := capName(d, fmt.Sprintf("%s.securityContext.capabilities.drop[%d]", field, i))
			if err != nil {
				return p, err
			}
			dropAll = dropAll || name == "ALL"
		}
		if !dropAll {
			for _, c := range RuntimeDefault {
				set[c] = true
			}
		}
		for _, d := range drop {
			name, _ := capName(d, "") // checked above
			delete(set, name)
		}
		for i, a := range add {
			name, err := capName(a, fmt.Sprintf("%s.securityContext.capabilities.add[%d]", field, i))
			if err != nil {
				return p, err
			}
			if name == "ALL" {
				for _, c := range known {
					set[c] = true
				}
				continue
			}
			set[name] = true
		}
	}
	for c := range set {
		p.Capabilities = append(p.Capabilities, c)
	}
	slices.Sort(p.Capabilities)
	return p, nil
}

// capName normalises a capability as the runtimes do (case-insensitive,
// CAP_ prefix optional) and checks that it exists.
func capName(c corev1.Capability, field string) (string, error) {
	name := strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
	if name == "ALL" || slices.Contains(known, name) {
		return name, nil
	}
	return "", fmt.Errorf("%s: unknown capability %q", field, string(c))
}

// SetprivArgs returns the setpriv arguments that run a program with p,
// before the program's own path and arguments.
func (p Privileges) SetprivArgs() []string {
	bounding := "-all"
	for _, c := range p.Capabilities {
		bounding += ",+" + strings.ToLower(c)
	}
	args := []string{
		"--reuid=" + strconv.FormatInt(p.UID, 10),
		"--regid=" + strconv.FormatInt(p.GID, 10),
		// Kubernetes gives the image user's groups; the lab's user
		// has none worth keeping.
		"--clear-groups",
		"--inh-caps=-all",
		"--ambient-caps=-all",
		"--bounding-set=" + bounding,
	}
	if p.NoNewPrivs {
		args = append(args, "--no-new-privs")
	}
	return args
}

// Command returns the command line that runs path with args under p: the
// path of setpriv and its arguments.
func (p Privileges) Command(path string, args ...string) (string, []string) {
	return SetprivBinary, append(append(p.SetprivArgs(), "--", path), args...)
}

// Mask returns the capability set as a bit mask, bit n for capability
// number n, as /proc/PID/status shows it.
func (p Privileges) Mask() uint64 {
	var m uint64
	for _, c := range p.Capabilities {
		if i := slices.Index(known, c); i >= 0 {
			m |= 1 << i
		}
	}
	return m
}

// CheckStatus checks that status, the text of a /proc/PID/status, is that
// of a process running with p: its uids and gids, its bounding set, its
// permitted and effective sets (p's for uid 0, empty otherwise), empty
// inheritable and ambient sets, and no_new_privs.
func (p Privileges) CheckStatus(status string) error {
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	have := p.Mask()
	if p.UID != 0 {
		have = 0
	}
	nnp := "0"
	if p.NoNewPrivs {
		nnp = "1"
	}
	id := func(n int64) string {
		return strings.Repeat(strconv.FormatInt(n, 10)+"\t", 3) + strconv.FormatInt(n, 10)
	}
	want := []struct{ key, value string }{
		{"Uid", id(p.UID)},
		{"Gid", id(p.GID)},
		{"CapBnd", fmt.Sprintf("%016x", p.Mask())},
		{"CapPrm", fmt.Sprintf("%016x", have)},
		{"CapEff", fmt.Sprintf("%016x", have)},
		{"CapInh", fmt.Sprintf("%016x", 0)},
		{"CapAmb", fmt.Sprintf("%016x", 0)},
		{"NoNewPrivs", nnp},
	}
	var errs []error
	for _, w := range want {
		if got := fields[w.key]; got != w.value {
			errs = append(errs, fmt.Errorf("%s is %q, want %q", w.key, got, w.value))
		}
	}
	return errors.Join(errs...)
}
