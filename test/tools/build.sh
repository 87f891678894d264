#!/usr/bin/env bash
# build.sh [BINARY...] compiles the real tools that the tests and the demo
# run, from the Go module proxy, into _output/tools/<version>/ at the
# repository root:
#
#   etcd, kube-apiserver, kubectl    the control plane (all that `make demo` needs)
#   kube-controller-manager          for the tests that run Kubernetes' own controllers
#   helm                             for the chart tests (test/helm)
#
# With no arguments it builds all of them (`make tools`, for `make test`);
# `make demo` asks for the first three only.
#
# Each binary is cached on its own. It is up to date when a key over what
# goes into it (Go version, flags, its module's go.mod and go.sum, and for
# our own mains their source) is unchanged. When that key changed, the
# binary's embedded build info (`go version -m`: Go version, build settings
# and the exact module versions linked in) is compared with what a build
# would link now (`go list -deps`), and its -ldflags and main's source with
# .built-<binary>: a go.mod edit that does not touch a binary's
# dependencies, or an edit of this script, rebuilds nothing.
#
# A cold build takes long (kube-apiserver alone is ~2,000 packages), so it
# prints progress every 20 s (PROGRESS_INTERVAL) via progress.sh. The
# binaries that share a module are built by one `go build`, which compiles
# every shared package once and keeps both cores busy while another links.
set -euo pipefail

# The one place the Kubernetes version is set. go.mod must require
# k8s.io/kubernetes at this version and replace the staging modules with the
# matching v0.x.y; the check below refuses to build a mismatch.
K8S_VERSION="v1.37.2"
# helm's version, in helm/go.mod (a module of its own: see there).
HELM_VERSION="v4.3.1"

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${TOOLS_DIR}/../.." && pwd)"
OUT_DIR="${REPO_ROOT}/_output/tools/${K8S_VERSION}"
ALL_BINARIES=(etcd kubectl kube-apiserver kube-controller-manager helm)

log() { printf '[tools] %s\n' "$*"; }

pkg_for() {
	case "$1" in
	etcd) echo ./cmd/etcd ;;
	kubectl) echo ./cmd/kubectl ;;
	kube-apiserver) echo k8s.io/kubernetes/cmd/kube-apiserver ;;
	kube-controller-manager) echo k8s.io/kubernetes/cmd/kube-controller-manager ;;
	helm) echo helm.sh/helm/v4/cmd/helm ;;
	*)
		echo "unknown tool '$1'; known: ${ALL_BINARIES[*]}" >&2
		return 1
		;;
	esac
}

# The module directory a binary is built in.
module_for() {
	case "$1" in
	helm) echo "${TOOLS_DIR}/helm" ;;
	*) echo "${TOOLS_DIR}" ;;
	esac
}

ldflags_for() {
	# -s -w: no symbol table or DWARF, a third smaller and quicker to link.
	local f="-s -w"
	case "$1" in
	helm)
		f+=" -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}"
		;;
	*)
		local major minor
		major="${K8S_VERSION#v}"
		major="${major%%.*}"
		minor="${K8S_VERSION#v*.}"
		minor="${minor%%.*}"
		f+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
		f+=" -X k8s.io/component-base/version.gitMajor=${major}"
		f+=" -X k8s.io/component-base/version.gitMinor=${minor}"
		f+=" -X k8s.io/component-base/version.gitTreeState=clean"
		;;
	esac
	echo "${f}"
}

