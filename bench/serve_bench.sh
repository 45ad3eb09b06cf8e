#!/usr/bin/env bash
# Benchmarks of `modelmgr serve` (issue 13's targets), reported as ratios to a reference in the same run:
#   fanout:   32 concurrent curl clients fetching the same big file, then 32 clients fetching 1,000 small
#             files each, from `serve` vs Debian's nginx serving the same blob files as static files;
#             aggregate throughput ratio (target >= 0.80), peak RSS of serve (target < 128 MiB), bodies
#             byte-identical (checked on separate downloads so that hashing does not skew the timing).
#   coldmiss: an empty mirror with --upstream (the hub emulator) and one client fetching a big file:
#             first byte and total time vs `modelmgr pull` of the same file (targets: first byte < 1 s,
#             total <= 1.2x), for the default (wait for the verified file) and --redirect-above.
# Usage: bench/serve_bench.sh [fanout|coldmiss|all]. Never part of the test suite. Loopback only; every
# process it starts is stopped by an EXIT trap; one temp dir under $TMPDIR (about 3x BENCH_SERVE_SIZE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MODELMGR_BUILD_DIR:-$root/build}
MM=$build/bin/modelmgr
EMU=$build/bin/modelmgr-hub-emulator
SIZE=${BENCH_SERVE_SIZE:-1073741824}
CLIENTS=${BENCH_SERVE_CLIENTS:-32}
TIMEOUT=${BENCH_TIMEOUT:-600}
what=${1:-all}
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY HF_TOKEN

log() { printf '[serve-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[serve-bench] error: %s\n' "$*" >&2; exit 1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
mbps() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.0f", s / 1e6 / t }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

[[ -x $MM && -x $EMU ]] || MODELMGR_TARGETS="modelmgr_cli hub_emulator" bash "$root/scripts/build.sh"
command -v curl >/dev/null || die "curl is needed"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d "${TMPDIR:-/tmp}/modelmgr-serve-bench.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export HF_HOME=$work/hf_home

# start_bg NAME CMD...: runs CMD in the background with its output in $work/NAME.out, waits for a line
# starting with endpoint=, sets ENDPOINT and LAST_PID.
start_bg() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  LAST_PID=$!
  pids+=("$LAST_PID")
  local i
  for ((i = 0; i < 400; i++)); do
    grep -q '^endpoint=' "$work/$name.out" 2>/dev/null && break
    kill -0 "$LAST_PID" 2>/dev/null || die "$name exited: $(cat "$work/$name.err")"
    sleep 0.05
  done
  ENDPOINT=$(sed -n 's/^endpoint=\([^ ]*\).*/\1/p' "$work/$name.out")
  [[ -n $ENDPOINT ]] || die "$name did not print its endpoint"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# parallel_curl N CONFIG: N curl processes each running the curl config file CONFIG; prints seconds.
parallel_curl() {
  local n=$1 config=$2 t0 t1 i
  local cpids=()
  t0=$(now)
  for ((i = 0; i < n; i++)); do
    timeout "$TIMEOUT" curl -sS --fail -K "$config" >/dev/null 2>>"$work/curl.err" &
    cpids+=($!)
  done
  for i in "${cpids[@]}"; do wait "$i" || die "a curl client failed: $(tail -3 "$work/curl.err")"; done
  t1=$(now)
  elapsed "$t0" "$t1"
}

log "emulator with a $SIZE-byte file (bench/big) and test-org/many-files"
start_bg emulator "$EMU" --port 0 --big-file-size "$SIZE"
EMU_EP=$ENDPOINT

fanout() {
  local cache=$work/cache
  log "filling the cache with modelmgr pull"
  HF_ENDPOINT=$EMU_EP HF_HUB_CACHE=$cache timeout "$TIMEOUT" "$MM" pull bench/big --quiet >/dev/null
  HF_ENDPOINT=$EMU_EP HF_HUB_CACHE=$cache timeout "$TIMEOUT" "$MM" pull test-org/many-files --include 'dir0*' --quiet >/dev/null
  start_bg serve "$MM" serve --cache-dir "$cache" --port 0
  local serve_ep=$ENDPOINT serve_pid=$LAST_PID
  local port
  port=$(free_port)
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF
master_process off;
worker_processes 1;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$port; root $cache; }
}
EOF
  "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" -g 'daemon off;' &
  pids+=($!)
  local i
  for ((i = 0; i < 200; i++)); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  local nginx_ep=http://127.0.0.1:$port

  local snap blob_big commit
  commit=$(cat "$cache/models--bench--big/refs/main")
  blob_big=$(basename "$(readlink "$cache/models--bench--big/snapshots/$commit/big.bin")")
  printf 'url = "%s"\noutput = "/dev/null"\n' "$serve_ep/bench/big/resolve/main/big.bin" >"$work/big.serve"
  printf 'url = "%s"\noutput = "/dev/null"\n' "$nginx_ep/models--bench--big/blobs/$blob_big" >"$work/big.nginx"
  : >"$work/small.serve"
  : >"$work/small.nginx"
  local mcommit count=0 path
  mcommit=$(cat "$cache/models--test-org--many-files/refs/main")
  snap=$cache/models--test-org--many-files/snapshots/$mcommit
  while IFS= read -r path; do
    printf 'url = "%s"\noutput = "/dev/null"\n' "$serve_ep/test-org/many-files/resolve/main/$path" >>"$work/small.serve"
    printf 'url = "%s"\noutput = "/dev/null"\n' \
      "$nginx_ep/models--test-org--many-files/blobs/$(basename "$(readlink "$snap/$path")")" >>"$work/small.nginx"
    count=$((count + 1))
  done < <(cd "$snap" && find . -type l | sed 's|^\./||' | sort | head -1000)

  log "byte identity: one download of each through serve and nginx, hashed"
  local want got_s got_n
  want=$(sha256sum <"$cache/models--bench--big/blobs/$blob_big" | cut -d' ' -f1)
  got_s=$(curl -sS "$serve_ep/bench/big/resolve/main/big.bin" | sha256sum | cut -d' ' -f1)
  got_n=$(curl -sS "$nginx_ep/models--bench--big/blobs/$blob_big" | sha256sum | cut -d' ' -f1)
  [[ $want == "$got_s" && $want == "$got_n" ]] || die "bodies differ: $want $got_s $got_n"

  log "$CLIENTS clients x 1 big file: serve, nginx (interleaved, twice)"
  local s1 n1 s2 n2
  s1=$(parallel_curl "$CLIENTS" "$work/big.serve")
  n1=$(parallel_curl "$CLIENTS" "$work/big.nginx")
  s2=$(parallel_curl "$CLIENTS" "$work/big.serve")
  n2=$(parallel_curl "$CLIENTS" "$work/big.nginx")
  log "$CLIENTS clients x $count small files: serve, nginx"
  local ss ns
  ss=$(parallel_curl "$CLIENTS" "$work/small.serve")
  ns=$(parallel_curl "$CLIENTS" "$work/small.nginx")
  local rss
  rss=$(awk '/VmHWM/ { print $2 }' "/proc/$serve_pid/status")
  local total=$((CLIENTS * SIZE))
  local sbest nbest
  sbest=$(awk -v a="$s1" -v b="$s2" 'BEGIN { print (a < b ? a : b) }')
  nbest=$(awk -v a="$n1" -v b="$n2" 'BEGIN { print (a < b ? a : b) }')
  echo "## serve fan-out ($CLIENTS clients, loopback)"
  echo
  echo "| scenario | serve | nginx static | serve/nginx throughput (target >= 0.80) |"
  echo "|---|---|---|---|"
  echo "| same $SIZE-byte file | $(mbps "$total" "$sbest") MB/s (runs ${s1}s ${s2}s) | $(mbps "$total" "$nbest") MB/s (runs ${n1}s ${n2}s) | $(div "$nbest" "$sbest") |"
  echo "| $count small files each | ${ss}s | ${ns}s | $(div "$ns" "$ss") |"
  echo
  echo "Peak RSS of serve: $((rss / 1024)) MiB (target < 128 MiB). Bodies byte-identical: yes."
  echo
  kill "$serve_pid" 2>/dev/null || true
}

