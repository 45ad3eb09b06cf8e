#!/usr/bin/env bash
# Download benchmarks for modelmgr against the local Hub emulator (loopback only). Never part of the test
# suite. Every number is reported as a ratio against a reference client (curl, aria2c) measured in the same
# run, interleaved with the modelmgr runs, because absolute numbers on shared machines are noise.
#
#   bench/run_download_bench.sh [loopback|throttled|totalcap|latency|snapshot|rss|all]   (default: all)
#
# Environment:
#   MODELMGR_BUILD_DIR   build directory holding bin/modelmgr and bin/modelmgr-hub-emulator (default: build/);
#                        built with scripts/build.sh when a binary is missing
#   BENCH_RUNS           runs per measurement, the median is reported (default 3)
#   BENCH_SLOW_REF_RUNS  runs of the two slow, low-variance references: single-connection curl at 10 MB/s
#                        (~27 s, paced by the emulator) and the one-curl-process-per-file loop (~1-2 min,
#                        process start-up bound); default 1 to keep `all` under ~10 min on 2 cores
#   BENCH_TIMEOUT        seconds any single command may take before the bench fails (default 240)
#   BENCH_LOOPBACK_SIZE  bytes of scenario 1's file (default 1 GiB)
#   BENCH_THROTTLE_SIZE  bytes of scenario 2's file (default 1 GiB)
#   BENCH_TOTALCAP_SIZE  bytes of the total-cap scenario's file (default 1 GiB)
#   BENCH_TOTAL_RATE     the emulator's total cap in bytes/s for that scenario (default 100000000)
#   BENCH_LATENCY_MS     per-request latency of the latency scenario (default 20)
#   BENCH_RSS_SIZE       bytes of scenario 4's file (default 2 GiB)
#   TMPDIR               where the temporary downloads go (needs ~2 x BENCH_RSS_SIZE free)
# See bench/README.md for what each scenario measures and how to read the table.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and printf must use '.' as decimal point

usage() { echo "usage: $0 [loopback|throttled|totalcap|latency|snapshot|rss|all]" >&2; }
scenario=${1:-all}
case $scenario in
  loopback | throttled | totalcap | latency | snapshot | rss | all) ;;
  -h | --help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
build=${MODELMGR_BUILD_DIR:-$root/build}
MM=$build/bin/modelmgr
EMU=$build/bin/modelmgr-hub-emulator
RUNS=${BENCH_RUNS:-3}
SLOW_RUNS=${BENCH_SLOW_REF_RUNS:-1}
((SLOW_RUNS >= 1 && SLOW_RUNS <= RUNS)) || SLOW_RUNS=$RUNS
CMD_TIMEOUT=${BENCH_TIMEOUT:-240}
LOOPBACK_SIZE=${BENCH_LOOPBACK_SIZE:-$((1 << 30))}
THROTTLE_SIZE=${BENCH_THROTTLE_SIZE:-$((1 << 30))}
THROTTLE_BPS=10000000
TOTALCAP_SIZE=${BENCH_TOTALCAP_SIZE:-$((1 << 30))}
TOTAL_RATE=${BENCH_TOTAL_RATE:-100000000}
LATENCY_MS=${BENCH_LATENCY_MS:-20}
RSS_SIZE=${BENCH_RSS_SIZE:-$((2 << 30))}
RSS_TARGET_MIB=64

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for tool in curl aria2c timeout cmp sha256sum awk sort; do
  command -v "$tool" >/dev/null || die "'$tool' is required (Debian: scripts/deps.sh installs curl and aria2)"
done

if [[ ! -x $MM || ! -x $EMU ]]; then
  log "building modelmgr and the hub emulator into $build (scripts/build.sh)"
  MODELMGR_BUILD_DIR=$build MODELMGR_TARGETS="modelmgr_cli hub_emulator" bash "$root/scripts/build.sh"
  [[ -x $MM && -x $EMU ]] || die "build did not produce $MM and $EMU"
fi

# Isolation: loopback only (no proxy), no token, no user cache/config, no offline mode.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
unset HF_TOKEN HF_TOKEN_PATH HF_HUB_CACHE HF_HUB_OFFLINE HF_HUB_DISABLE_SYMLINKS HF_HUB_DOWNLOAD_TIMEOUT \
  HF_HUB_ETAG_TIMEOUT HF_HUB_DISABLE_IMPLICIT_TOKEN MODELMGR_RETRY_BASE_MS HF_ENDPOINT
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