# Our own mains (./cmd/x): their source is not in the build info.
local_src_hash() {
	local pkg
	pkg="$(pkg_for "$1")"
	if [[ "${pkg}" == ./* ]]; then
		cat "$(module_for "$1")/${pkg#./}"/*.go | sha256sum | cut -c1-16
	else
		echo none
	fi
}

cd "${TOOLS_DIR}"

if ! grep -Eq "^[[:space:]]*k8s.io/kubernetes ${K8S_VERSION}\$" go.mod &&
	! grep -Eq "^require k8s.io/kubernetes ${K8S_VERSION}\$" go.mod; then
	echo "test/tools/go.mod does not require k8s.io/kubernetes ${K8S_VERSION}; update K8S_VERSION or go.mod" >&2
	exit 1
fi
if ! grep -Eq "^[[:space:]]*helm.sh/helm/v4 ${HELM_VERSION}( |\$)" helm/go.mod; then
	echo "test/tools/helm/go.mod does not require helm.sh/helm/v4 ${HELM_VERSION}; update HELM_VERSION or helm/go.mod" >&2
	exit 1
fi

if (($# == 0)); then
	set -- "${ALL_BINARIES[@]}"
fi
wanted=()
for b in "$@"; do
	pkg_for "${b}" >/dev/null
	wanted+=("${b}")
done

# GOWORK=off keeps a stray go.work from pulling the main module in;
# CGO_ENABLED=0 gives static binaries like the upstream release builds (and
# the same build cache entries as `make build`); -buildvcs=false because the
# tools module sits inside the project's git tree. -trimpath: no local paths
# in the binaries. No -race and no debug info: these are tools, not tested
# code. Changing any compile flag here invalidates every cached package of a
# machine's build cache, so it costs one full cold build there.
export GOWORK=off CGO_ENABLED=0
BUILD_FLAGS=(-trimpath -buildvcs=false)
go_env="$(go env GOVERSION GOOS GOARCH GOAMD64 GOARM64 | tr '\n' ' ')"

# fast_key: changes whenever anything that goes into the binary may have.
fast_key() {
	local b=$1 mod
	mod="$(module_for "${b}")"
	{
		echo "${go_env}" "${CGO_ENABLED}" "${BUILD_FLAGS[*]}" "$(ldflags_for "${b}")" "$(pkg_for "${b}")"
		cat "${mod}/go.mod" "${mod}/go.sum"
		local_src_hash "${b}"
	} | sha256sum | cut -c1-16
}

# What goes into a binary that its build info does not show (-trimpath
# leaves -ldflags out of it): kept in .built-<binary> next to it.
built_info() {
	echo "ldflags=$(ldflags_for "$1")"
	echo "src=$(local_src_hash "$1")"
}

# What a build would put in the binary, in the form `go version -m` prints:
# the Go version, the build settings that matter and every module linked in
# (with its replacement).
expected_info() {
	local b=$1
	(
		cd "$(module_for "${b}")"
		echo "go $(go env GOVERSION)"
		echo "CGO_ENABLED=${CGO_ENABLED} GOOS=$(go env GOOS) GOARCH=$(go env GOARCH) -trimpath=true"
		go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{with .Replace}} => {{.Path}} {{.Version}}{{end}}{{end}}{{end}}' \
			"$(pkg_for "${b}")" | sort -u | sed '/^$/d'
	)
}

actual_info() {
	local bin=$1
	go version -m "${bin}" | awk '
		NR == 1 { print "go " $2; next }
		$1 == "build" && $2 ~ /^CGO_ENABLED=/ { cgo = $2; next }
		$1 == "build" && $2 ~ /^GOOS=/ { goos = $2; next }
		$1 == "build" && $2 ~ /^GOARCH=/ { goarch = $2; next }
		$1 == "build" && $2 ~ /^-trimpath=/ { trim = $2; next }
		# mod: the module of the main package, unless it is this one.
		$1 == "mod" && $3 != "(devel)" { dep = $2 " " $3; deps[dep] = 1; next }
		$1 == "dep" { dep = $2 " " $3; deps[dep] = 1; next }
		$1 == "=>" { delete deps[dep]; deps[dep " => " $2 " " $3] = 1; next }
		END {
			print cgo " " goos " " goarch " " trim
			fflush()
			for (d in deps) print d | "sort -u"
			close("sort -u")
		}'
}

mkdir -p "${OUT_DIR}"

# Serialize concurrent callers (parallel make, two terminals): the second one
# waits and then finds the binaries up to date.
exec 9>"${OUT_DIR}/.lock"
flock 9

# The stamp of the build.sh before per-binary keys vouches for the binaries
# it built; once each of them has its own .built-<binary>, it is not needed.
forget_legacy_stamp() {
	local b
	for b in "${ALL_BINARIES[@]}"; do
		if [[ -x "${OUT_DIR}/${b}" && ! -f "${OUT_DIR}/.built-${b}" ]]; then
			return 0
		fi
	done
	rm -f "${OUT_DIR}"/.stamp-*
}

# Decide, per binary, whether it must be built.
todo=()
for b in "${wanted[@]}"; do
	bin="${OUT_DIR}/${b}"
	key="$(fast_key "${b}")"
	keyfile="${OUT_DIR}/.key-${b}"
	if [[ -x "${bin}" && -f "${keyfile}" && "$(cat "${keyfile}")" == "${key}" ]]; then
		continue
	fi
	if [[ -x "${bin}" ]]; then
		# A binary from before .built-<binary> files (the build.sh with one
		# stamp per version) has none; that stamp then vouches for its
		# -ldflags, the same as now, and its main's source.
		built_ok=false
		if [[ -f "${OUT_DIR}/.built-${b}" ]]; then
			cmp -s <(built_info "${b}") "${OUT_DIR}/.built-${b}" && built_ok=true
		elif [[ "${b}" != helm ]] && compgen -G "${OUT_DIR}/.stamp-${K8S_VERSION}-*" >/dev/null; then
			built_ok=true
		fi
		if ${built_ok}; then
			log "${b}: go.mod, go.sum or Go changed since it was built; comparing its build info with the module graph"
			if cmp -s <(expected_info "${b}") <(actual_info "${bin}"); then
				log "${b}: same Go and the same module versions, kept"
				echo "${key}" >"${keyfile}"
				built_info "${b}" >"${OUT_DIR}/.built-${b}"
				continue
			fi
		fi
	fi
	todo+=("${b}")
done

if ((${#todo[@]} == 0)); then
	forget_legacy_stamp
	log "up to date: ${wanted[*]} (${K8S_VERSION}, helm ${HELM_VERSION})"
	echo "${OUT_DIR}"
	exit 0
fi

total_start=${SECONDS}
log "building ${todo[*]} into ${OUT_DIR}"
log "on empty Go caches this is the longest step of a first run (test/demo/README.md, \"How long the first run takes\"); progress every ${PROGRESS_INTERVAL:-20}s"

# One `go build` per module: the shared packages compile once, and while one
# binary links the other core compiles for the next. (The binaries of one
# module share their -ldflags.)
build_dir="$(mktemp -d "${OUT_DIR}/.build.XXXXXX")"
trap 'rm -rf "${build_dir}"' EXIT
for mod in "${TOOLS_DIR}" "${TOOLS_DIR}/helm"; do
	group=()
	pkgs=()
	for b in "${todo[@]}"; do
		if [[ "$(module_for "${b}")" == "${mod}" ]]; then
			group+=("${b}")
			pkgs+=("$(pkg_for "${b}")")
		fi
	done
	((${#group[@]} > 0)) || continue
	(
		cd "${mod}"
		# Resolving first also downloads the modules (with progress): and
		# the package count lets the build report how far it got.
		list="${build_dir}/deps-${group[0]}.txt"
		"${TOOLS_DIR}/progress.sh" "resolving ${group[*]}" 0 \
			sh -c 'out=$1; shift; exec go list -deps -f "{{.ImportPath}}" "$@" >"${out}"' sh "${list}" "${pkgs[@]}"
		"${TOOLS_DIR}/progress.sh" "building ${group[*]}" "$(wc -l <"${list}")" \
			go build -v "${BUILD_FLAGS[@]}" -ldflags "$(ldflags_for "${group[0]}")" -o "${build_dir}/" "${pkgs[@]}"
	)
	for b in "${group[@]}"; do
		# Rename into place: an interrupted build never leaves a truncated
		# binary that looks present.
		mv -f "${build_dir}/${b}" "${OUT_DIR}/${b}"
		fast_key "${b}" >"${OUT_DIR}/.key-${b}"
		built_info "${b}" >"${OUT_DIR}/.built-${b}"
		log "built ${b} ($(du -h "${OUT_DIR}/${b}" | cut -f1))"
	done
done

forget_legacy_stamp
log "done in $((SECONDS - total_start))s"
echo "${OUT_DIR}"
