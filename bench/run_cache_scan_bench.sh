#!/usr/bin/env bash
# End-to-end timing of `modelmgr cache ls` and `modelmgr cache du` on the synthetic caches of
# bench_cache_scan.cpp (1,000 repos / 50,000 files, with and without 40,000 lock files), interleaved with
# `find ROOT -printf ''` and `du -s ROOT` over the same trees. Prints a Markdown table (medians, ratios).
# See bench/README.md ("Cache scan").
#
#   bench/run_cache_scan_bench.sh                       # build dir: build/
#   MODELMGR_BUILD_DIR=build-x BENCH_RUNS=9 bench/run_cache_scan_bench.sh
#   MODELMGR_BENCH_SCAN_DIR=/tmp/scan-caches ...        # keep the caches for the next run
set -euo pipefail

build=${MODELMGR_BUILD_DIR:-build}
runs=${BENCH_RUNS:-7}
mm=$build/bin/modelmgr
gen=$build/bench/bench_cache_scan
for f in "$mm" "$gen"; do
  if [[ ! -x $f ]]; then
    echo "error: $f not found: build it (cmake --build $build --target modelmgr_cli bench_cache_scan)" >&2
    exit 1
  fi
done

keep=${MODELMGR_BENCH_SCAN_DIR:-}
dir=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/modelmgr-scan-bench-XXXXXX")}
if [[ -z $keep ]]; then
  trap 'rm -rf "$dir"' EXIT
fi
echo "building the synthetic caches in $dir (about a minute the first time)..." >&2
MODELMGR_BENCH_SCAN_DIR=$dir "$gen" --benchmark_filter='BM_RefFind|BM_RefDuWithLocks' \
  --benchmark_min_time=0.01 >/dev/null

# Prints the wall-clock milliseconds of one run of "$@".
ms() {
  local start=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || { echo "error: '$*' failed" >&2; exit 1; }
  local end=$EPOCHREALTIME
  echo $(((${end/./} - ${start/./}) / 1000))
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A times
rows=("find" "du -s" "modelmgr cache ls" "modelmgr cache du")
for cache in plain with-locks; do
  root=$dir/$cache/hub
  for ((i = 0; i < runs; i++)); do
    echo "  $cache run $((i + 1))/$runs" >&2
    times[$cache/find]+="$(ms find "$root" -printf '') "
    times[$cache/du -s]+="$(ms du -s "$root") "
    times[$cache/modelmgr cache ls]+="$(ms "$mm" cache ls --cache-dir "$root") "
    times[$cache/modelmgr cache du]+="$(ms "$mm" cache du --cache-dir "$root") "
  done
done

echo "| cache | command | median ms | × find | × du -s | runs (ms) |"
echo "|---|---|---|---|---|---|"
for cache in plain with-locks; do
  find_ms=$(median <<<"${times[$cache/find]}")
  du_ms=$(median <<<"${times[$cache/du -s]}")
  for row in "${rows[@]}"; do
    m=$(median <<<"${times[$cache/$row]}")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$cache" "$row" "$m" \
      "$(awk -v a="$m" -v b="$find_ms" 'BEGIN {printf "%.2f", a / b}')" \
      "$(awk -v a="$m" -v b="$du_ms" 'BEGIN {printf "%.2f", a / b}')" "${times[$cache/$row]% }"
  done
done
