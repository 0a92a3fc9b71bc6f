#!/usr/bin/env bash
# The whole test suite: Rust lints and core tests (no Python), then the Python suite under every
# llama-stack version and every OGX version responses-rs serves, each in its own virtual environment
# (each venv collects the suites for its host: tests/conftest.py).
#   scripts/test.sh                 # everything
#   LLAMA_STACK_VERSIONS=0.2.7 scripts/test.sh    # one version
#   OGX_VERSIONS= scripts/test.sh                 # no OGX run (OGX needs Python 3.13: scripts/python313.sh builds it)
#   PYTEST_ARGS="-k stream" scripts/test.sh       # pass options to pytest
#   RESPONSES_RS_POSTGRES=postgresql://u:pw@host:port/db scripts/test.sh   # an existing PostgreSQL for the PostgreSQL tests
#                                                 # (otherwise scripts/postgres.sh starts and stops a throwaway one)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
versions="${LLAMA_STACK_VERSIONS:-0.2.7 0.2.12}"
ogx_versions="${OGX_VERSIONS-1.5.0}"

echo "== cargo fmt / clippy / test (core, no Python)"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features python -- -D warnings
cargo test

# The PostgreSQL tests (two servers on one database: the OGX suite's, and `responses-rs serve`'s in the 0.2.12 venv)
# need a PostgreSQL: a throwaway one from scripts/postgres.sh (installs Debian's postgresql when missing, which needs
# root), unless RESPONSES_RS_POSTGRES already names one.
if { [ -n "$ogx_versions" ] || [[ " $versions " == *" 0.2.12 "* ]]; } && [ -z "${RESPONSES_RS_POSTGRES:-}" ]; then
  echo "== PostgreSQL (scripts/postgres.sh)"
  trap 'scripts/postgres.sh stop || true' EXIT
  pg_env="$(scripts/postgres.sh start </dev/null | tail -n 1)"
  export "${pg_env:?scripts/postgres.sh printed no connection line}"
fi
status=0
for version in $versions; do
  echo "== llama-stack $version"
  venv="$(scripts/venv.sh "$version" | tail -n 1)"
  "$venv/bin/ruff" check python tests bench
  "$venv/bin/ruff" format --check python tests bench
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pytest tests -q -p no:cacheprovider ${PYTEST_ARGS:-} || status=$?
done
for version in $ogx_versions; do
  echo "== OGX $version"
  venv="$(scripts/venv.sh "ogx-$version" | tail -n 1)"
  "$venv/bin/ruff" check python tests bench
  "$venv/bin/ruff" format --check python tests bench
  # shellcheck disable=SC2086
  TIKTOKEN_CACHE_DIR="$venv/tiktoken-cache" "$venv/bin/python" -m pytest tests -q -p no:cacheprovider ${PYTEST_ARGS:-} \
    || status=$?
done
exit "$status"
