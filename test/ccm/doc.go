// Package ccm runs the real baremetal-cloud-controller-manager binary
// (bin/baremetal-cloud-controller-manager, from `make build`) as a child
// process of a test, against a control plane from package controlplane.
//
// The binary, not an in-process copy of the provider, is what users run: its
// flags, its defaults from provider/app, its leader election, its secure
// serving with delegated authorization and its exit on a bad cloud-config
// are all part of what the tests prove. It also runs with exactly the RBAC in
// deploy/base, applied with kubectl the way a user would, under the
// ServiceAccount identity baremetal-system/baremetal-cloud-controller-manager,
// so a missing rule shows up as a failing test rather than in a cluster.
//
// # Logs
//
// Each test gets a log directory, _output/test-logs/<package>/<test>/ at the
// repository root (git-ignored), holding one log per CCM replica and the
// cloud-config it read. It is removed when the test passes and kept when it
// fails; the cleanup then prints its path and the tail of every log. Set
// BAREMETAL_KEEP_TEST_LOGS=1 to keep it after a pass too.
//
// # Lifetime
//
// Start registers Stop with t.Cleanup, and the process package gives every
// child a parent-death signal, so no CCM outlives its test or the test binary.
package ccm
