"""A real ``ogx run`` process for tests and benchmarks (stdlib only): started on a free loopback port with its
sqlite stores and log in a state directory, its inference on an OpenAI-compatible Chat Completions URL, stopped
on exit."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ogx_run(
    config: Path,
    state: Path,
    *,
    base_url: str,
    model: str,
    env: dict[str, str] | None = None,
    start_timeout: float = 90,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``ogx run CONFIG`` (the ``ogx`` next to this interpreter) whose sqlite stores and log (``ogx.log``) live
    in ``state``, its inference on ``base_url`` serving ``model`` (``OPENAI_BASE_URL``, ``OPENAI_MODEL``);
    yields (the openai client's base URL ``http://127.0.0.1:PORT/v1``, the process) once ``/v1/health``
    answers."""
    port = free_port()
    full_env = {
        **os.environ,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_MODEL": model,
        "SQLITE_STORE_DIR": str(state),
        "TIKTOKEN_CACHE_DIR": str(Path(sys.prefix) / "tiktoken-cache"),
        **(env or {}),
    }
    log = (state / "ogx.log").open("w")
    ogx_bin = Path(sys.executable).with_name("ogx")
    proc = subprocess.Popen(
        [str(ogx_bin), "run", str(config), "--port", str(port)], env=full_env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"ogx run did not start:\n{(state / 'ogx.log').read_text()[-4000:]}") from None
                time.sleep(0.5)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
