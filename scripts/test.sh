#!/usr/bin/env bash
# Builds modelmgr and runs every test (unit and integration, against the local hub emulator).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
MODELMGR_CMAKE_ARGS="-DMODELMGR_WERROR=ON" bash "$root/scripts/build.sh"
build=${MODELMGR_BUILD_DIR:-$root/build}
ctest --test-dir "$build" --output-on-failure --parallel "$(nproc)" --timeout 600 "$@"