coldmiss() {
  local mode name extra
  echo "## serve cold miss through --upstream ($SIZE bytes, one client)"
  echo
  echo "| mode | first byte | total | modelmgr pull total | total/pull (target <= 1.2) |"
  echo "|---|---|---|---|---|"
  for mode in wait redirect; do
    extra=()
    [[ $mode == redirect ]] && extra=(--redirect-above 64M)
    rm -rf "$work/mirror" "$work/pullref"
    mkdir -p "$work/mirror"
    log "cold miss ($mode)"
    start_bg "mirror-$mode" "$MM" serve --cache-dir "$work/mirror" --port 0 --upstream "$EMU_EP" "${extra[@]}"
    local ep=$ENDPOINT pid=$LAST_PID
    local times
    times=$(timeout "$TIMEOUT" curl -sS -L -o /dev/null -w '%{time_starttransfer} %{time_total}' \
      "$ep/bench/big/resolve/main/big.bin")
    kill "$pid" 2>/dev/null || true
    local t0 t1 pull
    t0=$(now)
    HF_ENDPOINT=$EMU_EP HF_HUB_CACHE=$work/pullref timeout "$TIMEOUT" "$MM" pull bench/big --quiet >/dev/null
    t1=$(now)
    pull=$(elapsed "$t0" "$t1")
    local fb total
    fb=${times% *}
    total=${times#* }
    echo "| $mode | ${fb}s | ${total}s | ${pull}s | $(div "$total" "$pull") |"
  done
  echo
}

case $what in
fanout) fanout ;;
coldmiss) coldmiss ;;
all) fanout; coldmiss ;;
*) echo "usage: $0 [fanout|coldmiss|all]" >&2; exit 2 ;;
esac
