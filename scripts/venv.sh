#!/usr/bin/env bash
# Create (or reuse) the virtual environment for one llama-stack version and install responses-rs into it.
#   scripts/venv.sh 0.2.12   -> .venv-0.2.12 with llama-stack==0.2.12, test tools and this package
# Prints the venv's path on its last line. Idempotent: a second run only rebuilds the package.
set -euo pipefail
version="${1:?usage: scripts/venv.sh LLAMA_STACK_VERSION}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV_DIR:-$root/.venv-$version}"
stamp="$venv/.deps-$version"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install -q --upgrade pip >&2
  # What llama-stack's server needs at run time but does not declare, plus the test tools.
  # llama-stack 0.2.x's MCP client code predates mcp 2.
  "$venv/bin/pip" install -q "llama-stack==$version" "maturin>=1.9.4,<2" pytest pytest-asyncio ruff openai jsonschema \
    aiosqlite "sqlalchemy[asyncio]" fastapi uvicorn "mcp<2" opentelemetry-sdk opentelemetry-exporter-otlp-proto-http >&2
  touch "$stamp"
fi
# Build and install the extension (release: the benchmark and the e2e server use this build).
(cd "$root" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --release -q >&2)
echo "$venv"
