// Package integration proves the baremetal cloud-controller-manager end to
// end: the real binary (test/ccm) against a real etcd and kube-apiserver
// (test/controlplane), with the RBAC of deploy/base, through real Service and
// Node objects, events, finalizers, leases and /metrics.
//
// The tests follow the user's story from issue 3: the MetalLB walkthrough's
// pool and nginx Service, every allocation rule, release and reuse, restart
// and leader fail-over safety, kubeadm nodes, and the errors a user sees.
// The benchmarks (bench_test.go) measure time to IP; run them with
//
//	go test -run '^$' -bench . -benchtime=1x -timeout 30m ./test/integration/
//
// One dual-stack control plane serves the whole package. The CCM sees every
// Service in the cluster, so each test starts its own CCM with its own
// cloud-config, works in namespaces of its own, and on cleanup stops its CCM
// before it strips the finalizers from and deletes its Services: the next
// test's CCM then finds no Service from an earlier one. Tests therefore do
// not run in parallel.
package integration
