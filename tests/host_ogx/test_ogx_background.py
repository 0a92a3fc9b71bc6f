"""Background mode (`background: true`) and `cancel_openai_response` on OGX's contract: OGX's own
`ResponsesStore` on a real sqlite file, inference an `AsyncMock` whose answer streams slowly (a gate holds
every chunk after the first), OGX's builtin provider on the same store where the two must agree."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock

import pytest
from ogx.core.datatypes import User
from ogx.core.request_headers import RequestProviderDataContext
from ogx.core.storage.datatypes import SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import (
    Api,
    CancelResponseRequest,
    ConflictError,
    CreateResponseRequest,
    ListResponseInputItemsRequest,
    ListResponsesRequest,
    ResponseNotFoundError,
    RetrieveResponseRequest,
)
from ogx_helpers import MODEL, _chunks
from test_ogx_conversations import conversations, full_impl, moderation, prompts  # noqa: F401  (fixtures)

from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl

WAIT_S = 10


class SlowModel:
    """The model server: each call answers the next scripted text; its first chunk comes at once, the
    others only once `gate` is set. Counts the streams that ended and the ones closed before their end."""

    def __init__(self) -> None:
        self.answers: list[str | Exception] = []
        self.requests: list[Any] = []
        self.gate = asyncio.Event()
        self.finished = 0
        self.closed_early = 0
        self.api = AsyncMock()
        self.api.openai_chat_completion.side_effect = self._call

    async def _call(self, params: Any) -> Any:
        self.requests.append(params)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return self._stream(answer)

    async def _stream(self, answer: str) -> AsyncIterator[Any]:
        ended = False
        try:
            n = 0
            async for chunk in _chunks(answer):
                if n == 1:
                    await self.gate.wait()
                n += 1
                yield chunk
            ended = True
            self.finished += 1
        finally:
            if not ended:
                self.closed_early += 1


@pytest.fixture
def model() -> SlowModel:
    return SlowModel()


def config() -> BuiltinResponsesImplConfig:
    return BuiltinResponsesImplConfig(persistence={"responses": {"table_name": "responses", "backend": "sql_default"}})


async def provider(db_path: str, model: SlowModel, *, builtin: bool = False) -> Any:
    """A provider built as `ogx run` builds it, on the sqlite file at `db_path` (shared by every one made)."""
    register_sqlstore_backends({"sql_default": SqliteSqlStoreConfig(db_path=db_path)})
    deps = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    deps[Api.inference] = model.api
    impl = await (builtin_provider_impl if builtin else our_provider_impl)(config(), deps, [])
    if not builtin:
        impl.background_poll_interval = 0.05
    return impl


@pytest.fixture
async def ours(db_path: str, model: SlowModel) -> AsyncIterator[Any]:
    impl = await provider(db_path, model)
    yield impl
    await impl.shutdown()


async def stop_builtin(builtin: Any) -> None:
    """Shut the builtin down once its workers are idle: a worker cancelled while it finishes a response
    swallows the cancellation and keeps waiting for work, so its shutdown() would never return."""
    async with asyncio.timeout(WAIT_S):
        await builtin.openai_responses_impl._background_queue.join()
    await builtin.shutdown()


async def retrieve(impl: Any, response_id: str) -> Any:
    return await impl.get_openai_response(RetrieveResponseRequest(response_id=response_id))


async def wait_for_status(impl: Any, response_id: str, *statuses: str) -> Any:
    """Poll the stored response (as a client would) until its status is one of `statuses`."""
    seen = []
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await retrieve(impl, response_id)
            seen.append(response.status)
            if response.status in statuses:
                return response
            await asyncio.sleep(0.01)


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


def text_of(response: Any) -> str:
    return "".join(part.text for item in response.output if item.type == "message" for part in item.content)


def history(params: Any) -> list[tuple[str, str]]:
    """The chat messages sent, as (role, text)."""
    return [
        (m.role, m.content if isinstance(m.content, str) else "".join(p.text for p in m.content))
        for m in params.messages
    ]


def raw_row(db_path: str, response_id: str) -> dict[str, Any]:
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM responses WHERE id = ?", (response_id,)).fetchone()
    return {**dict(row), "response_object": json.loads(row["response_object"])}


async def background(impl: Any, **fields: Any) -> Any:
    return await impl.create_openai_response(
        CreateResponseRequest(model=MODEL, background=True, **{"input": "Hi", **fields})
    )


async def test_queued_at_once_in_progress_while_running_then_completed(ours: Any, model: SlowModel) -> None:
    model.answers.append("Hello there, slowly.")
    queued = await background(ours, input="Hi", temperature=0.3, metadata={"k": "v"}, instructions="Be brief.")
    assert queued.status == "queued" and queued.background is True
    assert queued.output == [] and queued.temperature == 0.3 and queued.metadata == {"k": "v"}
    assert queued.instructions == "Be brief." and queued.usage is None
    running = await wait_for_status(ours, queued.id, "in_progress")
    assert running.output == [] and running.background is True and running.created_at == queued.created_at
    await until(lambda: model.requests)  # the model is answering; nothing more is written meanwhile
    assert (await retrieve(ours, queued.id)).status == "in_progress"
    model.gate.set()
    done = await wait_for_status(ours, queued.id, "completed", "failed", "incomplete")
    assert done.status == "completed" and text_of(done) == "Hello there, slowly."
    assert done.background is True and done.id == queued.id and done.completed_at is not None
    assert done.usage is not None and done.usage.total_tokens == 11
    assert model.finished == 1
    # The model got the request as a foreground one would send it.
    sent = model.requests[0]
    assert sent.stream is True and sent.temperature == 0.3
    assert history(sent) == [("system", "Be brief."), ("user", "Hi")]
    items = await ours.list_openai_response_input_items(ListResponseInputItemsRequest(response_id=queued.id))
    assert [(i.role, i.content[0].text) for i in items.data] == [("user", "Hi")]
    listed = await ours.list_openai_responses(ListResponsesRequest())
    assert [(r.id, r.status) for r in listed.data] == [(queued.id, "completed")]


async def test_cancel_mid_run_stops_it_and_it_stays_cancelled(ours: Any, model: SlowModel, db_path: str) -> None:
    model.answers.append("never finished answer")
    queued = await background(ours)
    await wait_for_status(ours, queued.id, "in_progress")
    await until(lambda: model.requests)
    cancelled = await ours.cancel_openai_response(CancelResponseRequest(response_id=queued.id))
    assert cancelled.status == "cancelled" and cancelled.id == queued.id and cancelled.background is True
    await until(lambda: model.closed_early == 1)  # the inference stream was closed
    await until(lambda: not ours._background_runs().runs)
    model.gate.set()
    await asyncio.sleep(0.2)
    row = raw_row(db_path, queued.id)
    assert row["response_object"]["status"] == "cancelled" and row["response_object"]["output"] == []
    assert (await retrieve(ours, queued.id)).status == "cancelled" and model.finished == 0
    # Cancelling again returns it (idempotent), as the builtin does.
    again = await ours.cancel_openai_response(CancelResponseRequest(response_id=queued.id))
    assert again.status == "cancelled"
    # Its input is kept; a cancelled response can be listed and its input items read.
    items = await ours.list_openai_response_input_items(ListResponseInputItemsRequest(response_id=queued.id))
    assert [i.content[0].text for i in items.data] == ["Hi"]


async def test_cancel_while_queued_never_runs(ours: Any, model: SlowModel) -> None:
    ours.background_max_running = 1
    model.answers += ["first answer", "second answer"]
    first = await background(ours, input="one")
    await wait_for_status(ours, first.id, "in_progress")
    second = await background(ours, input="two")
    await asyncio.sleep(0.1)
    assert (await retrieve(ours, second.id)).status == "queued"  # waits for a slot
    cancelled = await ours.cancel_openai_response(CancelResponseRequest(response_id=second.id))
    assert cancelled.status == "cancelled"
    model.gate.set()
    assert (await wait_for_status(ours, first.id, "completed")).status == "completed"
    await until(lambda: not ours._background_runs().runs)
    assert len(model.requests) == 1 and (await retrieve(ours, second.id)).status == "cancelled"


async def test_cancel_of_ended_or_foreground_responses_is_a_conflict(ours: Any, model: SlowModel) -> None:
    model.gate.set()
    model.answers += ["done", "foreground"]
    finished = await background(ours)
    await wait_for_status(ours, finished.id, "completed")
    with pytest.raises(ConflictError, match="with status 'completed'"):
        await ours.cancel_openai_response(CancelResponseRequest(response_id=finished.id))
    foreground = await ours.create_openai_response(CreateResponseRequest(model=MODEL, input="x"))
    assert foreground.background is False
    with pytest.raises(ConflictError, match="only background responses"):
        await ours.cancel_openai_response(CancelResponseRequest(response_id=foreground.id))
    with pytest.raises(ResponseNotFoundError):
        await ours.cancel_openai_response(CancelResponseRequest(response_id="resp_nope"))
    assert (await retrieve(ours, finished.id)).status == "completed"


async def test_inference_failure_is_recorded_failed(ours: Any, model: SlowModel) -> None:
    model.answers.append(RuntimeError("model server down"))
    queued = await background(ours)
    failed = await wait_for_status(ours, queued.id, "failed", "completed")
    assert failed.status == "failed" and failed.background is True
    assert failed.error.code == "server_error" and "model server down" in failed.error.message
    with pytest.raises(ConflictError, match="with status 'failed'"):
        await ours.cancel_openai_response(CancelResponseRequest(response_id=queued.id))


async def test_refused_up_front(ours: Any, model: SlowModel) -> None:
    with pytest.raises(ValueError, match="'stream' and 'background'"):
        await background(ours, stream=True)
    with pytest.raises(ValueError, match="background"):
        await background(ours, store=False)
    with pytest.raises(ValueError, match="metadata"):  # checked by the core, before anything is stored
        await background(ours, metadata={f"k{i}": "v" for i in range(17)})
    with pytest.raises(ResponseNotFoundError):
        await background(ours, previous_response_id="resp_nope")
    assert (await ours.list_openai_responses(ListResponsesRequest())).data == []
    assert model.requests == []


async def test_timeout_fails_the_response(ours: Any, model: SlowModel) -> None:
    ours.background_timeout = 0.3
    model.answers.append("too slow to finish")
    queued = await background(ours)
    failed = await wait_for_status(ours, queued.id, "failed", "completed")
    assert failed.error.code == "processing_error" and "timed out after 0.3s" in failed.error.message
    assert [item.type for item in failed.output] == ["message"]  # what it had said, closed
    await until(lambda: model.closed_early == 1)


async def test_full_queue_is_refused_and_nothing_stored(ours: Any, model: SlowModel) -> None:
    ours.background_max_running = 1
    ours.background_max_queued = 1
    model.answers += ["a", "b"]
    first = await background(ours)
    await wait_for_status(ours, first.id, "in_progress")
    await background(ours)
    with pytest.raises(ValueError, match="queue is full"):
        await background(ours)
    assert len((await ours.list_openai_responses(ListResponsesRequest())).data) == 2
    model.gate.set()


async def test_shutdown_records_what_will_not_finish(db_path: str, model: SlowModel) -> None:
    impl = await provider(db_path, model)
    impl.background_max_running = 1
    model.answers += ["running", "waiting"]
    running = await background(impl)
    await wait_for_status(impl, running.id, "in_progress")
    await until(lambda: model.requests)
    waiting = await background(impl)
    await impl.shutdown()
    assert not impl._background_runs().runs and model.closed_early == 1
    for response_id in (running.id, waiting.id):
        stored = await retrieve(impl, response_id)
        assert stored.status == "failed" and stored.error.code == "server_error"
        assert "shut down" in stored.error.message


async def test_chained_background_response(ours: Any, model: SlowModel, db_path: str) -> None:
    model.gate.set()
    model.answers += ["a0", "a1"]
    first = await ours.create_openai_response(CreateResponseRequest(model=MODEL, input="q0"))
    queued = await background(ours, input="q1", previous_response_id=first.id)
    assert queued.previous_response_id == first.id
    done = await wait_for_status(ours, queued.id, "completed")
    assert text_of(done) == "a1"
    assert history(model.requests[1]) == [
        ("user", "q0"),
        ("assistant", "a0"),
        ("user", "q1"),
    ]
    row = raw_row(db_path, queued.id)
    assert row["input_storage_mode"] == "incremental" and len(row["response_object"]["input"]) == 1
    items = await ours.list_openai_response_input_items(
        ListResponseInputItemsRequest(response_id=queued.id, order="asc")
    )
    assert [i.content if isinstance(i.content, str) else i.content[0].text for i in items.data] == ["q0", "a0", "q1"]


async def test_a_running_response_is_no_previous_response(ours: Any, model: SlowModel) -> None:
    model.answers.append("slow")
    queued = await background(ours)
    with pytest.raises(ValueError, match="still (queued|in_progress)"):
        await ours.create_openai_response(CreateResponseRequest(model=MODEL, input="x", previous_response_id=queued.id))
    model.gate.set()
    await wait_for_status(ours, queued.id, "completed")


async def test_owner_and_access_attributes_are_the_creators(ours: Any, model: SlowModel, db_path: str) -> None:
    alice = User(principal="alice", attributes={"teams": ["a"]})
    bob = User(principal="bob", attributes={"teams": ["b"]})
    model.answers += ["for alice", "for alice"]  # the two runs may reach the model in either order
    with RequestProviderDataContext(None, user=alice):
        queued = await background(ours)
        running = await background(ours)
    with RequestProviderDataContext(None, user=bob):
        with pytest.raises(ResponseNotFoundError):
            await retrieve(ours, queued.id)
        with pytest.raises(ResponseNotFoundError):
            await ours.cancel_openai_response(CancelResponseRequest(response_id=running.id))
    with RequestProviderDataContext(None, user=alice):
        await wait_for_status(ours, queued.id, "in_progress")
        await ours.cancel_openai_response(CancelResponseRequest(response_id=running.id))
        model.gate.set()
        assert text_of(await wait_for_status(ours, queued.id, "completed")) == "for alice"
    for response_id, status in ((queued.id, "completed"), (running.id, "cancelled")):
        row = raw_row(db_path, response_id)
        assert row["response_object"]["status"] == status
        assert row["owner_principal"] == "alice" and json.loads(row["access_attributes"]) == {"teams": ["a"]}


async def test_cancelled_through_another_server_stops_within_a_poll(ours: Any, model: SlowModel, db_path: str) -> None:
    """Two servers on one store: the one a cancel reaches has no task for it; the one running it reads
    the record and stops."""
    other = await provider(db_path, model)
    model.answers.append("long answer here")
    queued = await background(ours)
    await wait_for_status(ours, queued.id, "in_progress")
    await until(lambda: model.requests)
    cancelled = await other.cancel_openai_response(CancelResponseRequest(response_id=queued.id))
    assert cancelled.status == "cancelled"
    await until(lambda: model.closed_early == 1)
    await until(lambda: not ours._background_runs().runs)
    model.gate.set()
    await asyncio.sleep(0.2)
    assert (await retrieve(ours, queued.id)).status == "cancelled"


async def test_deleted_while_running_stops_and_stays_deleted(ours: Any, model: SlowModel) -> None:
    from ogx_api import DeleteResponseRequest

    model.answers.append("long answer here")
    queued = await background(ours)
    await wait_for_status(ours, queued.id, "in_progress")
    await until(lambda: model.requests)
    await ours.delete_openai_response(DeleteResponseRequest(response_id=queued.id))
    await until(lambda: model.closed_early == 1)
    await until(lambda: not ours._background_runs().runs)
    with pytest.raises(ResponseNotFoundError):
        await retrieve(ours, queued.id)


async def test_builtin_reads_and_cancels_ours(ours: Any, model: SlowModel, db_path: str) -> None:
    builtin = await provider(db_path, model, builtin=True)
    try:
        model.answers += ["slow one", "fast one"]
        running = await background(ours)
        await wait_for_status(builtin, running.id, "in_progress")
        await until(lambda: model.requests)
        cancelled = await builtin.cancel_openai_response(CancelResponseRequest(response_id=running.id))
        assert cancelled.status == "cancelled"
        await until(lambda: model.closed_early == 1)
        model.gate.set()
        finished = await background(ours)
        done = await wait_for_status(builtin, finished.id, "completed")
        assert text_of(done) == "fast one" and done.background is True
        with pytest.raises(ConflictError):
            await builtin.cancel_openai_response(CancelResponseRequest(response_id=finished.id))
        # The builtin continues from our background response.
        model.answers.append("continued")
        follow = await builtin.create_openai_response(
            CreateResponseRequest(model=MODEL, input="more", previous_response_id=finished.id)
        )
        assert text_of(follow) == "continued"
        assert [m.role for m in model.requests[-1].messages] == ["user", "assistant", "user"]
    finally:
        await stop_builtin(builtin)


async def test_ours_reads_and_cancels_the_builtins(ours: Any, model: SlowModel, db_path: str) -> None:
    builtin = await provider(db_path, model, builtin=True)
    try:
        model.answers += ["the builtin is slow", "builtin done"]
        running = await background(builtin)
        assert running.status == "queued"
        await wait_for_status(ours, running.id, "in_progress")
        await until(lambda: model.requests)
        cancelled = await ours.cancel_openai_response(CancelResponseRequest(response_id=running.id))
        assert cancelled.status == "cancelled"
        model.gate.set()  # the builtin reads the record after its next event and stops
        await until(lambda: model.closed_early == 1)
        await asyncio.sleep(0.2)
        assert (await retrieve(ours, running.id)).status == "cancelled"
        finished = await background(builtin)
        done = await wait_for_status(ours, finished.id, "completed")
        assert text_of(done) == "builtin done" and done.background is True
        with pytest.raises(ConflictError):
            await ours.cancel_openai_response(CancelResponseRequest(response_id=finished.id))
    finally:
        await stop_builtin(builtin)


async def test_a_chained_background_response_is_the_providers_to_cancel(ours: Any, model: SlowModel) -> None:
    """A request building on a previous response is served by its own driver (``ogx._request``): its background
    run is still the provider's, so cancel (and shutdown) reach it."""
    model.gate.set()
    model.answers += ["a0", "never finished"]
    first = await ours.create_openai_response(CreateResponseRequest(model=MODEL, input="q0"))
    model.gate.clear()
    queued = await background(ours, input="q1", previous_response_id=first.id)
    await wait_for_status(ours, queued.id, "in_progress")
    await until(lambda: len(model.requests) == 2)
    assert queued.id in ours._background_runs().runs
    assert (await ours.cancel_openai_response(CancelResponseRequest(response_id=queued.id))).status == "cancelled"
    await until(lambda: model.closed_early == 1)
    await until(lambda: not ours._background_runs().runs)


