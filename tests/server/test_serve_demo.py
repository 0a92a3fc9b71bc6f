"""The README's main job, ``python -m responses_rs.server.demo`` (what ``scripts/demo.sh`` runs in its venv), as a
real process: it starts a real ``responses-rs serve`` and sends one streamed request with a function tool through
the official openai client. With no ``OPENAI_BASE_URL`` the server's scripted model answers; with one, the project's
scripted Chat Completions server stands where the user's model server would be."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import openai
import pytest

from responses_rs.testkit import ScriptedChatServer

DEMO = [sys.executable, "-m", "responses_rs.server.demo"]
DEMO_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "DEMO_EXIT", "PORT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DEMO_VARIABLES and not k.startswith("RESPONSES_RS_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run_demo(**extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(DEMO, capture_output=True, text=True, env=demo_env(**extra), timeout=120, check=False)


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_demo_exit_with_the_scripted_model() -> None:
    port = free_port()
    done = run_demo(DEMO_EXIT="1", PORT=str(port))
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "OPENAI_BASE_URL is not set" in out
    assert "no --upstream given: answering with the project's scripted model at http://127.0.0.1:" in out  # [serve]
    # Both streamed requests, events printed as they arrive, the tool run locally in between.
    assert out.count("response.created") == 2 and out.count("response.completed") == 2
    assert "response.function_call_arguments.delta" in out and "response.output_text.delta" in out
    assert 'output: function_call get_weather({"city": "Paris"})' in out
    assert 'ran get_weather locally -> {"city": "Paris", "sky": "sunny", "temperature_c": 21}' in out
    first_id = out.split("response.created  ", 1)[1].split()[0]
    assert f"previous_response_id={first_id}" in out
    assert 'final output: \'get_weather returned: {"city": "Paris"' in out
    assert f"the Responses endpoint: http://127.0.0.1:{port}/v1/responses" in out
    assert f"curl http://127.0.0.1:{port}/v1/responses" in out
    assert "stopped responses-rs serve" in out and port_is_closed(port)


@pytest.fixture
def model_server() -> Iterator[ScriptedChatServer]:
    with ScriptedChatServer(models=["real-model", "other-model"]) as server:
        yield server


def test_demo_with_a_model_server(model_server: ScriptedChatServer) -> None:
    model_server.script(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
            {"text": "Sunny in Oslo."},
        ]
    )
    done = run_demo(
        DEMO_EXIT="1", PORT=str(free_port()), OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="sk-demo-secret"
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"model server: {model_server.base_url} (OPENAI_BASE_URL), key from OPENAI_API_KEY" in out
    assert "no --upstream given" not in out and "sk-demo-secret" not in out  # the key is not shown
    assert "OPENAI_MODEL is not set: using 'real-model'" in out
    assert "final output: 'Sunny in Oslo.'" in out
    sent = model_server.requests
    assert len(sent) == 2 and all(body["model"] == "real-model" for body in sent)
    assert sent[0]["tools"][0]["function"]["name"] == "get_weather"
    assert sent[1]["messages"][-1]["role"] == "tool" and '"city": "Oslo"' in sent[1]["messages"][-1]["content"]


def test_a_failing_request_exits_nonzero(model_server: ScriptedChatServer) -> None:
    model_server.script([{"error": {"status": 500, "message": "the model fell over"}}])
    done = run_demo(
        DEMO_EXIT="1", PORT=str(free_port()), OPENAI_BASE_URL=model_server.base_url, OPENAI_MODEL="real-model"
    )
    assert done.returncode == 1, done.stdout
    assert "FAILED" in done.stdout and "failed" in done.stdout and "the Responses endpoint" not in done.stdout


def test_a_busy_port_is_said_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_demo(DEMO_EXIT="1", PORT=str(port))
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is busy" in done.stdout and f"PORT={port + 1} scripts/demo.sh" in done.stdout
    assert "starting:" not in done.stdout


@pytest.mark.parametrize("to", ["demo", "group"])
def test_it_keeps_serving_until_ctrl_c(to: str) -> None:
    # "group": what Ctrl-C in a terminal does, SIGINT to the foreground process group (the demo and its server).
    port = free_port()
    proc = subprocess.Popen(
        DEMO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=demo_env(PORT=str(port)),
        start_new_session=to == "group",
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "serving until Ctrl-C" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(120), "".join(lines)
        time.sleep(0.5)
        assert proc.poll() is None  # still serving
        # The endpoint it printed answers, and the demo's stored responses are there to continue.
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30)
        answer = client.responses.create(model="scripted-model", input="Hello")
        assert answer.status == "completed" and answer.output_text.startswith("You said: 'Hello'")
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)  # to the demo alone: it stops its server
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    out = "".join(lines)
    assert "stopped responses-rs serve" in out and "Traceback" not in out  # (the server's log is relayed)
    assert port_is_closed(port)


def test_without_openai_one_line_and_exit_2() -> None:
    code = "import sys; sys.modules['openai'] = None; from responses_rs.server import demo; sys.exit(demo.main())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install openai" in lines[0], lines
