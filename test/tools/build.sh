#!/usr/bin/env bash
# build.sh compiles the real control-plane binaries used by the integration
# tests (etcd, kube-apiserver, kube-controller-manager, kubectl) from the Go
# module proxy into _output/tools/<version>/ at the repository root.
#
# The build is cached: a cold build takes several minutes, so it is skipped
# when the stamp for this version and these module inputs exists and every
# binary is present. Called by `make tools`; safe to run again at any time.
set -euo pipefail

# The one place the Kubernetes version is set. go.mod must require
# k8s.io/kubernetes at this version and replace the staging modules with the
# matching v0.x.y; the check below refuses to build a mismatch.
K8S_VERSION="v1.37.2"

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${TOOLS_DIR}/../.." && pwd)"
OUT_DIR="${REPO_ROOT}/_output/tools/${K8S_VERSION}"
BINARIES=(etcd kubectl kube-apiserver kube-controller-manager)

log() { printf '[tools] %s\n' "$*"; }

pkg_for() {
	case "$1" in
	etcd) echo ./cmd/etcd ;;
	kubectl) echo ./cmd/kubectl ;;
	kube-apiserver) echo k8s.io/kubernetes/cmd/kube-apiserver ;;
	kube-controller-manager) echo k8s.io/kubernetes/cmd/kube-controller-manager ;;
	*) echo "unknown binary $1" >&2; return 1 ;;
	esac
}

cd "${TOOLS_DIR}"

if ! grep -Eq "^[[:space:]]*k8s.io/kubernetes ${K8S_VERSION}\$" go.mod &&
	! grep -Eq "^require k8s.io/kubernetes ${K8S_VERSION}\$" go.mod; then
	echo "test/tools/go.mod does not require k8s.io/kubernetes ${K8S_VERSION}; update K8S_VERSION or go.mod" >&2
	exit 1
fi

# The key covers everything that changes the output: the module graph and our
# own mains (the kube-* mains live in k8s.io/kubernetes, covered by go.sum).
inputs_hash="$(cat go.mod go.sum cmd/*/main.go build.sh | sha256sum | cut -c1-16)"
stamp="${OUT_DIR}/.stamp-${K8S_VERSION}-${inputs_hash}"

all_present() {
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x "${OUT_DIR}/${b}" ]] || return 1
	done
}

mkdir -p "${OUT_DIR}"

# Serialize concurrent callers (parallel make, two terminals): the second one
# waits and then finds the stamp.
exec 9>"${OUT_DIR}/.lock"
flock 9

if [[ -f "${stamp}" ]] && all_present; then
	log "up to date: ${K8S_VERSION} (${inputs_hash})"
	echo "${OUT_DIR}"
	exit 0
fi

log "building Kubernetes ${K8S_VERSION} tools into ${OUT_DIR} (a cold build takes several minutes)"
rm -f "${OUT_DIR}"/.stamp-*

ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
major="${K8S_VERSION#v}"
major="${major%%.*}"
minor="${K8S_VERSION#v*.}"
minor="${minor%%.*}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=${major}"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor}"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

# GOWORK=off keeps a stray go.work from pulling the main module in;
# CGO_ENABLED=0 gives static binaries like the upstream release builds;
# -buildvcs=false because the tools module sits inside the project's git tree.
export GOWORK=off CGO_ENABLED=0

total_start=${SECONDS}
for b in "${BINARIES[@]}"; do
	pkg="$(pkg_for "${b}")"
	start=${SECONDS}
	log "go build ${pkg} -> ${b}"
	# Build to a temporary name so an interrupted build never leaves a
	# truncated binary that looks present.
	go build -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${OUT_DIR}/${b}.tmp" "${pkg}"
	mv -f "${OUT_DIR}/${b}.tmp" "${OUT_DIR}/${b}"
	log "built ${b} in $((SECONDS - start))s ($(du -h "${OUT_DIR}/${b}" | cut -f1))"
done

touch "${stamp}"
log "done in $((SECONDS - total_start))s"
echo "${OUT_DIR}"
