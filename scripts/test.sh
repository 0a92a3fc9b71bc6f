#!/usr/bin/env bash
# The whole test suite: Rust lints and core tests (no Python), then the Python suite under every
# llama-stack version responses-rs serves, each in its own virtual environment.
#   scripts/test.sh                 # everything
#   LLAMA_STACK_VERSIONS=0.2.7 scripts/test.sh    # one version
#   PYTEST_ARGS="-k stream" scripts/test.sh       # pass options to pytest
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
versions="${LLAMA_STACK_VERSIONS:-0.2.7 0.2.12}"

echo "== cargo fmt / clippy / test (core, no Python)"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features python -- -D warnings
cargo test

status=0
for version in $versions; do
  echo "== llama-stack $version"
  venv="$(scripts/venv.sh "$version" | tail -n 1)"
  "$venv/bin/ruff" check python tests bench
  "$venv/bin/ruff" format --check python tests bench
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pytest tests -q -p no:cacheprovider ${PYTEST_ARGS:-} || status=$?
done
exit "$status"
