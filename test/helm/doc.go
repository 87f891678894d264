// Package helm tests the Helm chart in deploy/helm/cloud-provider-baremetal
// with a helm built from the Go module proxy (test/tools/build.sh, `make
// tools`): helm lint, helm template for the default values and the examples,
// a server-side dry-run against a real kube-apiserver, and, so that the chart
// and the kustomize tree in deploy/ never drift apart, that both render the
// same RBAC, workloads, Services and cloud-config.
package helm
