#!/usr/bin/env bash
# Installs the Debian packages modelmgr needs to build, test and benchmark.
# Idempotent and silent when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev libtomlplusplus-dev
  libcli11-dev libfmt-dev libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev
  aria2 clang-format ccache nginx
  libboost-dev
  libonnx-dev libonnx-testdata libprotobuf-dev
  pybind11-dev python3-dev python3-pytest dpkg-dev
  zsh fish # only so that the tests check the zsh and fish completion scripts, not just bash's
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
echo "modelmgr: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
