// Package controlplane starts a real etcd and kube-apiserver (and, on
// request, kube-controller-manager) as child processes for integration
// tests of the bare-metal cloud provider.
//
// The binaries are built from the Go module proxy by `make tools`
// (test/tools/build.sh) into _output/tools/<version>/ at the repository root;
// BAREMETAL_TOOLS_DIR overrides that location. Everything listens on
// 127.0.0.1 with ports picked at run time, so test packages can run in
// parallel and no packet leaves the loopback interface. Certificates, data
// and one log file per process live in Options.Dir.
//
// A real apiserver, rather than a fake clientset, is what makes RBAC,
// admission, defaulting, ClusterIP/NodePort allocation and dual-stack
// validation behave as in production, so tests of the provider see the
// same errors a cluster would return.
//
// # One control plane per test package
//
// The apiserver is ready in a few seconds, but that is still too slow to pay
// per test. Start one in TestMain with RunMain, which also stops it when the
// test binary receives SIGINT or SIGTERM:
//
//	var cp *controlplane.ControlPlane
//
//	func TestMain(m *testing.M) {
//		os.Exit(controlplane.RunMain(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
//	}
//
// Note that os.Exit must be called only after RunMain has returned, since
// os.Exit skips deferred calls; RunMain stops the control plane before it
// returns. Tests then isolate themselves with their own namespaces.
//
// For a control plane of its own (different options, or a test that breaks
// the apiserver on purpose) a test calls StartForTest, which registers Stop
// with t.Cleanup.
//
// # Teardown
//
// Stop is idempotent and waits until every child has been reaped. If the
// test binary dies without running Stop, the children die with it: the
// process package starts them with a parent-death signal.
package controlplane
