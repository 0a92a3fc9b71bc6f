"""A background response cancelled (through another server on the database, or by a cancel that wins the race)
before its run begins: the run finds its row no longer queued and does not start, and its kept stream is still a
whole one (response.created and response.queued, then response.failed), so a replay or a streamed follower gets a
terminal event rather than an empty body. In process: the server's App on a real sqlite store; the cancel is
written to the store before the run's first step (the store runs its writes in order on one thread)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from responses_rs.server._app import App, Config
from responses_rs.server._store import Store
from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"


async def _scenario(store: Store, upstream: str) -> tuple[str, str | None, int]:
    app = App(Config(upstream=upstream), store)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:  # answers without yielding: the run has not begun
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    request = await app._prepare({"model": MODEL, "input": "Go", "background": True}, "", stream=False)
    await app._start_background(request, send, receive, stream=False)
    response_id = request.turn.response_id
    run = app._background[response_id]
    # Another server cancels it now: its row is no longer queued when the run's first step reads it.
    assert await store.set_response(response_id, "cancelled", json.dumps({"id": response_id, "status": "cancelled"}))
    assert run.task is not None
    await run.task
    status, events = await store.events(response_id, "")
    if app._watcher is not None:
        app._watcher.cancel()
    return status, events, sent[0]["status"]


def test_a_run_cancelled_before_it_began_keeps_a_whole_stream(tmp_path: Path) -> None:
    chat = ScriptedChatServer(models=[MODEL]).start()
    store = Store(tmp_path / "responses.db")
    store.open()
    try:
        status, events, http_status = asyncio.run(_scenario(store, chat.base_url))
    finally:
        store.close()
        chat.stop()
    assert http_status == 200 and status == "cancelled"
    assert events is not None
    types = re.findall(r"^event: (\S+)$", events, re.M)
    assert types == ["response.created", "response.queued", "response.failed"], events
    failed = json.loads(events.rstrip().rsplit("data: ", 1)[1])
    assert failed["response"]["error"]["message"] == "cancelled before it started"
    assert chat.requests == []  # the model was never called
