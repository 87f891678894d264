// Package onewrite proves deploy/components/one-write-finalizer against a
// real kube-apiserver and the real CCM binary, and measures what it buys.
//
// The component is a MutatingAdmissionPolicy that puts the service
// controller's cleanup finalizer on every new LoadBalancer Service without
// a loadBalancerClass. The service controller then finds the finalizer in
// place and makes one write (the status) instead of two (finalizer, then
// status) before a new Service shows its IP.
//
// The tests (onewrite_test.go) check, through watches of the Services:
// one write with the policy, two without it (as today); deletion still
// waits for the CCM to release the address; other types and classes are
// untouched; a Service later turned into a ClusterIP loses the finalizer.
// The benchmarks (bench_test.go, profile_test.go) run the same meter with
// and without the policy in one run, and break create -> IP down from the
// apiserver's audit log:
//
//	go test -run '^$' -bench . -benchtime=1x -timeout 30m ./test/integration/onewrite/
//
// The package has its own control plane, so installing the policy here
// never changes what the other integration packages see.
package onewrite
