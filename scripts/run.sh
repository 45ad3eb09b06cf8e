#!/usr/bin/env bash
# Builds modelmgr and runs its main job: pull the default model set (`modelmgr pull --all`).
# With no HF_ENDPOINT configured, the models come from the demo mirror on loopback: `modelmgr serve --demo`
# writes the stand-in default model set (generated files) once into ./.demo-hub, a cache folder, and serves
# it with the real `serve`; the job pulls from it into ./.demo-cache. It works on a machine without network
# and never writes generated demo files into your real Hugging Face cache. Set HF_ENDPOINT (e.g.
# https://huggingface.co) to use a real hub.
# Extra arguments go to `modelmgr pull`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
bin=${MODELMGR_BUILD_DIR:-$root/build}/bin/modelmgr

if [ -n "${HF_ENDPOINT:-}" ]; then
  exec "$bin" pull --all "$@"
fi

cache=${MODELMGR_DEMO_CACHE:-$root/.demo-cache}
hub=${MODELMGR_DEMO_HUB:-$root/.demo-hub}
log=$(mktemp)
"$bin" serve --demo --cache-dir "$hub" --port 0 >"$log" 2>&1 &
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
  echo "modelmgr: the demo mirror did not start" >&2
  exit 1
fi
echo "modelmgr: no HF_ENDPOINT set: pulling the default model set from the demo mirror at $endpoint (serving $hub) into $cache" >&2
HF_ENDPOINT=$endpoint HF_HUB_CACHE=$cache "$bin" pull --all "$@"
