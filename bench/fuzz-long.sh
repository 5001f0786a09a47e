#!/usr/bin/env bash
# Long fuzzing runs: every cargo-fuzz target (protocol/fuzz and dataplane/fuzz) for MINUTES
# each (default 10), one after the other on one core, then a table of executions and crashes
# per target. The committed seed corpus is only read; what libFuzzer finds is kept under
# bench/results/fuzz-corpus/<crate>/<target> (git-ignored), so a later run starts from it.
#
#   bench/fuzz-long.sh [MINUTES] [TARGET...]        e.g. bench/fuzz-long.sh 2 dataplane/ws_reader
#   nice -n 19 bench/fuzz-long.sh                   on a shared machine
#
# libFuzzer stops a target at its first crash, so "crashes" is 0 or 1; the crashing input and
# the command to reproduce it are printed (see scripts/fuzz-smoke). Exit status 1 if any crashed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
minutes=${1:-10}
[[ $# -gt 0 ]] && shift
if ! [[ $minutes =~ ^[0-9]+$ ]] || [[ $minutes -eq 0 ]]; then
    echo "fuzz-long: MINUTES must be a positive whole number, got '$minutes'" >&2
    exit 2
fi
mkdir -p "$root/bench/results"
report="$root/bench/results/fuzz-$(date -u +%Y%m%dT%H%M%SZ).tsv"
: >"$report"
status=0
FUZZ_REPORT="$report" FUZZ_KEEP_CORPUS="$root/bench/results/fuzz-corpus" \
    "$root/scripts/fuzz-smoke" "$((minutes * 60))" "$@" || status=$?

echo
echo "| target | time | executions | exec/s | corpus found | crashes |"
echo "|---|---|---|---|---|---|"
total_crashes=0
while IFS=$'\t' read -r name secs result runs rate units crashes; do
    printf "| %s | %s min | %s | %s | %s | %s |\n" "$name" "$((secs / 60))" "$runs" "$rate" "$units" "$crashes"
    total_crashes=$((total_crashes + crashes))
done <"$report"
echo
echo "fuzz-long: $(wc -l <"$report") targets, $total_crashes crashes; report $report"
exit "$status"
