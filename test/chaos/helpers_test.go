package chaos

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// svc builds a LoadBalancer Service in namespace chaos for the unit tests:
// IPv4 single-stack, port 80, no annotations.
func svc(name string, opts ...func(*corev1.Service)) *corev1.Service {
	policy := corev1.IPFamilyPolicySingleStack
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "chaos", Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			Ports:          servicePorts([]int32{80}),
			IPFamilyPolicy: &policy,
			IPFamilies:     []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withStatus(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

func withAnn(k, v string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Annotations[k] = v }
}

func withType(t corev1.ServiceType) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Type = t }
}

func withClass(c string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c }
}

func withFinalizer(s *corev1.Service) { s.Finalizers = append(s.Finalizers, cleanupFinalizer) }

func withDeleting(s *corev1.Service) {
	now := metav1.NewTime(time.Unix(1, 0))
	s.DeletionTimestamp = &now
}

func withPolicy(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &p
		s.Spec.IPFamilies = fams
	}
}

func withPorts(ps ...int32) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Ports = servicePorts(ps) }
}

// testConfig is the short profile's first config: alpha (auto-assign)
// 192.0.2.0-192.0.2.7 and 2001:db8:c4a0::-2001:db8:c4a0::7, beta
// (auto-assign) 198.51.100.0-198.51.100.7, pinned (not auto-assign)
// 203.0.113.0-203.0.113.7 and 2001:db8:c4a0::8-2001:db8:c4a0::f.
func testConfig() *cloudConfig {
	return shortProfile().initialConfig()
}
