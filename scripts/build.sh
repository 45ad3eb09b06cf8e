#!/usr/bin/env bash
# Configures and builds modelmgr into ./build (or $MODELMGR_BUILD_DIR). Quiet on success.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/deps.sh"
build=${MODELMGR_BUILD_DIR:-$root/build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086
if ! cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${MODELMGR_CMAKE_ARGS:-} >"$log" 2>&1 ||
   ! cmake --build "$build" --parallel "$(nproc)" ${MODELMGR_TARGETS:+--target $MODELMGR_TARGETS} >>"$log" 2>&1; then
  cat "$log" >&2
  echo "modelmgr: build failed (log above)" >&2
  exit 1
fi
