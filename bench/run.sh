#!/usr/bin/env bash
# run.sh runs every Go benchmark in the module, prints the output and writes
# one results file per package to bench/results/, named after the package
# directory with slashes as underscores (loadbalancer/ipam ->
# loadbalancer_ipam.txt). Called by `make bench`, which first builds the
# control-plane tools the integration benchmarks need.
#
# Environment:
#   BENCHTIME      -benchtime for unit benchmarks (e.g. 3s, 100x); default: go's 1s
#   BENCH          -bench regexp; default: . (all)
#   BENCH_TIMEOUT  go test -timeout per package; default: 20m
#   GOFLAGS        passed through by go itself (e.g. -tags=...)
#
# Benchmarks under test/integration/ and test/e2e/ start a real apiserver
# (e2e: and the network-namespace lab) and run once (-benchtime=1x) whatever
# BENCHTIME says. Packages without a Benchmark function are skipped. Exits
# non-zero if any package failed, after running them all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="${ROOT}/bench/results"
BENCHTIME="${BENCHTIME:-}"
BENCH="${BENCH:-.}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-20m}"

cd "${ROOT}"
mkdir -p "${RESULTS}"

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
	commit="${commit} (with uncommitted changes)"
fi
header="$(
	printf '# date:   %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf '# go:     %s\n' "$(go version)"
	printf '# nproc:  %s\n' "$(nproc)"
	printf '# commit: %s\n' "${commit}"
	printf '# load:   %s (1, 5, 15 min, at start; the machine is shared)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
)"
echo "${header}"

# Packages whose test files declare at least one benchmark.
module="$(go list -m)"
listing="$(go list -e -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)"
pkgs=()
while read -r pkg dir files; do
	[[ -n "${files}" ]] || continue
	read -ra tests <<<"${files}"
	if (cd "${dir}" && grep -qs '^func Benchmark' "${tests[@]}"); then
		pkgs+=("${pkg}")
	fi
done <<<"${listing}"

if [[ ${#pkgs[@]} -eq 0 ]]; then
	echo "no benchmarks found"
	exit 0
fi

failed=()
for pkg in "${pkgs[@]}"; do
	rel="${pkg#"${module}"}"
	rel="${rel#/}"
	name="${rel//\//_}"
	args=(-run '^$' -bench "${BENCH}" -benchmem -count 1 -timeout "${BENCH_TIMEOUT}")
	case "${rel}" in
	test/integration | test/integration/* | test/e2e/*) args+=(-benchtime=1x) ;;
	*) [[ -z "${BENCHTIME}" ]] || args+=("-benchtime=${BENCHTIME}") ;;
	esac

	out="${RESULTS}/${name:-root}.txt"
	printf '%s\n# cmd:    go test %s ./%s\n' "${header}" "${args[*]}" "${rel}" >"${out}"
	echo
	echo "== ${pkg} -> ${out#"${ROOT}/"}"
	if ! go test "${args[@]}" "${pkg}" 2>&1 | tee -a "${out}"; then
		failed+=("${pkg}")
	fi
done

# The chaos suite (test/chaos) has no Benchmark function; its short profile
# runs here for its figures (operations, faults, violations), written by the
# test itself. `make soak` runs the long profile. BENCH_SKIP_CHAOS=1 skips it.
if [[ -z "${BENCH_SKIP_CHAOS:-}" ]]; then
	echo
	echo "== chaos suite, short profile -> bench/results/chaos-short.txt"
	if ! CHAOS_RESULTS="${RESULTS}/chaos-short.txt" go test -count=1 -timeout "${BENCH_TIMEOUT}" -run '^TestChaos$' ./test/chaos/; then
		failed+=("test/chaos")
	fi
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "benchmarks FAILED in: ${failed[*]}" >&2
	exit 1
fi
echo "results in ${RESULTS#"${ROOT}/"}/"
