"""The README's main job: ``responses-rs serve`` on 127.0.0.1, one streamed request with a function tool through the
official ``openai`` client, then the server keeps serving.

    python -m responses_rs.server.demo          # what scripts/demo.sh runs (in the venv it makes)

1. Model server: ``OPENAI_BASE_URL`` (an OpenAI-compatible Chat Completions endpoint, including ``/v1``), with
   ``OPENAI_API_KEY`` (``--upstream-key``) and ``OPENAI_MODEL`` (default: the first model it lists). Without
   ``OPENAI_BASE_URL``, the server is started with no ``--upstream``: it answers with the project's scripted model
   (``testkit.chat_server.trial_turn``), which calls the offered function tool, then answers in text.
2. ``responses-rs serve --host 127.0.0.1 --port $PORT`` (default 8080; a busy port is said so) as a child process,
   its log relayed with ``[serve]`` in front; the store is sqlite in a temporary directory (removed at the end),
   unless ``RESPONSES_RS_DATA_DIR``, ``RESPONSES_RS_DB`` or ``RESPONSES_RS_DATABASE_URL`` names one.
3. One streamed ``client.responses.create`` with the ``get_weather`` function tool, each event printed as it
   arrives; when the model calls the tool, the demo runs it and streams the follow-up (``function_call_output`` +
   ``previous_response_id``). The final output is printed.
4. Where the endpoint is (with a curl and an ``openai`` example), then it serves until Ctrl-C; ``DEMO_EXIT=1``
   stops the server and exits after the request instead.

Exit status: 0 on success (and on Ctrl-C after it), 1 when the server does not start or the request fails, 2 when
the ``openai`` client is not installed.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from responses_rs.demo import QUESTION, get_weather, print_output, say, stream  # (stream offers demo.TOOL)

from . import READY_PREFIX

HOST = "127.0.0.1"
TRIAL_MODEL = "scripted-model"  # the name the scripted model lists (any name is answered)
START_TIMEOUT = 60.0
# Environment of the demo's own choosing: the child server gets these from the demo's flags, not from the caller.
_OVERRIDDEN = ("UPSTREAM", "UPSTREAM_KEY", "API_KEYS", "HOST", "PORT")
_STORE_VARIABLES = ("RESPONSES_RS_DATA_DIR", "RESPONSES_RS_DB", "RESPONSES_RS_DATABASE_URL")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class ServeProcess:
    """``responses-rs serve`` as a child process, its output relayed line by line with ``[serve]`` in front."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.base_url: str | None = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._relay, daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(READY_PREFIX) and self.base_url is None:
                self.base_url = line.split()[1]
                self._ready.set()
                continue
            print(f"[serve] {line}", flush=True)
        self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and self.base_url is not None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)


def serve_command(port: int, upstream: str | None, data_dir: str | None) -> list[str]:
    script = Path(sys.executable).parent / "responses-rs"
    command = [str(script), "serve"] if script.exists() else [sys.executable, "-m", "responses_rs.server"]
    command += ["--host", HOST, "--port", str(port)]
    if upstream:
        command += ["--upstream", upstream]
    if data_dir:
        command += ["--data-dir", data_dir]
    return command


