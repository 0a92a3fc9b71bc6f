#!/usr/bin/env bash
# The main job, end to end: `llama stack run` (llama-stack 0.2.12) with the responses-rs agents provider,
# and one streamed Responses request with a function tool through the official openai client.
#   scripts/demo.sh                                                     # scripted stand-in model server
#   OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_MODEL=my-model scripts/demo.sh   # a real model server
# OPENAI_API_KEY is passed to the model server when set. Exit status 0 on success.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$("$root/scripts/venv.sh" 0.2.12 | tail -n 1)"
# -W: llama-stack 0.2.x trips a harmless pydantic warning when it is imported
exec "$venv/bin/python" -W "ignore::UserWarning" -m responses_rs.demo "$@"
