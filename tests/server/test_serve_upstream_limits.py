"""Per-upstream limits of ``responses-rs serve``: ``--upstream-timeout`` and ``--upstream-max`` take one value for
every upstream or one per ``--upstream`` (in order). Two scripted Chat Completions servers behind one real serve
process: a slow model times out at its own upstream's short timeout while the other upstream, with a long one,
answers; an upstream capped at one concurrent call receives the second of two concurrent requests only after the
first one's stream has ended, while the other upstream takes two at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from serve_process import serve_process

from responses_rs.server import per_upstream_limits
from responses_rs.testkit import ScriptedChatServer

A_MODEL, B_MODEL = "model-a", "model-b"
DELAY, CHUNKS = 0.15, 4  # the scripted streams' pause before each event, and the events of a short answer


def test_per_upstream_limits_take_one_value_or_one_per_upstream() -> None:
    assert per_upstream_limits([], [], 2) == ([300.0, 300.0], [None, None])
    assert per_upstream_limits(["5"], ["3"], 2) == ([5.0, 5.0], [3, 3])
    assert per_upstream_limits(["5", "60"], ["", "2"], 2) == ([5.0, 60.0], [None, 2])
    for timeouts, caps, flag in (
        (["1", "2", "3"], [], "--upstream-timeout"),
        (["soon"], [], "--upstream-timeout"),
        (["0"], [], "--upstream-timeout"),
        ([], ["0"], "--upstream-max"),
        ([], ["1", "2", "3"], "--upstream-max"),
    ):
        with pytest.raises(ValueError, match=flag):
            per_upstream_limits(timeouts, caps, 2)


@pytest.fixture(scope="module")
def chat_a() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[A_MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chat_b() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[B_MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(chat_a: ScriptedChatServer, chat_b: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("serve-upstream-limits")
    # Upstream a: 0.5 s timeout, at most one call at a time; upstream b: 30 s, no cap of its own.
    with serve_process(
        chat_a.base_url,
        data,
        "--upstream",
        chat_b.base_url,
        "--upstream-timeout",
        "0.5",
        "--upstream-timeout",
        "30",
        "--upstream-max",
        "1",
        "--upstream-max",
        "",
    ) as serve:
        with openai.OpenAI(base_url=serve.base_url, api_key="x", max_retries=0, timeout=30) as client:
            yield client


def test_each_upstream_has_its_own_timeout(
    client: openai.OpenAI, chat_a: ScriptedChatServer, chat_b: ScriptedChatServer
) -> None:
    slow = {"text": "late", "delay": 1.0}
    chat_a.script([slow])
    chat_b.script([slow])
    timed_out = client.responses.create(model=A_MODEL, input="hi", stream=True)
    events = list(timed_out)
    assert events[-1].type == "response.failed" and "0.5 s" in events[-1].response.error.message  # type: ignore[union-attr]
    answered = client.responses.create(model=B_MODEL, input="hi")
    assert answered.status == "completed" and answered.output_text == "late"


def _arrivals(server: ScriptedChatServer, count: int) -> list[float]:
    """Script `count` short delayed answers that note when their request arrived."""
    arrived: list[float] = []
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        with lock:
            arrived.append(time.monotonic())
        return {"text": "x" * CHUNKS, "chunk_size": 1, "delay": DELAY}

    server.script([answer] * count)
    return arrived


def _two_at_once(client: openai.OpenAI, model: str) -> None:
    done: list[str] = []

    def one() -> None:
        done.append(client.responses.create(model=model, input="go").status)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert done == ["completed", "completed"]


def test_an_upstream_capped_at_one_call_takes_the_next_only_after_the_first_ends(
    client: openai.OpenAI, chat_a: ScriptedChatServer, chat_b: ScriptedChatServer
) -> None:
    chat_a.reset()
    chat_b.reset()
    # A stream of CHUNKS text events plus its role, finish, usage and [DONE] events, each after DELAY seconds.
    stream_time = (CHUNKS + 4) * DELAY
    capped = _arrivals(chat_a, 2)
    _two_at_once(client, A_MODEL)
    assert capped[1] - capped[0] >= 0.9 * stream_time, capped
    free = _arrivals(chat_b, 2)
    _two_at_once(client, B_MODEL)
    assert free[1] - free[0] < stream_time / 2, free


def test_a_bad_per_upstream_value_stops_the_server_naming_the_flag(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "responses-rs"
    done = subprocess.run(
        [
            str(script),
            "serve",
            "--upstream",
            "http://127.0.0.1:9/v1",
            "--upstream-timeout",
            "1",
            "--upstream-timeout",
            "2",
            "--upstream-timeout",
            "3",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--upstream-timeout: 3 values for 1 upstreams" in done.stderr, done.stderr
