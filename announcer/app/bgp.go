package app

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/controller"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// passwordSource reads BGP peer passwords from Secrets in the announcer's
// own namespace, the only one its Role lets it read, and follows changes
// to them, so a rotated password reaches the session without a restart.
// It watches nothing when no peer has a password-secret.
type passwordSource struct {
	client    kubernetes.Interface
	namespace string

	mu     sync.Mutex
	lister corelisters.SecretLister
}

func newPasswordSource(client kubernetes.Interface, namespace string) *passwordSource {
	return &passwordSource{client: client, namespace: namespace}
}

// needsSecrets says whether a peer of cloud has a password-secret.
func needsSecrets(cloud *config.Config) bool {
	for _, p := range cloud.Peers {
		if p.PasswordSecret != nil {
			return true
		}
	}
	return false
}

// Start starts the Secret informer if cloud needs it and it is not
// running yet, waits for its cache, and calls changed after every change
// of a Secret. The informer runs until ctx ends.
func (ps *passwordSource) Start(ctx context.Context, cloud *config.Config, changed func()) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.lister != nil || !needsSecrets(cloud) {
		return nil
	}
	if ps.namespace == "" {
		return fmt.Errorf("peers use password-secret, but the announcer's namespace is not known: set --namespace or POD_NAMESPACE")
	}
	f := informers.NewSharedInformerFactoryWithOptions(ps.client, 0, informers.WithNamespace(ps.namespace))
	inf := f.Core().V1().Secrets()
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return fmt.Errorf("waiting for the Secrets of namespace %s: %w", ps.namespace, context.Cause(ctx))
	}
	ps.lister = inf.Lister()
	return nil
}

// Password returns the password ref points at.
func (ps *passwordSource) Password(ref config.SecretKeyRef) (string, error) {
	ns := ref.Namespace
	if ns == "" {
		ns = ps.namespace
	}
	if ns != ps.namespace {
		return "", fmt.Errorf("password-secret namespace %q: the announcer reads Secrets only in its own namespace %q", ref.Namespace, ps.namespace)
	}
	ps.mu.Lock()
	lister := ps.lister
	ps.mu.Unlock()
	if lister == nil {
		return "", fmt.Errorf("password-secret %s/%s: Secrets are not being watched yet", ns, ref.Name)
	}
	s, err := lister.Secrets(ns).Get(ref.Name)
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("password-secret: Secret %s/%s does not exist", ns, ref.Name)
	} else if err != nil {
		return "", fmt.Errorf("password-secret: Secret %s/%s: %w", ns, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", fmt.Errorf("password-secret: Secret %s/%s has no key %q", ns, ref.Name, ref.Key)
	}
	return string(v), nil
}

// routerID is the node's IPv4 address, the BGP router ID of peers
// without router-id: --node-ip if IPv4, else the Node's first IPv4
// InternalIP. Invalid when the node has none.
func routerID(ctrl *controller.Controller, nodeIP netip.Addr) netip.Addr {
	if nodeIP.Is4() {
		return nodeIP
	}
	return ctrl.NodeIPv4()
}
