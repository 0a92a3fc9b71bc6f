#!/usr/bin/env bash
# The main job: `responses-rs serve` on 127.0.0.1, one streamed Responses request with a function tool through the
# official openai client, then the server keeps serving until Ctrl-C (python/responses_rs/server/demo.py).
#   scripts/demo.sh                                                   # the project's scripted model (no upstream)
#   OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_MODEL=my-model scripts/demo.sh   # a real model server
# OPENAI_API_KEY is the model server's key, when it needs one. PORT (default 8080) is where the server listens.
# DEMO_EXIT=1 exits after the request. Exit status 0 on success, nonzero when the server or the request fails.
# The venv is scripts/venv.sh's 0.2.12 one (the server extras, the openai client; shared with scripts/test.sh).
# The llama-stack demo is its own command: .venv-0.2.12/bin/python -m responses_rs.demo
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
log="$(mktemp "${TMPDIR:-/tmp}/responses-rs-demo-venv.XXXXXX")"
echo "[demo] preparing the venv: scripts/venv.sh 0.2.12 (the first run installs packages and builds the extension,"
echo "[demo] several minutes; later runs only rebuild it; its output is shown only if it fails)"
if ! venv="$("$root/scripts/venv.sh" 0.2.12 2>"$log" | tail -n 1)"; then
  tail -n 40 "$log" >&2
  echo "[demo] scripts/venv.sh 0.2.12 failed (its output above, all of it in $log)" >&2
  exit 1
fi
rm -f "$log"
exec "$venv/bin/python" -m responses_rs.server.demo "$@"
