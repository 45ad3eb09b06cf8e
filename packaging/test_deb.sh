#!/bin/sh
# Builds the Debian package from a configured and built tree, unpacks it into a scratch root with
# `dpkg -x` and runs what it installed: modelmgr --version, the man pages, the completions, the catalog and
# the Python module. Run by ctest (test package_deb); exits 77 (skipped) without dpkg-deb.
# usage: test_deb.sh BUILD_DIR CPACK PYTHON
set -eu
build=$1
cpack=$2
python=${3:-} # empty: built without the Python module
if ! command -v dpkg-deb >/dev/null 2>&1 || ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  echo "SKIP: dpkg-deb / dpkg-shlibdeps are not installed (Debian: dpkg-dev)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

if ! "$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/cpack" -D CPACK_OUTPUT_FILE_PREFIX="$work/out" \
  >"$work/cpack.log" 2>&1; then
  cat "$work/cpack.log" >&2
  fail "cpack -G DEB failed"
fi
deb=$(ls "$work"/out/*.deb)
echo "built $(basename "$deb")"

# Dependencies from dpkg-shlibdeps: the shared libraries the binary links.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libcurl libc6 libssl libyaml-cpp libtomlplusplus ${python:+python3}; do
  echo "$depends" | grep -q "$lib" || fail "Depends lacks $lib"
done
# Only runtime files: no static libraries or headers.
if dpkg-deb -c "$deb" | grep -E '\.a$|/include/'; then
  fail "development files in the runtime package"
fi

dpkg -x "$deb" "$work/root"
root=$work/root
version=$("$root/usr/bin/modelmgr" --version)
[ "$version" = "modelmgr 0.1.0" ] || fail "modelmgr --version printed '$version'"
for f in usr/share/man/man1/modelmgr.1 usr/share/man/man1/modelmgr-pull.1 usr/share/man/man1/modelmgr-login.1 \
  usr/share/bash-completion/completions/modelmgr usr/share/zsh/vendor-completions/_modelmgr \
  usr/share/fish/vendor_completions.d/modelmgr.fish usr/share/modelmgr/catalog.toml; do
  [ -f "$root/$f" ] || fail "missing /$f"
done
if [ -z "$python" ]; then
  echo "ok: $(basename "$deb") unpacks and runs (no Python module in this build)"
  exit 0
fi
ls "$root"/usr/lib/python3/dist-packages/modelmgr/_modelmgr*.so >/dev/null || fail "missing the Python extension"
# The Python module from the package, and `python3 -m modelmgr` finding the packaged binary.
out=$(env -u MODELMGR_BINARY PATH=/usr/bin:/bin PYTHONPATH="$root/usr/lib/python3/dist-packages" \
  "$python" -c 'import modelmgr, sys; print(modelmgr.__file__)')
case "$out" in "$root"/*) ;; *) fail "python imported modelmgr from $out" ;; esac
out=$(env -u MODELMGR_BINARY PATH=/usr/bin:/bin PYTHONPATH="$root/usr/lib/python3/dist-packages" \
  "$python" -m modelmgr --version)
[ "$out" = "modelmgr 0.1.0" ] || fail "python3 -m modelmgr --version printed '$out'"
echo "ok: $(basename "$deb") unpacks and runs"

# `cmake --install` (any prefix) puts the module where that prefix's python3 searches, beside the binary.
cmake --install "$build" --prefix "$work/prefix" --component runtime >/dev/null
cmake --install "$build" --prefix "$work/prefix" --component python >/dev/null
site=$(ls -d "$work"/prefix/lib/python3*/*-packages)
out=$(env -u MODELMGR_BINARY PATH=/usr/bin:/bin PYTHONPATH="$site" "$python" -m modelmgr --version)
[ "$out" = "modelmgr 0.1.0" ] || fail "python3 -m modelmgr from cmake --install printed '$out'"
echo "ok: cmake --install puts the module into ${site#"$work/prefix/"}"
