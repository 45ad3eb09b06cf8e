#!/usr/bin/env bash
# Builds modelmgr and runs its main job: pull the default model set (`modelmgr pull --all`).
# With no HF_ENDPOINT configured, the models come from the built-in demo hub (`modelmgr serve --demo`) on
# loopback, into ./.demo-cache: the job works on a machine without network and never writes generated demo
# files into your real Hugging Face cache. Set HF_ENDPOINT (e.g. https://huggingface.co) to use a real hub.
# Extra arguments go to `modelmgr pull`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
bin=${MODELMGR_BUILD_DIR:-$root/build}/bin/modelmgr

if [ -n "${HF_ENDPOINT:-}" ]; then
  exec "$bin" pull --all "$@"
fi

cache=${MODELMGR_DEMO_CACHE:-$root/.demo-cache}
log=$(mktemp)
"$bin" serve --demo --port 0 >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
endpoint=
for _ in $(seq 1 100); do
  endpoint=$(sed -n 's/^endpoint=\([^ ]*\).*/\1/p' "$log")
  [ -n "$endpoint" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$endpoint" ]; then
  cat "$log" >&2
  echo "modelmgr: the demo hub did not start" >&2
  exit 1
fi
echo "modelmgr: no HF_ENDPOINT set: pulling the default model set from the demo hub at $endpoint into $cache" >&2
HF_ENDPOINT=$endpoint HF_HUB_CACHE=$cache "$bin" pull --all "$@"
