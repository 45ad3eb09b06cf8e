#!/usr/bin/env bash
# Builds modelmgr with a sanitizer and runs the tests that exercise the download threads under it:
#   scripts/sanitize.sh [thread|address] [extra ctest arguments]
# thread  = ThreadSanitizer into build-tsan/, address = AddressSanitizer + UBSan into build-asan/.
# Runs the suites labelled test_integration (pull, transfer, faults, resume: the modelmgr binary it starts is
# instrumented too), test_net, test_hub and test_transfer. Quiet on success apart from
# ctest's summary. Every sanitizer report (of the tests or of a modelmgr child) lands in
# <build>/sanitizer-logs/ and fails the run; their SUMMARY lines are printed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-thread}
shift || true
case "$kind" in
thread) build=$root/build-tsan ;;
address) build=$root/build-asan ;;
*)
  echo "usage: scripts/sanitize.sh [thread|address] [ctest arguments]" >&2
  exit 2
  ;;
esac

# thread: everything instrumented, the integration harness and its emulator too (races between the binary's
# threads show in the binary; the harness's own threads are checked as a bonus). address: only the binary and
# the unit suites are instrumented; the plain build's integration suite drives the instrumented binary
# (MODELMGR_TEST_BINARY), which halves what must be compiled with the sanitizer.
targets="modelmgr_cli test_net test_hub test_transfer"
[ "$kind" = thread ] && targets="$targets test_integration stand_in_llama_server"
MODELMGR_BUILD_DIR=$build \
  MODELMGR_CMAKE_ARGS="-DMODELMGR_SANITIZE=$kind -DMODELMGR_BUILD_BENCH=OFF ${MODELMGR_CMAKE_ARGS:-}" \
  MODELMGR_TARGETS="$targets" \
  bash "$root/scripts/build.sh"
plain=${MODELMGR_PLAIN_BUILD_DIR:-$root/build}
if [ "$kind" = address ]; then
  MODELMGR_BUILD_DIR=$plain MODELMGR_CMAKE_ARGS="-DMODELMGR_WERROR=ON" \
    MODELMGR_TARGETS="test_integration stand_in_llama_server" bash "$root/scripts/build.sh"
fi

logs=$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
# exitcode: a report makes the process fail even when the rest of the test passes. Suppressions, each
# justified in the file: scripts/tsan.supp (only the test emulator's HTTP server library).
export TSAN_OPTIONS="log_path=$logs/tsan exitcode=66 halt_on_error=0 second_deadlock_stack=1 suppressions=$root/scripts/tsan.supp ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="log_path=$logs/asan detect_leaks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$logs/ubsan print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"

labels='^(test_integration|test_net|test_hub|test_transfer)$'
# Linux >= 6.5 randomises mmap addresses with more bits than TSan's fixed shadow layout allows ("unexpected
# memory mapping"); running without address randomisation avoids it.
run=()
if [ "$kind" = thread ] && command -v setarch >/dev/null && setarch "$(uname -m)" -R true 2>/dev/null; then
  run=(setarch "$(uname -m)" -R)
fi
status=0
# InstallTest builds the installed package's example with plain compiler flags, which cannot link
# instrumented libraries: it only makes sense in a normal build.
if [ "$kind" = thread ]; then
  "${run[@]}" ctest --test-dir "$build" -L "$labels" -E '^InstallTest\.' --output-on-failure --parallel "$(nproc)" "$@" ||
    status=$?
else
  ctest --test-dir "$build" -L '^(test_net|test_hub|test_transfer)$' --output-on-failure --parallel "$(nproc)" "$@" ||
    status=$?
  # CompletionTest also checks the man pages the build writes beside the binary: the instrumented build
  # does not make them.
  MODELMGR_TEST_BINARY=$build/bin/modelmgr ctest --test-dir "$plain" -L '^test_integration$' \
    -E '^(InstallTest|CompletionTest)\.' --output-on-failure --parallel "$(nproc)" "$@" || status=$?
fi

if compgen -G "$logs/*" >/dev/null; then
  echo "sanitizer reports (full text in $logs):" >&2
  grep -h "SUMMARY:" "$logs"/* | sort | uniq -c | sort -rn >&2 || true
  status=1
fi
exit $status
