#!/usr/bin/env bash
# Build CPython 3.13 from Debian trixie's *source* package and cache it outside the checkout.
#   scripts/python313.sh   -> prints the path of the python3.13 binary on its last line
# Everything else goes to stderr. Idempotent: a second run only checks the cached build.
# Cache: ${RESPONSES_RS_CACHE:-$HOME/.cache/responses-rs}/python-3.13-r2 (the install prefix). r2: built with
# loadable sqlite extensions (as Debian builds its python), which OGX's sqlite-vec vector_io needs; the first build
# (python-3.13) lacked them, and is left alone for the venvs made with it.
# Needs root (apt-get). Only a deb-src line for trixie is added, for the duration of the download;
# no trixie binary package is ever installed (they would replace bookworm's libc).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

cache="${RESPONSES_RS_CACHE:-${HOME:-/root}/.cache/responses-rs}"
prefix="$cache/python-3.13-r2"
python="$prefix/bin/python3.13"
modules="ssl sqlite3 ctypes lzma bz2 readline uuid zlib pyexpat _decimal"

check() {
  "$python" -c "import $(echo "$modules" | tr ' ' ','); sqlite3.connect(':memory:').enable_load_extension(True)" >&2
}

if [ -f "$prefix/.complete" ] && [ -x "$python" ] && check 2>/dev/null; then
  echo "$python"
  exit 0
fi

log() { echo "python313.sh: $*" >&2; }
src_list=/etc/apt/sources.list.d/responses-rs-trixie-src.list
work="$(mktemp -d)"
cleanup() {
  if [ -f "$src_list" ]; then
    rm -f "$src_list"
    apt-get update -qq >&2 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log "installing build dependencies (bookworm)"
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends build-essential dpkg-dev pkg-config xz-utils \
  libssl-dev libffi-dev zlib1g-dev libsqlite3-dev libbz2-dev liblzma-dev libreadline-dev \
  uuid-dev libncurses-dev libexpat1-dev libgdbm-dev >&2

log "downloading the python3.13 source package from trixie"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$src_list"
apt-get update -qq >&2
(cd "$work" && apt-get source -qq --download-only python3.13 </dev/null >&2)
rm -f "$src_list"
apt-get update -qq >&2

orig="$(ls "$work"/python3.13_*.orig.tar.* | head -n1)"
log "unpacking $(basename "$orig")"
tar -xf "$orig" -C "$work"
srcdir="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'Python-3.13*' | head -n1)"
[ -n "$srcdir" ] || { log "no Python-3.13* directory in $orig"; exit 1; }

log "building $(basename "$srcdir") into $prefix"
rm -rf "$prefix"
mkdir -p "$prefix"
(
  cd "$srcdir"
  ./configure --prefix="$prefix" --with-ensurepip=no --enable-loadable-sqlite-extensions >&2
  make -j"$(nproc)" >&2
  make install >&2
)
"$python" -m ensurepip >&2

if ! check; then
  log "FAILED: the built python lacks one of: $modules"
  exit 1
fi
"$python" -m pip --version >&2
touch "$prefix/.complete"
log "ok: $("$python" -VV)"
echo "$python"
