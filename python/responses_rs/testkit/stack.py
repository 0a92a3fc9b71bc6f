"""Start and stop a real ``llama stack run`` with the responses-rs agents provider, for tests and demos.

``start_llama_stack(model_base_url, model)`` renders the packaged example run config for the installed
llama-stack (``responses_rs/examples/run-<version>.yaml``, the one the README documents) with
``external_providers_dir`` filled in, then runs the current interpreter's ``llama stack run`` on it as
a subprocess listening on 127.0.0.1 and a free port, with every store (sqlite) and llama-stack's config
dir in a state directory. It returns once ``GET /v1/health`` answers::

    with ScriptedChatServer(models=["m"]) as model, start_llama_stack(model.base_url, "m") as stack:
        client = openai.OpenAI(base_url=stack.openai_base_url, api_key="none")

Loopback only: llama-stack 0.2.12 honours ``server.host`` (the example sets ``127.0.0.1``); 0.2.7 has no
such setting and always listens on ``::`` and ``0.0.0.0``, so for it the server is started through
``python -m responses_rs.testkit.stack loopback-run ...``, which runs the same ``llama stack run`` with
``uvicorn.run`` made to bind ``127.0.0.1``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["LlamaStack", "StackStartError", "free_port", "start_llama_stack"]

LOOPBACK = "127.0.0.1"
# How llama-stack serves the OpenAI-compatible API: /v1 + the webmethod route /openai/v1/...
OPENAI_PREFIX = "/v1/openai/v1"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the responses_rs package


class StackStartError(RuntimeError):
    """``llama stack run`` exited or did not become healthy; the message ends with its log."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _server_has_host_setting() -> bool:
    from llama_stack.distribution.datatypes import ServerConfig

    return "host" in ServerConfig.model_fields


class LlamaStack:
    """A running ``llama stack run`` subprocess (see :func:`start_llama_stack`)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        state_dir: Path,
        config_path: Path,
        log_path: Path,
        remove_state_dir: bool,
    ) -> None:
        self.process = process
        self.port = port
        self.state_dir = state_dir
        self.config_path = config_path
        self.log_path = log_path
        self._remove_state_dir = remove_state_dir

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (llama-stack's own routes are under ``/v1``)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """What the ``openai`` client's ``base_url`` wants: ``http://127.0.0.1:PORT/v1/openai/v1``."""
        return self.base_url + OPENAI_PREFIX

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server (its own process group), SIGKILL it after ``timeout``; clean up state."""
        proc = self.process
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        if self._remove_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self._remove_state_dir = False
        return proc.returncode

    def __enter__(self) -> LlamaStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_llama_stack(
    model_base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    agents_provider_type: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> LlamaStack:
    """Run ``llama stack run`` with responses-rs against an OpenAI-compatible model server.

    ``model_base_url`` includes ``/v1``; ``model`` must be listed by its ``GET /models`` (llama-stack
    checks at startup). Keywords: ``api_key`` (for the model server), ``state_dir`` (default: a new
    temporary directory, removed by ``stop()``; gets ``run.yaml``, ``server.log`` and the sqlite
    stores), ``port`` (default: a free one), ``agents_provider_type`` (``"inline::meta-reference"`` runs
    llama-stack's own Responses implementation instead, for comparison), ``env`` (extra environment for
    the server), ``timeout`` (seconds to wait for ``/v1/health``).
    """
    attempts = 1 if port else 3  # a free port can be taken before the server binds it
    for attempt in range(attempts):
        try:
            return _start(
                model_base_url,
                model,
                api_key=api_key,
                state_dir=state_dir,
                port=port or free_port(),
                agents_provider_type=agents_provider_type,
                env=env,
                timeout=timeout,
            )
        except StackStartError as exc:
            if attempt + 1 == attempts or "address already in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def _start(
    model_base_url: str,
    model: str,
    *,
    api_key: str | None,
    state_dir: str | os.PathLike[str] | None,
    port: int,
    agents_provider_type: str | None,
    env: dict[str, str] | None,
    timeout: float,
) -> LlamaStack:
    from responses_rs.llama_stack import PROVIDER_TYPE, render_run_config

    remove = state_dir is None
    state = Path(tempfile.mkdtemp(prefix="responses-rs-stack-") if state_dir is None else state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    config_text = render_run_config()
    if agents_provider_type and agents_provider_type != PROVIDER_TYPE:
        config_text = config_text.replace(
            f"provider_type: {PROVIDER_TYPE}", f"provider_type: {agents_provider_type}", 1
        )
    config_path = state / "run.yaml"
    config_path.write_text(config_text, encoding="utf-8")
    log_path = state / "server.log"

    child_env = {k: v for k, v in os.environ.items() if k not in ("CONDA_DEFAULT_ENV", "LLAMA_STACK_PORT")}
    child_env.update(
        OPENAI_BASE_URL=model_base_url,
        OPENAI_MODEL=model,
        OPENAI_API_KEY=api_key or "fake",
        SQLITE_STORE_DIR=str(state),
        # llama-stack's own state (default telemetry store, ~/.llama/...) stays in the state dir too
        LLAMA_STACK_CONFIG_DIR=str(state / "home"),
        PYTHONUNBUFFERED="1",
        # the same responses_rs the caller imported, even from a source checkout
        PYTHONPATH=os.pathsep.join(p for p in (str(_PACKAGE_ROOT), child_env.get("PYTHONPATH")) if p),
    )
    child_env.update(env or {})
    run_args = ["stack", "run", str(config_path), "--port", str(port)]
    if _server_has_host_setting():
        cmd = [sys.executable, "-m", "llama_stack.cli.llama", *run_args]
    else:  # llama-stack 0.2.7: no server.host, force the bind address
        cmd = [sys.executable, "-m", "responses_rs.testkit.stack", "loopback-run", "--", *run_args]

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=str(state),
            start_new_session=True,  # its own process group: stop() ends it and nothing else
        )
    stack = LlamaStack(process, port, state, config_path, log_path, remove)
    health = f"{stack.base_url}/v1/health"
    deadline = time.monotonic() + timeout
    try:
        while not _healthy(health):
            if process.poll() is not None:
                raise StackStartError(
                    f"llama stack run exited with {process.returncode}; log {log_path}:\n{stack.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise StackStartError(f"llama stack run not healthy after {timeout:.0f}s:\n{stack.log_tail()}")
            time.sleep(0.1)
    except BaseException:
        stack.stop()  # the error message carries the log's tail
        raise
    return stack


def _loopback_run(llama_args: list[str]) -> int:
    """``llama <args>`` with uvicorn bound to 127.0.0.1 whatever llama-stack asks for."""
    import uvicorn

    original_run = uvicorn.run

    def run(*args: object, **kwargs: object) -> object:
        kwargs["host"] = LOOPBACK
        print(f"responses_rs.testkit.stack: binding {LOOPBACK} only", flush=True)
        return original_run(*args, **kwargs)  # type: ignore[arg-type]

    uvicorn.run = run
    from llama_stack.cli.llama import main as llama_main

    sys.argv = ["llama", *llama_args]
    llama_main()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "loopback-run":
        print("usage: python -m responses_rs.testkit.stack loopback-run [--] LLAMA_ARGS...", file=sys.stderr)
        return 2
    llama_args = argv[1:]
    if llama_args[:1] == ["--"]:
        llama_args = llama_args[1:]
    return _loopback_run(llama_args)


if __name__ == "__main__":
    sys.exit(main())
