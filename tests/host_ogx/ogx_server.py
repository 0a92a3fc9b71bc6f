"""Launching a real ``ogx run`` with responses-rs as its responses provider (the run config from
``python -m responses_rs.ogx run-config``) for the end-to-end suites."""

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


def write_run_config(state: Path, *extra_args: str) -> Path:
    """``python -m responses_rs.ogx run-config [extra_args]`` into ``state/run.yaml``."""
    config = state / "run.yaml"
    command = [sys.executable, "-m", "responses_rs.ogx", "run-config", *extra_args]
    config.write_text(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return config


@contextlib.contextmanager
def ogx_server(
    state: Path, *, base_url: str, model: str, run_config_args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[str]:
    """A running ``ogx run`` whose sqlite stores (and log, ``ogx.log``) live in ``state``, its inference on the
    Chat Completions server at ``base_url`` serving ``model``; yields the openai client's base URL."""
    config = write_run_config(state, *run_config_args)
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
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"ogx run did not start:\n{(state / 'ogx.log').read_text()[-4000:]}") from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