def request(client: Any, model: str) -> Any:
    """The demo's request: streamed, with the function tool; when the model calls it, the tool's result is sent
    back (``function_call_output`` + ``previous_response_id``), streamed as well. Returns the final response."""
    say(f"request 1 (streamed, tools=[get_weather]): {QUESTION!r}")
    first = stream(client, model, input=QUESTION)
    print_output(first)
    calls = [item for item in first.output if item.type == "function_call"]
    if not calls:
        say("the model answered without calling the tool")
        return first
    outputs = []
    for call in calls:
        result = get_weather(**json.loads(call.arguments or "{}"))
        say(f"ran {call.name} locally -> {json.dumps(result)}")
        outputs.append({"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(result)})
    say(f"request 2 (streamed): the tool's result, previous_response_id={first.id}")
    return stream(client, model, input=outputs, previous_response_id=first.id)


def print_endpoint(base_url: str, model: str) -> None:
    body = json.dumps({"model": model, "input": "Hello"})
    say(f"the Responses endpoint: {base_url}/responses")
    say(f"  curl {base_url}/responses -H 'Content-Type: application/json' -d {shlex.quote(body)}")
    say(
        f'  python: openai.OpenAI(base_url="{base_url}", api_key="none")'
        f'.responses.create(model="{model}", input="Hello")'
    )


def run(env: dict[str, str] | None = None) -> int:
    import openai

    env = dict(os.environ if env is None else env)
    raw_port = env.get("PORT", "").strip() or "8080"
    try:
        port = int(raw_port)
        if not 0 <= port < 65536:
            raise ValueError
    except ValueError:
        say(f"PORT={raw_port!r} is not a port number")
        return 1
    upstream = env.get("OPENAI_BASE_URL", "").strip() or None
    key = env.get("OPENAI_API_KEY") or None
    model = env.get("OPENAI_MODEL", "").strip()
    exit_after = env.get("DEMO_EXIT", "").strip() not in ("", "0", "false")

    if port and not port_is_free(HOST, port):
        say(
            f"port {port} on {HOST} is busy (another program listens there; an earlier demo still running?): "
            f"choose another one, e.g. PORT={port + 1} scripts/demo.sh"
        )
        return 1
    child_env = {k: v for k, v in env.items() if k.removeprefix("RESPONSES_RS_") not in _OVERRIDDEN}
    child_env["PYTHONUNBUFFERED"] = "1"
    if key and upstream:
        child_env["RESPONSES_RS_UPSTREAM_KEY"] = key  # not on the command line (ps would show it)
    temporary = None
    data_dir = None
    if not any(env.get(name) for name in _STORE_VARIABLES):
        temporary = tempfile.TemporaryDirectory(prefix="responses-rs-demo-")
        data_dir = temporary.name
    if upstream:
        say(f"model server: {upstream} (OPENAI_BASE_URL)" + (", key from OPENAI_API_KEY" if key else ""))
    else:
        say(
            "OPENAI_BASE_URL is not set, so there is no real model: responses-rs serve starts without --upstream and "
            "answers with the project's scripted model (it calls the get_weather tool, then answers in text). "
            "Set OPENAI_BASE_URL (and OPENAI_MODEL, OPENAI_API_KEY) to use a real model server."
        )
    command = serve_command(port, upstream, data_dir)
    say("starting: " + " ".join(shlex.quote(part) for part in command))
    server: ServeProcess | None = None
    try:
        started = time.monotonic()
        server = ServeProcess(command, child_env)
        if not server.wait_ready(START_TIMEOUT) or server.base_url is None:
            code = server.proc.poll()
            say(
                "responses-rs serve did not start"
                + (f" (exit status {code})" if code is not None else f" within {START_TIMEOUT:.0f} s")
            )
            return 1
        base_url = server.base_url
        say(f"responses-rs serve is up at {base_url} after {time.monotonic() - started:.1f} s")
        client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120)
        if not model:
            if upstream:
                model = next(iter(client.models.list())).id
                say(f"OPENAI_MODEL is not set: using {model!r}, the first model the server lists")
            else:
                model = TRIAL_MODEL
        say(f"model {model!r}")
        try:
            final = request(client, model)
        except Exception as exc:
            say(f"FAILED: {type(exc).__name__}: {exc}")
            return 1
        say(f"final output: {final.output_text!r}")
        print_endpoint(base_url, model)
        if exit_after:
            say("DEMO_EXIT is set: stopping")
            return 0
        say("serving until Ctrl-C (DEMO_EXIT=1 scripts/demo.sh exits after the request instead)")
        try:
            code = server.proc.wait()
        except KeyboardInterrupt:
            print(flush=True)
            return 0
        say(f"responses-rs serve ended on its own (exit status {code})")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 1
    finally:
        if server is not None:
            server.stop()
            say("stopped responses-rs serve")
        if temporary is not None:
            temporary.cleanup()


def main() -> int:
    try:
        import openai  # noqa: F401
    except ImportError:
        print(
            f"[demo] the demo needs the openai client, not installed in this environment ({sys.executable}): "
            "pip install openai  (or run scripts/demo.sh, which makes a venv)",
            file=sys.stderr,
            flush=True,
        )
        return 2
    return run()


if __name__ == "__main__":
    sys.exit(main())
