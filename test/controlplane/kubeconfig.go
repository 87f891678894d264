package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubectlWaitDelay bounds how long Kubectl waits for output after its
// context ends, in case kubectl left something holding the pipes.
const kubectlWaitDelay = 5 * time.Second

// ConfigFor returns a client configuration authenticating as user with the
// given groups, through a client certificate signed by the test CA. The
// apiserver takes the certificate's CN as the user name and its O entries
// as groups; RBAC then decides, so a user with no bindings is forbidden
// almost everything.
func (cp *ControlPlane) ConfigFor(user string, groups ...string) (*rest.Config, error) {
	kp, err := cp.ca.issue(user, groups, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host: cp.host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.ca.certPEM,
			CertData: kp.certPEM,
			KeyData:  kp.keyPEM,
		},
		// client-go's defaults (5 QPS) throttle tests that create many
		// objects; this apiserver serves nobody else.
		QPS:   100,
		Burst: 200,
	}, nil
}

// KubeconfigFor writes a kubeconfig for user with the given groups (see
// ConfigFor) into Dir/kubeconfigs and returns its path.
func (cp *ControlPlane) KubeconfigFor(user string, groups ...string) (string, error) {
	cfg, err := cp.ConfigFor(user, groups...)
	if err != nil {
		return "", err
	}
	// The name shows whom the file is for; the hash keeps different group
	// sets of one user apart.
	h := sha256.Sum256([]byte(user + "\x00" + strings.Join(groups, "\x00")))
	name := sanitize(user) + "-" + hex.EncodeToString(h[:4]) + ".kubeconfig"
	path := filepath.Join(cp.dir, "kubeconfigs", name)
	if err := cp.writeKubeconfig(path, user, cfg); err != nil {
		return "", err
	}
	return path, nil
}

// ServiceAccountUser returns the user name and groups the apiserver assigns
// to ServiceAccount ns/name, which RBAC subjects of kind ServiceAccount
// match.
func ServiceAccountUser(ns, name string) (user string, groups []string) {
	return "system:serviceaccount:" + ns + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
}

// ConfigForServiceAccount returns a client configuration with the identity
// of ServiceAccount ns/name. It uses a client certificate rather than a
// token, so the ServiceAccount object need not exist; RBAC bindings to it
// apply all the same.
func (cp *ControlPlane) ConfigForServiceAccount(ns, name string) (*rest.Config, error) {
	user, groups := ServiceAccountUser(ns, name)
	return cp.ConfigFor(user, groups...)
}

// KubeconfigForServiceAccount writes a kubeconfig with the identity of
// ServiceAccount ns/name (see ConfigForServiceAccount) and returns its path.
func (cp *ControlPlane) KubeconfigForServiceAccount(ns, name string) (string, error) {
	user, groups := ServiceAccountUser(ns, name)
	return cp.KubeconfigFor(user, groups...)
}

func (cp *ControlPlane) writeKubeconfig(path, user string, cfg *rest.Config) error {
	const cluster = "baremetal-test"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user}
	kc.CurrentContext = user
	cp.kcMu.Lock()
	defer cp.kcMu.Unlock()
	return clientcmd.WriteToFile(*kc, path)
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Kubectl runs the built kubectl as admin and returns its stdout. On
// failure the error carries kubectl's stderr.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	return cp.KubectlAs(ctx, cp.adminKC, args...)
}

// KubectlAs runs the built kubectl with the given kubeconfig, for checking
// what another identity may do.
func (cp *ControlPlane) KubectlAs(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	full := append([]string{
		"--kubeconfig=" + kubeconfig,
		// Keep the discovery cache out of $HOME and apart per control
		// plane: ports are reused between runs.
		"--cache-dir=" + filepath.Join(cp.dir, "kubectl-cache"),
	}, args...)
	cmd := exec.CommandContext(ctx, cp.KubectlPath(), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = kubectlWaitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
