#!/usr/bin/env bash
# progress.sh LABEL TOTAL COMMAND [ARG...] runs a long `go build -v` (or
# `go list`, `go mod download`) with its output in a log file, and prints
# every PROGRESS_INTERVAL seconds (default 20) what is being built, how long
# it has run, and how far it got:
#
#   [tools] building etcd kube-apiserver kubectl: 6m40s, 1234 of <=2911 packages compiled (last: k8s.io/api/core/v1)
#
# so that a cold build, which prints nothing for many minutes, is never
# mistaken for a hang. TOTAL is the number of packages the build needs
# (`go list -deps | wc -l`), or 0 when unknown. `go build -v` names each
# package as it compiles it; those found in the build cache are not named,
# so on a warm cache the count stays below TOTAL. Exits with the command's
# status; on failure it
# prints the log lines that are not package names (the errors) and the log's
# path. PROGRESS_PREFIX (default "[tools]") starts every line.
set -euo pipefail

if (($# < 3)); then
	echo "usage: $0 LABEL TOTAL COMMAND [ARG...]" >&2
	exit 2
fi
label="$1"
total="$2"
shift 2

interval="${PROGRESS_INTERVAL:-20}"
prefix="${PROGRESS_PREFIX:-[tools]}"
log="$(mktemp "${TMPDIR:-/tmp}/progress.XXXXXX.log")"

human() { # seconds -> 4m05s
	local s=$1
	if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "${s}"; fi
}

# A package line from go -v is a bare import path; everything else ("go:
# downloading x v1", "# pkg" before compiler errors, the errors themselves)
# has a space or starts with "#".
report() {
	local elapsed=$1 downloads pkgs last
	downloads=$(grep -c '^go: downloading ' "${log}" || true)
	pkgs=$(grep -c -E '^[^ #]+$' "${log}" || true)
	last=$(grep -E '^[^ #]+$' "${log}" | tail -n 1 || true)
	if ((pkgs == 0)); then
		if ((downloads > 0)); then
			printf '%s %s: %s, downloading modules (%d so far)\n' "${prefix}" "${label}" "$(human "${elapsed}")" "${downloads}"
		else
			printf '%s %s: %s, nothing compiled yet (loading packages, or linking what the build cache holds)\n' "${prefix}" "${label}" "$(human "${elapsed}")"
		fi
	elif ((total > 0 && pkgs >= total)); then
		printf '%s %s: %s, all %d packages compiled, linking\n' "${prefix}" "${label}" "$(human "${elapsed}")" "${total}"
	elif ((total > 0)); then
		printf '%s %s: %s, %d of <=%d packages compiled (last: %s)\n' "${prefix}" "${label}" "$(human "${elapsed}")" "${pkgs}" "${total}" "${last}"
	else
		printf '%s %s: %s, %d packages compiled (last: %s)\n' "${prefix}" "${label}" "$(human "${elapsed}")" "${pkgs}" "${last}"
	fi
}

start=${SECONDS}
"$@" >"${log}" 2>&1 &
cmd=$!
# The ticker is a child of this script and ends with it; the command is
# waited for below. A signal (Ctrl-C) reaches both through the process group.
(
	while sleep "${interval}"; do
		kill -0 "${cmd}" 2>/dev/null || exit 0
		report $((SECONDS - start))
	done
) &
ticker=$!
trap 'kill "${ticker}" 2>/dev/null || true' EXIT

status=0
wait "${cmd}" || status=$?
kill "${ticker}" 2>/dev/null || true
wait "${ticker}" 2>/dev/null || true

if ((status != 0)); then
	printf '%s %s failed after %s (exit %d); errors:\n' "${prefix}" "${label}" "$(human $((SECONDS - start)))" "${status}" >&2
	grep -v -E '^[^ #]+$' "${log}" | grep -v '^go: downloading ' | tail -n 60 >&2 || true
	printf '%s full log: %s\n' "${prefix}" "${log}" >&2
	exit "${status}"
fi
rm -f "${log}"
printf '%s %s: done in %s\n' "${prefix}" "${label}" "$(human $((SECONDS - start)))"
