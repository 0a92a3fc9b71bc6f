"""Launching a real ``ogx run`` with responses-rs as its responses provider (the run config from
``python -m responses_rs.ogx run-config``) for the end-to-end suites."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from responses_rs.testkit.ogx_run import ogx_run


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
    with ogx_run(config, state, base_url=base_url, model=model, env=env) as (base, _):
        yield base


def e2e_fixtures(model: str, *, state: str = "ogx") -> tuple[Any, Any, Any]:
    """The three fixtures of an end-to-end module: ``chat_server`` (the scripted Chat Completions server serving
    ``model``, one per module), ``ogx`` (a running ``ogx run`` with our provider on it, one per module; yields the
    openai client's base URL) and ``client`` (an official ``openai.OpenAI`` on it, the chat server's script
    reset for each test). Bind them in the module: ``chat_server, ogx, client = e2e_fixtures(MODEL)``."""
    import openai
    import pytest

    from responses_rs.testkit import ScriptedChatServer

    @pytest.fixture(scope="module")
    def chat_server() -> Iterator[ScriptedChatServer]:
        server = ScriptedChatServer(models=[model]).start()
        yield server
        server.stop()

    @pytest.fixture(scope="module")
    def ogx(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        with ogx_server(tmp_path_factory.mktemp(state), base_url=chat_server.base_url, model=model) as base:
            yield base

    @pytest.fixture
    def client(ogx: str, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
        chat_server.reset()
        oai = openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=30)
        yield oai
        oai.close()

    return chat_server, ogx, client


def streamed_events(client: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
    """One streamed ``responses.create``: the final response, checked by the strict stream validator and the
    Open Responses schema ("full"), and every event."""
    from openai.types.responses import Response
    from stream_validator import validate_stream

    events = list(client.responses.create(stream=True, **kwargs))
    return validate_stream(events, response_cls=Response, schema_host="full"), events


def streamed(client: Any, **kwargs: Any) -> Any:
    """One streamed ``responses.create``, validated (``streamed_events``): the final response."""
    return streamed_events(client, **kwargs)[0]
