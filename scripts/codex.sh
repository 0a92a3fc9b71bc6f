#!/usr/bin/env bash
# Installs Codex CLI (npm `@openai/codex`, pinned) into a cache directory outside the checkout, idempotently,
# and prints the path of its `codex` launcher on the last line (everything else goes to stderr).
#   scripts/codex.sh                 # install when missing, print the launcher path
#   RESPONSES_RS_CODEX_DIR           where it lives (default ${XDG_CACHE_HOME:-~/.cache}/responses-rs/codex)
#   RESPONSES_RS_CODEX_VERSION       the npm version (default below)
# Needs `npm` (Node.js 18+). The package's platform binary comes as an optional npm dependency.
set -euo pipefail
version="${RESPONSES_RS_CODEX_VERSION:-0.171.0}"
dir="${RESPONSES_RS_CODEX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/responses-rs/codex}/$version"
bin="$dir/node_modules/.bin/codex"
if ! command -v npm >/dev/null 2>&1; then
  echo "codex.sh: npm is not installed" >&2
  exit 3
fi
if [ ! -x "$bin" ] || ! "$bin" --version >/dev/null 2>&1; then
  echo "codex.sh: installing @openai/codex@$version into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "@openai/codex@$version" >&2
fi
"$bin" --version >&2
echo "$bin"
