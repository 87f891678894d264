package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/apitest"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/ccm"
)

// releaseConfig is a pool of one address, so a release is the only way the
// next Service can get one.
const releaseConfig = `address-pools:
- name: single
  protocol: layer2
  addresses:
  - 192.0.2.20/32
`

// TestReleasedAddressIsReusable proves both ways a Service gives up its load
// balancer: deleted, or turned into a ClusterIP Service. Either way the
// finalizer goes, the address is freed, and another Service asking for
// exactly that address gets it.
func TestReleasedAddressIsReusable(t *testing.T) {
	const ip = "192.0.2.20"
	e := newEnv(t)
	ccm.Start(t, cp, ccm.Options{CloudConfig: releaseConfig})

	tests := []struct {
		name    string
		release func(e *env, name string)
		// gone is true when the Service itself disappears.
		gone bool
	}{
		{
			name: "delete the Service",
			release: func(e *env, name string) {
				if err := e.cs.CoreV1().Services(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
					e.t.Fatal(err)
				}
			},
			gone: true,
		},
		{
			name: "change its type to ClusterIP",
			release: func(e *env, name string) {
				// As `kubectl patch svc NAME -p '{"spec":{"type":"ClusterIP"}}'`;
				// the apiserver drops the node ports itself.
				e.mergePatch(e.ns, name, map[string]any{"spec": map[string]any{"type": "ClusterIP"}})
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.sub(t)
			holder := fmt.Sprintf("holder-%d", i)
			svc := e.waitIPs(e.ns, e.create(e.ns, lbService(holder)).Name, 1)
			if got := apitest.IngressIPs(svc); !slices.Equal(got, []string{ip}) {
				t.Fatalf("%s got %v, want [%s]", holder, got, ip)
			}

			tt.release(e, holder)
			err := apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
				s, err := e.cs.CoreV1().Services(e.ns).Get(ctx, holder, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return tt.gone, nil
				}
				if err != nil {
					return false, err
				}
				if tt.gone {
					return false, fmt.Errorf("still there with finalizers %v", s.Finalizers)
				}
				if len(s.Finalizers) > 0 || len(s.Status.LoadBalancer.Ingress) > 0 {
					return false, fmt.Errorf("finalizers %v, status %v", s.Finalizers, apitest.IngressIPs(s))
				}
				return true, nil
			})
			if err != nil {
				t.Fatalf("%s not released: %v\nevents:\n%s", holder, err, e.describeEvents(e.ns, holder))
			}
			if !tt.gone {
				e.waitEvent(e.ns, holder, "Normal", "DeletedLoadBalancer")
			}

			next := fmt.Sprintf("next-%d", i)
			e.create(e.ns, lbService(next, annotations("metallb.universe.tf/loadBalancerIPs", ip)))
			if got := apitest.IngressIPs(e.waitIPs(e.ns, next, 1)); !slices.Equal(got, []string{ip}) {
				t.Fatalf("%s got %v, want the released %s", next, got, ip)
			}
			// Free the pool's one address for the next case.
			if err := e.cs.CoreV1().Services(e.ns).Delete(e.ctx, next, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			err = apitest.WaitUntil(e.ctx, ipTimeout, func(ctx context.Context) (bool, error) {
				_, err := e.cs.CoreV1().Services(e.ns).Get(ctx, next, metav1.GetOptions{})
				return apierrors.IsNotFound(err), err
			})
			if err != nil {
				t.Fatalf("%s not deleted: %v", next, err)
			}
		})
	}
}
