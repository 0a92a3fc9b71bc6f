"""Launch a real ``responses-rs serve`` process (the console script, or ``python -m responses_rs.server``) on a
free port of 127.0.0.1 and wait for its ready line."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from responses_rs.server import READY_PREFIX


@dataclass
class Serve:
    base_url: str  # the openai client's base_url (ends in /v1)
    pid: int
    db: Path
    log: list[str]


@contextlib.contextmanager
def serve_process(
    upstream: str | None, data_dir: Path, *extra: str, console_script: bool = True, timeout: float = 30
) -> Iterator[Serve]:
    """``upstream`` None: no ``--upstream`` (the server's own scripted model answers)."""
    script = Path(sys.executable).parent / "responses-rs"
    command = [str(script), "serve"] if console_script else [sys.executable, "-m", "responses_rs.server"]
    command += ["--upstream", upstream] if upstream is not None else []
    command += ["--port", "0", "--data-dir", str(data_dir), "--log-level", "warning", *extra]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **{
                k: v for k, v in os.environ.items() if upstream is not None or not k.startswith("RESPONSES_RS_UPSTREAM")
            },
            "PYTHONUNBUFFERED": "1",
        },
    )
    log: list[str] = []
    ready = threading.Event()
    base: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX) and not base:
                base.append(line.split()[1])
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout) or not base:
            raise RuntimeError("responses-rs serve did not start:\n" + "\n".join(log))
        yield Serve(base_url=base[0], pid=proc.pid, db=data_dir / "responses.db", log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)


def serve_fixtures(model: str, *extra: str, state: str = "serve") -> tuple[Any, Any, Any]:
    """The three fixtures of a serve end-to-end module: ``chat_server`` (the scripted Chat Completions server
    serving ``model``, one per module), ``serve`` (a ``responses-rs serve`` process in front of it with the flags
    ``extra``, one per module) and ``client`` (an official ``openai.OpenAI`` on it, the chat server's script reset
    for each test). Bind them in the module: ``chat_server, serve, client = serve_fixtures(MODEL)``."""
    import openai
    import pytest

    from responses_rs.testkit import ScriptedChatServer

    @pytest.fixture(scope="module")
    def chat_server() -> Iterator[ScriptedChatServer]:
        server = ScriptedChatServer(models=[model]).start()
        yield server
        server.stop()

    @pytest.fixture(scope="module")
    def serve(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
        with serve_process(chat_server.base_url, tmp_path_factory.mktemp(state), *extra) as s:
            yield s

    @pytest.fixture
    def client(serve: Serve, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
        chat_server.reset()
        oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=30)
        yield oai
        oai.close()

    return chat_server, serve, client
