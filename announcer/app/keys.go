package app

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/keyring"
)

// readKeys reads the memberlist keys from the Secret, waiting while it is
// missing, unreadable or invalid: gossip without the cluster's keys would
// be either refused by the others or, worse, unencrypted. No name means
// unencrypted gossip (tests only).
func readKeys(ctx context.Context, client kubernetes.Interface, ns, name string) (*keyring.Set, error) {
	logger := klog.FromContext(ctx)
	if name == "" {
		klog.Warning("No --memberlist-secret; memberlist gossip is not encrypted or authenticated")
		return nil, nil
	}
	var keys keyring.Set
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			logger.Error(err, "The memberlist Secret does not exist; create it (see deploy/README.md)", "secret", ns+"/"+name)
			return false, nil
		case err != nil:
			logger.Error(err, "Reading the memberlist Secret", "secret", ns+"/"+name)
			return false, nil
		}
		if keys, err = keyring.Parse(s.Data); err != nil {
			logger.Error(err, "The memberlist Secret is not usable", "secret", ns+"/"+name)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading memberlist Secret %s/%s: %w", ns, name, err)
	}
	return &keys, nil
}

// keySetter is the part of membership.Membership that takes new keys.
type keySetter interface {
	SetKeys(keyring.Set) error
}

// followKeys watches the memberlist Secret until ctx ends and hands every
// valid version of its keys to ms, so that a key rotation (package
// keyring) needs no restart. An invalid or deleted Secret changes
// nothing: the keys in use stay.
func followKeys(ctx context.Context, client kubernetes.Interface, ns, name string, ms keySetter) error {
	logger := klog.FromContext(ctx).WithValues("secret", ns+"/"+name)
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	inf := f.Core().V1().Secrets().Informer()
	apply := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		keys, err := keyring.Parse(s.Data)
		if err != nil {
			logger.Error(err, "The memberlist Secret changed and is not usable; the keys in use stay")
			return
		}
		if err := ms.SetKeys(keys); err != nil {
			logger.Error(err, "Applying the memberlist Secret's keys")
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    apply,
		UpdateFunc: func(_, obj any) { apply(obj) },
		DeleteFunc: func(any) {
			logger.Error(nil, "The memberlist Secret was deleted; the keys in use stay until a restart, which will wait for it")
		},
	})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("waiting for the memberlist Secret %s/%s: %w", ns, name, context.Cause(ctx))
	}
	return nil
}