work=$(mktemp -d "${TMPDIR:-/tmp}/modelmgr-bench.XXXXXX")
export HF_HOME=$work/hf-home XDG_CACHE_HOME=$work/xdg-cache
emu_pids=()

stop_all_emulators() {
  local pid
  for pid in "${emu_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${emu_pids[@]}"; do
    # The emulator exits promptly on SIGTERM; do not hang the trap if it does not.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  emu_pids=()
}
cleanup() {
  local rc=$?
  stop_all_emulators
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ------------------------------------------------------------------------------------------------

# start_emulator ARGS... : starts an emulator, sets EP (hub endpoint), CDN, EMU_PID.
start_emulator() {
  local out=$work/emulator.$RANDOM.out
  "$EMU" --port 0 "$@" >"$out" 2>&1 &
  EMU_PID=$!
  emu_pids+=("$EMU_PID")
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q '^endpoint=' "$out" 2>/dev/null && break
    kill -0 "$EMU_PID" 2>/dev/null || die "emulator exited: $(cat "$out")"
    sleep 0.05
  done
  grep -q '^endpoint=' "$out" || die "emulator did not start within 10 s"
  EP=$(sed -n 's/^endpoint=\([^ ]*\).*/\1/p' "$out")
  CDN=$(sed -n 's/.* cdn=\([^ ]*\).*/\1/p' "$out")
  [[ $EP == http://127.0.0.1:* && $CDN == http://127.0.0.1:* ]] || die "unexpected emulator line: $(cat "$out")"
}

stop_emulator() {
  stop_all_emulators
}

# Sets LOCATION and LINKED_ETAG from a HEAD of the resolve URL $1 (the emulator answers 302 to the CDN).
# The first HEAD also waits until the emulator has hashed the file, so no timed run pays for that.
resolve_lfs() {
  local headers
  headers=$(timeout "$CMD_TIMEOUT" curl -sS -I "$1" | tr -d '\r')
  LOCATION=$(awk 'tolower($1) == "location:" { print $2 }' <<<"$headers")
  LINKED_ETAG=$(awk 'tolower($1) == "x-linked-etag:" { gsub(/"/, "", $2); print $2 }' <<<"$headers")
  [[ $LOCATION == "$CDN"/* && ${#LINKED_ETAG} -eq 64 ]] || die "unexpected answer to HEAD $1: $headers"
}

admin_post() { # PATH [JSON]
  timeout 10 curl -sS -f -X POST -H 'Content-Type: application/json' --data "${2:-}" "$EP$1" >/dev/null ||
    die "emulator admin call $1 failed"
}

# Total requests the emulator has answered since the last reset.
emulator_requests() {
  timeout 10 curl -sS -f "$EP/_emulator/counters" | grep -o '"requests":{[^}]*}' | grep -o ':[0-9]*' |
    tr -d : | awk '{ s += $1 } END { print s + 0 }'
}

# timed CMD... : runs CMD (bounded by BENCH_TIMEOUT, output to $work/last.out/.err), sets T (seconds).
timed() {
  sync # flush the previous run's dirty pages so they are not written back during this one
  local t0=$EPOCHREALTIME rc=0
  timeout "$CMD_TIMEOUT" "$@" >"$work/last.out" 2>"$work/last.err" || rc=$?
  local t1=$EPOCHREALTIME
  if ((rc != 0)); then
    cat "$work/last.err" >&2
    die "command failed (exit $rc; 124 = killed after BENCH_TIMEOUT=${CMD_TIMEOUT}s): $*"
  fi
  T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
mbps() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.0f", s / 1e6 / t }'; }
join_runs() { local IFS=' '; echo "$*"; }
human() { awk -v b="$1" 'BEGIN { if (b >= 2^30) printf "%g GiB", b / 2^30; else printf "%g MiB", b / 2^20 }'; }

# Verifies a downloaded file: the reference (first) copy by sha256, every other copy by cmp against it.
verify_against() { # FILE REFERENCE WHAT
  [[ -f $1 ]] || die "$3: expected file $1 is missing"
  cmp -s "$1" "$2" || die "$3: $1 differs from the reference download"
}
verify_sha256() { # FILE SHA256 WHAT
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [[ $got == "$2" ]] || die "$3: sha256 $got, expected $2"
}

# modelmgr's blob for bench/big in cache $1
mm_blob() { echo "$1/models--bench--big/blobs/$LINKED_ETAG"; }
# Count resume-state files left behind after a successful pull (they should be removed on success).
leftover_state=0
check_leftovers() { # CACHE
  local n
  n=$(find "$1" -name '*.incomplete' 2>/dev/null | wc -l)
  ((n == 0)) || { leftover_state=$((leftover_state + 1)); log "note: $n *.incomplete file(s) left in $1 after a successful pull"; }
}

# The connection count the engine settled on and its peak, from the `done` event of `--json` progress
# (stderr of the last timed command): "N connections to ORIGIN (peak P)". Sets CONN ("N (peak P)").
read_connections() {
  CONN=$(grep '"event":"done"' "$work/last.err" | grep -o '"message":"[0-9]* connections to [^"]*(peak [0-9]*)' |
    sed 's/.*"message":"\([0-9]*\) connections to .*(peak \([0-9]*\))/\1 (peak \2)/' | tail -1)
  [[ -n $CONN ]] || CONN="?"
}

if command -v openssl >/dev/null; then HASH_CMD="openssl dgst -sha256"; else HASH_CMD=sha256sum; fi

ROWS=()
row() { ROWS+=("| $(join_runs "$@" | sed 's/ *§ */ | /g') |"); }

# ---- scenario 1: 1 GiB over loopback ------------------------------------------------------------------------

bench_loopback() {
  local size=$LOOPBACK_SIZE
  log "loopback: $(human "$size") file, $RUNS runs each"
  start_emulator --no-default-repos --big-file-size "$size"
  resolve_lfs "$EP/bench/big/resolve/main/big.bin"
  local d=$work/loopback ref=$work/loopback/ref.bin
  mkdir -p "$d"
  local -a t_curl=() t_curl_full=() t_mm=() t_mm1=() c_mm=()
  local i
  for ((i = 1; i <= RUNS; i++)); do
    rm -f "$d/curl.bin"
    timed curl -sS -o "$d/curl.bin" "$LOCATION"
    t_curl+=("$T")
    if [[ ! -f $ref ]]; then
      verify_sha256 "$d/curl.bin" "$LINKED_ETAG" "curl"
      mv "$d/curl.bin" "$ref"
    else
      verify_against "$d/curl.bin" "$ref" "curl"
    fi

    rm -rf "$d/mm"
    timed env HF_ENDPOINT="$EP" "$MM" --json pull bench/big big.bin --cache-dir "$d/mm"
    t_mm+=("$T")
    read_connections
    c_mm+=("$CONN")
    verify_against "$(mm_blob "$d/mm")" "$ref" "modelmgr"
    check_leftovers "$d/mm"
    rm -rf "$d/mm"

    timed env HF_ENDPOINT="$EP" "$MM" pull bench/big big.bin --cache-dir "$d/mm1" --quiet --connections 1
    t_mm1+=("$T")
    verify_against "$(mm_blob "$d/mm1")" "$ref" "modelmgr --connections 1"
    check_leftovers "$d/mm1"
    rm -rf "$d/mm1"

    # Same work as modelmgr does, done serially by standard tools: download, sha256, fsync. The hash uses
    # `openssl dgst` when available (same libcrypto SHA-256 as modelmgr; coreutils' sha256sum is several
    # times slower on CPUs with SHA extensions and would flatter modelmgr).
    rm -f "$d/curl.bin"
    # shellcheck disable=SC2016 # expanded by the inner bash
    timed bash -c 'curl -sS -o "$1" "$2" && $3 "$1" >/dev/null && sync "$1"' _ "$d/curl.bin" "$LOCATION" "$HASH_CMD"
    t_curl_full+=("$T")
    rm -f "$d/curl.bin"
  done
  stop_emulator
  rm -rf "$d"

  local m_curl m_full m_mm m_mm1
  m_curl=$(median "${t_curl[@]}")
  m_full=$(median "${t_curl_full[@]}")
  m_mm=$(median "${t_mm[@]}")
  m_mm1=$(median "${t_mm1[@]}")
  local s
  s="1 loopback $(human "$size")"
  row "$s § curl -o (reference) § $m_curl § $(join_runs "${t_curl[@]}") § $(mbps "$size" "$m_curl") § 1.00 × curl § sha256 ok"
  row "$s § **modelmgr** (default: adaptive) § $m_mm § $(join_runs "${t_mm[@]}") § $(mbps "$size" "$m_mm") § **$(div "$m_mm" "$m_curl") × curl** · **$(div "$m_mm" "$m_full") × curl+sha+fsync** § cmp ok; connections: $(join_runs "${c_mm[@]}")"
  row "$s § **modelmgr --connections 1** § $m_mm1 § $(join_runs "${t_mm1[@]}") § $(mbps "$size" "$m_mm1") § **$(div "$m_mm1" "$m_curl") × curl** · $(div "$m_mm1" "$m_full") × curl+sha+fsync § cmp ok"
  row "$s § curl + ${HASH_CMD%% *} sha256 + sync (same work, serial) § $m_full § $(join_runs "${t_curl_full[@]}") § $(mbps "$size" "$m_full") § $(div "$m_full" "$m_curl") × curl § diagnostic reference"
}

# ---- scenario 2: throttled 10 MB/s per connection -----------------------------------------------------------

bench_throttled() {
  local size=$THROTTLE_SIZE
  log "throttled: $(human "$size") file at $((THROTTLE_BPS / 1000000)) MB/s per connection, $RUNS runs each"
  start_emulator --no-default-repos --big-file-size "$size" --connection-rate "$THROTTLE_BPS"
  resolve_lfs "$EP/bench/big/resolve/main/big.bin"
  local d=$work/throttled ref=$work/throttled/ref.bin
  mkdir -p "$d"
  local -a t_aria=() t_mm=() t_mm16=() c_mm=()
  local i
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$d/aria"
    timed aria2c -x16 -s16 -k1M --file-allocation=falloc --allow-overwrite=true --auto-file-renaming=false \
      --console-log-level=error --summary-interval=0 --download-result=hide -q -d "$d/aria" -o big.bin "$LOCATION"
    t_aria+=("$T")
    if [[ ! -f $ref ]]; then
      verify_sha256 "$d/aria/big.bin" "$LINKED_ETAG" "aria2c (throttled)"
      mv "$d/aria/big.bin" "$ref"
    else
      verify_against "$d/aria/big.bin" "$ref" "aria2c"
    fi
    rm -rf "$d/aria"

    timed env HF_ENDPOINT="$EP" "$MM" --json pull bench/big big.bin --cache-dir "$d/mm"
    t_mm+=("$T")
    read_connections
    c_mm+=("$CONN")
    verify_against "$(mm_blob "$d/mm")" "$ref" "modelmgr (throttled)"
    check_leftovers "$d/mm"
    rm -rf "$d/mm"

    timed env HF_ENDPOINT="$EP" "$MM" pull bench/big big.bin --cache-dir "$d/mm16" --quiet --connections 16
    t_mm16+=("$T")
    verify_against "$(mm_blob "$d/mm16")" "$ref" "modelmgr --connections 16 (throttled)"
    check_leftovers "$d/mm16"
    rm -rf "$d/mm16"
  done
  stop_emulator
  rm -rf "$d"

  local m_aria m_mm m_mm16
  m_aria=$(median "${t_aria[@]}")
  m_mm=$(median "${t_mm[@]}")
  m_mm16=$(median "${t_mm16[@]}")
  local s
  s="2 throttled $(human "$size") @10 MB/s/conn"
  row "$s § aria2c -x16 -s16 -k1M (reference) § $m_aria § $(join_runs "${t_aria[@]}") § $(mbps "$size" "$m_aria") § 1.00 × aria2c § sha256 ok; ideal 16 conn = $(awk -v s="$size" -v b=$THROTTLE_BPS 'BEGIN { printf "%.1f", s / b / 16 }') s"
  row "$s § **modelmgr** (default: adaptive) § $m_mm § $(join_runs "${t_mm[@]}") § $(mbps "$size" "$m_mm") § **$(div "$m_mm" "$m_aria") × aria2c** (target <= 0.67) § cmp ok; connections: $(join_runs "${c_mm[@]}")"
  row "$s § modelmgr --connections 16 (fixed) § $m_mm16 § $(join_runs "${t_mm16[@]}") § $(mbps "$size" "$m_mm16") § $(div "$m_mm16" "$m_aria") × aria2c § cmp ok"
}

# ---- scenario 2b: a total cap shared by all connections ----------------------------------------------------

bench_totalcap() {
  local size=$TOTALCAP_SIZE
  log "totalcap: $(human "$size") file through a $((TOTAL_RATE / 1000000)) MB/s link shared by all connections, $RUNS runs each"
  start_emulator --no-default-repos --big-file-size "$size" --total-rate "$TOTAL_RATE"
  resolve_lfs "$EP/bench/big/resolve/main/big.bin"
  local d=$work/totalcap ref=$work/totalcap/ref.bin
  mkdir -p "$d"
  local -a t_aria=() t_mm=() c_mm=()
  local i
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$d/aria"
    timed aria2c -x16 -s16 -k1M --file-allocation=falloc --allow-overwrite=true --auto-file-renaming=false \
      --console-log-level=error --summary-interval=0 --download-result=hide -q -d "$d/aria" -o big.bin "$LOCATION"
    t_aria+=("$T")
    if [[ ! -f $ref ]]; then
      verify_sha256 "$d/aria/big.bin" "$LINKED_ETAG" "aria2c (totalcap)"
      mv "$d/aria/big.bin" "$ref"
    else
      verify_against "$d/aria/big.bin" "$ref" "aria2c"
    fi
    rm -rf "$d/aria"

    timed env HF_ENDPOINT="$EP" "$MM" --json pull bench/big big.bin --cache-dir "$d/mm"
    t_mm+=("$T")
    read_connections
    c_mm+=("$CONN")
    verify_against "$(mm_blob "$d/mm")" "$ref" "modelmgr (totalcap)"
    check_leftovers "$d/mm"
    rm -rf "$d/mm"
  done
  stop_emulator
  rm -rf "$d"

  local m_aria m_mm
  m_aria=$(median "${t_aria[@]}")
  m_mm=$(median "${t_mm[@]}")
  local s pct
  s="2b total cap $(human "$size") @$((TOTAL_RATE / 1000000)) MB/s shared"
  pct() { awk -v s="$size" -v t="$1" -v r="$TOTAL_RATE" 'BEGIN { printf "%.0f %%", 100 * s / t / r }'; }
  row "$s § aria2c -x16 -s16 -k1M § $m_aria § $(join_runs "${t_aria[@]}") § $(mbps "$size" "$m_aria") § $(pct "$m_aria") of the cap § sha256 ok"
  row "$s § **modelmgr** (default: adaptive) § $m_mm § $(join_runs "${t_mm[@]}") § $(mbps "$size" "$m_mm") § **$(pct "$m_mm") of the cap** (target >= 95 %) · $(div "$m_mm" "$m_aria") × aria2c § cmp ok; connections settled (target <= 12): $(join_runs "${c_mm[@]}")"
}

# ---- scenario 3b: many small files with latency -------------------------------------------------------------

bench_latency() {
  log "latency: test-org/many-files (1,500 small files), ${LATENCY_MS} ms before every answer, $RUNS runs each"
  start_emulator --latency-ms "$LATENCY_MS"
  resolve_lfs "$EP/test-org/tiny-model/resolve/main/weights/big.bin"
  local d=$work/latency repo=test-org/many-files
  mkdir -p "$d"
  local -a t_mm=() t_par=() req_mm=() emu_mm=() emu_par=()
  local i n_files=0 snap ref=$d/ref
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$d/mm"
    admin_post /_emulator/counters/reset
    timed env HF_ENDPOINT="$EP" "$MM" pull "$repo" --cache-dir "$d/mm" --quiet --json
    t_mm+=("$T")
    emu_mm+=("$(emulator_requests)")
    req_mm+=("$(grep -o '"http_requests":[0-9]*' "$work/last.out" | cut -d: -f2)")
    n_files=$(grep -o '"path":"[^"]*"' "$work/last.out" | wc -l)
    snap=$(sed -n 's/.*"root":"\([^"]*\)".*/\1/p' "$work/last.out")
    [[ -d $snap ]] || die "modelmgr snapshot dir '$snap' missing"
    if ((i == 1)); then
      : >"$d/curl.cfg"
      grep -o '"path":"[^"]*"' "$work/last.out" | cut -d'"' -f4 | while IFS= read -r p; do
        printf 'url = "%s/%s/resolve/main/%s"\noutput = "%s/par/%s"\n' "$EP" "$repo" "$p" "$d" "$p"
      done >>"$d/curl.cfg"
    fi

    rm -rf "$d/par"
    admin_post /_emulator/counters/reset
    timed curl -sS -f -L --create-dirs --parallel --parallel-max 8 -K "$d/curl.cfg"
    t_par+=("$T")
    emu_par+=("$(emulator_requests)")
    if [[ ! -d $ref ]]; then
      mv "$d/par" "$ref"
      [[ $(find "$ref" -type f | wc -l) -eq $n_files ]] || die "curl --parallel did not fetch $n_files files"
    else
      diff -rq "$d/par" "$ref" >/dev/null || die "curl --parallel download differs from the reference"
      rm -rf "$d/par"
    fi
    diff -rq "$snap" "$ref" >/dev/null || die "modelmgr snapshot differs from curl's files"
    check_leftovers "$d/mm"
  done
  stop_emulator
  rm -rf "$d"

  local m_mm m_par r_mm e_mm e_par
  m_mm=$(median "${t_mm[@]}")
  m_par=$(median "${t_par[@]}")
  r_mm=$(median "${req_mm[@]}")
  e_mm=$(median "${emu_mm[@]}")
  e_par=$(median "${emu_par[@]}")
  local s="3b $n_files files, ${LATENCY_MS} ms latency"
  row "$s § curl -L --parallel --parallel-max 8 (reference) § $m_par § $(join_runs "${t_par[@]}") § $(awk -v n="$n_files" -v t="$m_par" 'BEGIN { printf "%.0f files/s", n / t }') § 1.00 × curl -P8 § emulator saw $e_par requests ($(div "$e_par" "$n_files") per file)"
  row "$s § **modelmgr** (default: adaptive) § $m_mm § $(join_runs "${t_mm[@]}") § $(awk -v n="$n_files" -v t="$m_mm" 'BEGIN { printf "%.0f files/s", n / t }') § **$(div "$m_mm" "$m_par") × curl -P8** (target <= 0.25) § http_requests=$r_mm; emulator saw $e_mm → **$(div "$e_mm" "$n_files") req/file** (incl. 3 metadata requests)"
}

# ---- scenario 3: 1,500-file snapshot ------------------------------------------------------------------------

bench_snapshot() {
  log "snapshot: test-org/many-files (1,500 small git files), $RUNS runs each"
  start_emulator
  # Wait until the emulator has hashed the default repos' large file (it does so in the background at start).
  resolve_lfs "$EP/test-org/tiny-model/resolve/main/weights/big.bin"
  local d=$work/snapshot repo=test-org/many-files
  mkdir -p "$d"

  # The file list comes from modelmgr itself (first run), so every client fetches exactly the same files.
  local -a t_mm=() t_loop=() t_keep=() req_mm=() emu_mm=()
  local i n_files=0 snap ref=$d/ref
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$d/mm"
    admin_post /_emulator/counters/reset
    timed env HF_ENDPOINT="$EP" "$MM" pull "$repo" --cache-dir "$d/mm" --quiet --json
    t_mm+=("$T")
    emu_mm+=("$(emulator_requests)")
    req_mm+=("$(grep -o '"http_requests":[0-9]*' "$work/last.out" | cut -d: -f2)")
    n_files=$(grep -o '"path":"[^"]*"' "$work/last.out" | wc -l)
    ((n_files == 1500)) || die "modelmgr pull $repo reported $n_files files, expected 1500"
    snap=$(sed -n 's/.*"root":"\([^"]*\)".*/\1/p' "$work/last.out")
    [[ -d $snap ]] || die "modelmgr snapshot dir '$snap' missing"
    if ((i == 1)); then
      grep -o '"path":"[^"]*"' "$work/last.out" | cut -d'"' -f4 >"$d/paths.txt"
      # Naive loop and keep-alive inputs.
      : >"$d/curl.cfg"
      while IFS= read -r p; do
        printf 'url = "%s/%s/resolve/main/%s"\noutput = "%s/keep/%s"\n' "$EP" "$repo" "$p" "$d" "$p" >>"$d/curl.cfg"
      done <"$d/paths.txt"
    fi

    if ((i <= SLOW_RUNS)); then
      rm -rf "$d/loop"
      # shellcheck disable=SC2016 # expanded by the inner bash
      timed bash -c 'while IFS= read -r p; do curl -sS -f -L --create-dirs -o "$2/loop/$p" "$1/resolve/main/$p" || exit 1; done <"$2/paths.txt"' \
        _ "$EP/$repo" "$d"
      t_loop+=("$T")
    fi

    rm -rf "$d/keep"
    timed curl -sS -f -L --create-dirs -K "$d/curl.cfg"
    t_keep+=("$T")

    # Verify: the first curl loop is the reference; every other download must be byte-identical to it.
    if [[ ! -d $ref ]]; then
      mv "$d/loop" "$ref"
      [[ $(find "$ref" -type f | wc -l) -eq 1500 ]] || die "curl loop did not fetch 1500 files"
    elif [[ -d $d/loop ]]; then
      diff -rq "$d/loop" "$ref" >/dev/null || die "curl loop download differs from the reference"
      rm -rf "$d/loop"
    fi
    diff -rq "$d/keep" "$ref" >/dev/null || die "curl -K download differs from the reference"
    diff -rq "$snap" "$ref" >/dev/null || die "modelmgr snapshot differs from curl's files"
    check_leftovers "$d/mm"
  done
  stop_emulator
  rm -rf "$d"

  local m_mm m_loop m_keep r_mm e_mm
  m_mm=$(median "${t_mm[@]}")
  m_loop=$(median "${t_loop[@]}")
  m_keep=$(median "${t_keep[@]}")
  r_mm=$(median "${req_mm[@]}")
  e_mm=$(median "${emu_mm[@]}")
  local s="3 snapshot 1,500 files"
  row "$s § curl -L loop, 1 process/file (reference) § $m_loop § $(join_runs "${t_loop[@]}") § $(awk -v t="$m_loop" 'BEGIN { printf "%.0f files/s", 1500 / t }') § 1.00 × loop § 2 req/file (302→307 follow), files identical"
  row "$s § curl -L -K, 1 process, keep-alive § $m_keep § $(join_runs "${t_keep[@]}") § $(awk -v t="$m_keep" 'BEGIN { printf "%.0f files/s", 1500 / t }') § $(div "$m_keep" "$m_loop") × loop § diagnostic reference"
  row "$s § **modelmgr** (default: adaptive) § $m_mm § $(join_runs "${t_mm[@]}") § $(awk -v t="$m_mm" 'BEGIN { printf "%.0f files/s", 1500 / t }') § **$(div "$m_mm" "$m_loop") × loop** · $(div "$m_mm" "$m_keep") × curl -K § http_requests=$r_mm → **$(div "$r_mm" "$n_files") req/file** (emulator saw $e_mm)"
}

# ---- scenario 4: peak RSS -----------------------------------------------------------------------------------

# peak_rss CMD... : runs CMD, sets T and RSS_KB (peak resident set of the process, kB).
peak_rss() {
  if [[ -x /usr/bin/time ]]; then
    timed /usr/bin/time -v -o "$work/time.txt" "$@"
    RSS_KB=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$work/time.txt")
  else
    # Fallback: poll the kernel's high-water mark (VmHWM) until the process exits. `env` execs modelmgr,
    # so the background pid is modelmgr itself.
    sync
    local t0=$EPOCHREALTIME pid hwm=0 v deadline=$((SECONDS + CMD_TIMEOUT))
    "$@" >"$work/last.out" 2>"$work/last.err" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/^VmHWM/ { print $2 }' /proc/"$pid"/status 2>/dev/null || true)
      ((${v:-0} > hwm)) && hwm=$v
      ((SECONDS < deadline)) || { kill "$pid"; die "timeout after ${CMD_TIMEOUT}s: $*"; }
      sleep 0.05
    done
    wait "$pid" || die "command failed: $* ($(cat "$work/last.err"))"
    T=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    RSS_KB=$hwm
  fi
}

bench_rss() {
  local size=$RSS_SIZE
  log "rss: $(human "$size") file, adaptive and --connections 64, $RUNS runs each"
  start_emulator --no-default-repos --big-file-size "$size"
  resolve_lfs "$EP/bench/big/resolve/main/big.bin"
  local d=$work/rss ref=$work/rss/ref.bin
  mkdir -p "$d"
  local -a t_mm=() rss=() t_mm64=() rss64=() c_mm=()
  local i
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$d/mm"
    peak_rss env HF_ENDPOINT="$EP" "$MM" --json pull bench/big big.bin --cache-dir "$d/mm"
    t_mm+=("$T")
    rss+=("$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')")
    read_connections
    c_mm+=("$CONN")
    if [[ ! -f $ref ]]; then
      verify_sha256 "$(mm_blob "$d/mm")" "$LINKED_ETAG" "modelmgr (rss)"
      mv "$(mm_blob "$d/mm")" "$ref"
    else
      verify_against "$(mm_blob "$d/mm")" "$ref" "modelmgr (rss)"
    fi
    check_leftovers "$d/mm"
    rm -rf "$d/mm"

    peak_rss env HF_ENDPOINT="$EP" "$MM" pull bench/big big.bin --cache-dir "$d/mm" --quiet --connections 64
    t_mm64+=("$T")
    rss64+=("$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')")
    verify_against "$(mm_blob "$d/mm")" "$ref" "modelmgr --connections 64 (rss)"
    check_leftovers "$d/mm"
    rm -rf "$d/mm"
  done
  stop_emulator
  rm -rf "$d"

  rss_row() { # LABEL TIMES... -- RSS...
    local label=$1 m_t m_rss max_rss verdict
    shift
    local -a times=() mems=()
    while [[ $1 != -- ]]; do times+=("$1"); shift; done
    shift
    mems=("$@")
    m_t=$(median "${times[@]}")
    m_rss=$(median "${mems[@]}")
    max_rss=$(printf '%s\n' "${mems[@]}" | sort -g | tail -1)
    verdict=$(awk -v r="$max_rss" -v t=$RSS_TARGET_MIB 'BEGIN { print (r < t) ? "PASS" : "FAIL" }')
    row "4 peak RSS $(human "$size") § **$label** § $m_t § $(join_runs "${times[@]}") § $(mbps "$size" "$m_t") § **$m_rss MiB** median (max $max_rss) vs target < $RSS_TARGET_MIB MiB: **$verdict** § RSS runs: $(join_runs "${mems[@]}") MiB"
  }
  rss_row "modelmgr (default: adaptive; connections $(join_runs "${c_mm[@]}"))" "${t_mm[@]}" -- "${rss[@]}"
  rss_row "modelmgr --connections 64" "${t_mm64[@]}" -- "${rss64[@]}"
}

# ---- main ---------------------------------------------------------------------------------------------------

start_time=$EPOCHREALTIME
case $scenario in
  loopback) bench_loopback ;;
  throttled) bench_throttled ;;
  totalcap) bench_totalcap ;;
  latency) bench_latency ;;
  snapshot) bench_snapshot ;;
  rss) bench_rss ;;
  all) bench_loopback; bench_throttled; bench_totalcap; bench_latency; bench_snapshot; bench_rss ;;
esac
elapsed=$(awk -v a="$start_time" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
fs=$(df -PT "$work" 2>/dev/null | awk 'NR == 2 { print $2 }')
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

echo "## modelmgr download benchmarks ($scenario)"
echo
echo "Machine: nproc=$(nproc), kernel $(uname -r), ${cpu:-unknown CPU}, ${mem:-? RAM}, temp fs ${fs:-?}; $(curl --version | head -1 | cut -d' ' -f1-2), $(aria2c --version | head -1); modelmgr @ $rev; median of $RUNS runs ($SLOW_RUNS for the two slow references); wall time ${elapsed} s."
echo
echo "Ratio = median time of the client / median time of the reference (lower is better; < 1.00 = faster than the reference). MB/s = 10^6 bytes/s."
echo
echo "| Scenario | Client | Median (s) | Runs (s) | Throughput | Ratio (time) | Notes |"
echo "|---|---|---:|---|---:|---|---|"
printf '%s\n' "${ROWS[@]}"
if ((leftover_state > 0)); then
  echo
  echo "Note: $leftover_state successful modelmgr pull(s) left a \`*.incomplete\` file (resume state) in the cache."
fi
