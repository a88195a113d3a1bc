#!/usr/bin/env bash
# Compares `crew run -j 8` with `xargs -P 8` and GNU parallel `-j 8` on 2,000
# `true` jobs, one per input line, in one hyperfine run, then measures
# `crew work --post` throughput (msgs/s) against a local no-op HTTP server.
#
#   bash benchmarks/cli/run.sh
#
# Needs hyperfine and GNU parallel (Debian packages hyperfine and parallel).
# Set CREW_BENCH_CLI_JOBS for another number of jobs, RUNS for another
# number of hyperfine runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

n=${CREW_BENCH_CLI_JOBS:-2000}
runs=${RUNS:-10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/crew" ./cmd/crew
seq "$n" >"$tmp/input"

echo "--- $n true jobs, 8 at a time"
hyperfine --warmup 2 --runs "$runs" --export-markdown "$tmp/run.md" \
	-n "crew run -j 8" "$tmp/crew run -j 8 -- true <$tmp/input 2>/dev/null" \
	-n "xargs -P 8" "xargs -P 8 -n 1 true <$tmp/input" \
	-n "parallel -j 8" "parallel --will-cite -j 8 true <$tmp/input"
cat "$tmp/run.md"

echo "--- crew work -c 8 --post, $n messages"
(cd benchmarks && CREW_BENCH_CLI_JOBS=$n go test -run '^$' -bench WorkPost -benchtime 5x -count 3 ./cli/)
