// Package cluster runs the announcer image as the DaemonSet runs it on a
// node: from its unpacked root filesystem, in a lab node's network
// namespace, with the DaemonSet's user, capabilities, arguments and
// environment and the kubelet's in-cluster configuration, against the
// lab's kube-apiserver (package e2e). Package image builds and unpacks
// the images.
//
// Needs root, the control-plane tools (make tools) and git. Skipped with
// -short.
package cluster