async def test_background_mcp_tool_shares_one_session(impl: Any, script: Any) -> None:
    """A background run holds its own MCP session manager (the request's is gone when create returns): the
    listing and the call share it, one tools/list at the testkit's MCP server."""
    from ogx_helpers import ToolCall

    from responses_rs.testkit.mcp_server import MCPTestServer

    with MCPTestServer() as mcp:
        script.turns += [[ToolCall("add", {"a": 2, "b": 3})], "five"]
        tool = {"type": "mcp", "server_label": "kit", "server_url": mcp.url, "require_approval": "never"}
        queued = await background(impl, input="2+3?", tools=[tool])
        assert queued.status == "queued" and [t.type for t in queued.tools] == ["mcp"]
        done = await wait_for_status(impl, queued.id, "completed", "failed")
        await impl.shutdown()
    assert done.status == "completed", done.error
    assert [item.type for item in done.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert done.output[1].output == "5" and mcp.calls == [("add", {"a": 2, "b": 3})]
    assert mcp.listings == 1


async def test_background_in_a_conversation_extends_it_when_it_ends(
    full_impl: Any,  # noqa: F811  (the fixtures imported above)
    conversations: Any,  # noqa: F811
    store: Any,
    script: Any,
) -> None:
    """The queued record does not touch the conversation; the ended response's items and chat history go to
    it, as a foreground response's do."""
    from ogx_api import CreateConversationRequest, ListItemsRequest

    conv = await conversations.create_conversation(CreateConversationRequest())
    script.turns += ["Hello Ada"]
    queued = await full_impl.create_openai_response(
        CreateResponseRequest(model=MODEL, input="My name is Ada", conversation=conv.id, background=True)
    )
    assert queued.status == "queued"
    done = await wait_for_status(full_impl, queued.id, "completed", "failed")
    await full_impl.shutdown()
    assert done.status == "completed" and text_of(done) == "Hello Ada"
    items = (await conversations.list_items(ListItemsRequest(conversation_id=conv.id, order="asc"))).data
    texts = [(i.role, i.content if isinstance(i.content, str) else "".join(p.text for p in i.content)) for i in items]
    assert texts == [("user", "My name is Ada"), ("assistant", "Hello Ada")]
    assert items[1].id == done.output[0].id
    assert len(await store.get_conversation_messages(conv.id)) == 2
