package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// KillAPIServer ends the kube-apiserver with SIGKILL, as a crashed or
// rebooted control-plane node would, and waits until it is reaped. etcd
// keeps running with all data; StartAPIServer brings the apiserver back.
func (cp *ControlPlane) KillAPIServer() error {
	p := cp.APIServer()
	if p == nil {
		return errors.New("control plane: no kube-apiserver started")
	}
	return p.Kill()
}

// StartAPIServer starts the kube-apiserver again after KillAPIServer: on
// the same port, with the same flags, certificates and etcd, so every
// client's kubeconfig works unchanged. It returns once /readyz is ok, or
// with an error when ctx ends or the apiserver exits first (the port may
// have been taken meanwhile). Starting one that runs is an error.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	cp.procMu.Lock()
	if cp.apiserver != nil && cp.apiserver.Running() {
		cp.procMu.Unlock()
		return errors.New("control plane: kube-apiserver is running")
	}
	logOff := fileSize(cp.logPath(APIServerBinary))
	p, err := process.Start(context.WithoutCancel(ctx), process.Spec{
		Name:    APIServerBinary,
		Path:    filepath.Join(cp.toolsDir, APIServerBinary),
		Args:    cp.apiserverArgs,
		LogPath: cp.logPath(APIServerBinary),
	})
	if err == nil {
		cp.apiserver = p
	}
	cp.procMu.Unlock()
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	tlsc, err := rest.TransportFor(cp.admin)
	if err != nil {
		return err
	}
	apic := &http.Client{Transport: tlsc, Timeout: 2 * time.Second}
	defer apic.CloseIdleConnections()
	return waitFor(ctx, cp.opts.ReadyTimeout, p, logOff, "kube-apiserver /readyz after a restart", func(ctx context.Context) error {
		body, err := get(ctx, apic, cp.host+"/readyz")
		if err == nil && strings.TrimSpace(body) != "ok" {
			err = fmt.Errorf("not ready: %s", body)
		}
		return err
	})
}
