// Package image tests the container images that `make image` builds
// (build/image) without a Docker engine: their layout and contents, that
// two builds of one commit give the same digests, and that each image's
// entrypoint runs from its unpacked root filesystem as a container
// runtime would run it, with the user and capabilities deploy/ asks for.
//
// The images are built from the commit HEAD names when the tests start
// (build/image exports it with git archive), not from uncommitted files.
// BAREMETAL_IMAGES=<dir> tests the images `make image` wrote to <dir>
// (such as _output/images) instead of building them; the reproducibility
// test then rebuilds the commit those images name. Otherwise the amd64
// images are built once per commit (and version of build/image) into
// _output/image-test/<commit>-<builder>/.
//
// The announcer is also started for real from its image: in a lab node's
// network namespace, against the lab's kube-apiserver with a
// ServiceAccount token mounted where the kubelet mounts it, with the
// DaemonSet's arguments and environment, and it must make a Service's IP
// reachable from the lab's client.
//
// Needs root (mounts, chroot, namespaces), git, and the control-plane
// tools (make tools). Skipped with -short.
package image
