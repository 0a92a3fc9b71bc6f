"""`background: true` with `guardrails` on OGX 1.5: the background run checks input and output as a
foreground response does (OGX's builtin runs its streaming path, guardrails included, in the background
worker). Providers built as `ogx run` builds them on a real sqlite store; the moderation service is the
local HTTP endpoint of `moderation_server`; the model server is scripted (`SlowModel`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest.mock import AsyncMock

import pytest
from moderation_server import Moderation
from ogx.core.storage.datatypes import SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import Api, CancelResponseRequest, ListResponseInputItemsRequest
from test_ogx_background import (
    SlowModel,
    background,
    model,  # noqa: F401  (fixture)
    raw_row,
    retrieve,
    stop_builtin,
    text_of,
    until,
    wait_for_status,
)

from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl

ENDED = ("completed", "failed", "incomplete", "cancelled")
FLAGGED = "Content blocked by safety guardrails (flagged for: violence)"
UNAVAILABLE = "Failed to validate content: moderation service unavailable"


@pytest.fixture
def moderation() -> Iterator[Moderation]:
    server = Moderation()
    yield server
    server.close()


async def provider(db_path: str, slow: SlowModel, endpoint: str, *, builtin: bool = False) -> Any:
    """A provider built as `ogx run` builds it, its `moderation_endpoint` at `endpoint`."""
    register_sqlstore_backends({"sql_default": SqliteSqlStoreConfig(db_path=db_path)})
    deps = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    deps[Api.inference] = slow.api
    config = BuiltinResponsesImplConfig(
        persistence={"responses": {"table_name": "responses", "backend": "sql_default"}},
        moderation_endpoint=endpoint,
        moderation_headers={"X-Moderation-Key": "k1"},
    )
    impl = await (builtin_provider_impl if builtin else our_provider_impl)(config, deps, [])
    if not builtin:
        impl.background_poll_interval = 0.05
    return impl


@pytest.fixture
async def ours(db_path: str, model: SlowModel, moderation: Moderation) -> AsyncIterator[Any]:  # noqa: F811
    impl = await provider(db_path, model, moderation.url)
    yield impl
    await impl.shutdown()


def refusal_of(response: Any) -> str:
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    (part,) = message.content
    assert part.type == "refusal"
    return part.refusal


def row_refusal(db_path: str, response_id: str) -> str:
    """The refusal as it is stored (the raw row's response object)."""
    row = raw_row(db_path, response_id)["response_object"]
    assert row["status"] == "completed" and row["background"] is True and row["error"] is None
    ((part,),) = [item["content"] for item in row["output"]]
    assert part["type"] == "refusal"
    return part["refusal"]


async def test_clean_input_and_output_pass(
    ours: Any,
    model: SlowModel,  # noqa: F811
    moderation: Moderation,
    db_path: str,
) -> None:
    long_answer = " ".join(["word"] * 120)  # 599 characters: checked in batches and at the end
    model.answers.append(long_answer)
    queued = await background(ours, input="hello", instructions="Be kind.", guardrails=True)
    assert queued.status == "queued" and queued.background is True and queued.output == []
    await wait_for_status(ours, queued.id, "in_progress")
    model.gate.set()
    done = await wait_for_status(ours, queued.id, *ENDED)
    assert done.status == "completed" and text_of(done) == long_answer and done.background is True
    assert moderation.inputs[0] == "Be kind. hello"  # every message, before inference
    assert len(moderation.inputs) >= 3 and moderation.inputs[-1] == long_answer
    assert all(h.get("X-Moderation-Key") == "k1" for h in moderation.headers)
    assert model.finished == 1
    row = raw_row(db_path, queued.id)["response_object"]
    assert row["status"] == "completed" and row["output"][0]["content"][0]["text"] == long_answer
    items = await ours.list_openai_response_input_items(ListResponseInputItemsRequest(response_id=queued.id))
    assert [(i.role, i.content[0].text) for i in items.data] == [("user", "hello")]


async def test_flagged_input_completes_with_the_refusal_and_no_inference(
    ours: Any,
    model: SlowModel,  # noqa: F811
    moderation: Moderation,
    db_path: str,
) -> None:
    queued = await background(ours, input="something forbidden", guardrails=True)
    assert queued.status == "queued"
    done = await wait_for_status(ours, queued.id, *ENDED)
    assert done.status == "completed" and done.background is True and done.id == queued.id
    assert refusal_of(done) == FLAGGED
    (message,) = done.output
    assert message.status == "completed" and message.id.startswith("msg_")  # the builtin's has neither (4.10)
    assert model.requests == []  # no inference
    assert moderation.inputs == ["something forbidden"]
    assert row_refusal(db_path, queued.id) == FLAGGED
    items = await ours.list_openai_response_input_items(ListResponseInputItemsRequest(response_id=queued.id))
    assert [i.content[0].text for i in items.data] == ["something forbidden"]


async def test_flagged_output_is_replaced_by_the_refusal(
    ours: Any,
    model: SlowModel,  # noqa: F811
    moderation: Moderation,
    db_path: str,
) -> None:
    model.gate.set()
    model.answers.append("here is the forbidden answer")
    queued = await background(ours, input="hello", guardrails=True)
    done = await wait_for_status(ours, queued.id, *ENDED)
    assert done.status == "completed" and len(model.requests) == 1
    assert refusal_of(done) == FLAGGED
    assert row_refusal(db_path, queued.id) == FLAGGED
    # Nothing of the flagged text was stored.
    assert "forbidden answer" not in json.dumps(raw_row(db_path, queued.id)["response_object"])


async def test_moderation_down_fails_closed(
    db_path: str,
    model: SlowModel,  # noqa: F811
) -> None:
    gone = Moderation()
    gone.close()  # nothing listens at its address any more
    impl = await provider(db_path, model, gone.url)
    try:
        model.gate.set()
        model.answers.append("fine text")
        queued = await background(impl, input="hello", guardrails=True)
        done = await wait_for_status(impl, queued.id, *ENDED)
        assert done.status == "completed" and refusal_of(done) == UNAVAILABLE
        assert model.requests == []  # the input check already blocked
        assert row_refusal(db_path, queued.id) == UNAVAILABLE
    finally:
        await impl.shutdown()


async def test_moderation_error_status_fails_closed_on_the_output(
    ours: Any,
    model: SlowModel,  # noqa: F811
    moderation: Moderation,
    db_path: str,
) -> None:
    # The input check passes; the service then answers 500 while the output is checked.
    model.answers.append("fine text")
    queued = await background(ours, input="hello", guardrails=True)
    await until(lambda: model.requests)
    moderation.status = 500
    model.gate.set()
    done = await wait_for_status(ours, queued.id, *ENDED)
    assert done.status == "completed" and refusal_of(done) == UNAVAILABLE
    assert row_refusal(db_path, queued.id) == UNAVAILABLE


async def test_cancel_mid_run_stops_it(
    ours: Any,
    model: SlowModel,  # noqa: F811
    moderation: Moderation,
    db_path: str,
) -> None:
    model.answers.append("never finished answer")
    queued = await background(ours, guardrails=True)
    await wait_for_status(ours, queued.id, "in_progress")
    await until(lambda: model.requests)
    cancelled = await ours.cancel_openai_response(CancelResponseRequest(response_id=queued.id))
    assert cancelled.status == "cancelled" and cancelled.background is True
    await until(lambda: model.closed_early == 1)  # the inference stream was closed
    await until(lambda: not ours._background_runs().runs)
    model.gate.set()
    row = raw_row(db_path, queued.id)["response_object"]
    assert row["status"] == "cancelled" and row["output"] == []
    assert (await retrieve(ours, queued.id)).status == "cancelled" and model.finished == 0


async def test_inference_failure_is_recorded_failed(
    ours: Any,
    model: SlowModel,  # noqa: F811
) -> None:
    model.answers.append(RuntimeError("model server down"))
    queued = await background(ours, guardrails=True)
    failed = await wait_for_status(ours, queued.id, *ENDED)
    assert failed.status == "failed" and "model server down" in failed.error.message


async def test_records_match_the_builtins(
    ours: Any,
    model: SlowModel,  # noqa: F811
    moderation: Moderation,
    db_path: str,
) -> None:
    """The builtin, on the same store, writes the same refusal record for a flagged input and reads ours."""
    builtin = await provider(db_path, model, moderation.url, builtin=True)
    try:
        theirs = await background(builtin, input="something forbidden", guardrails=True)
        mine = await background(ours, input="something forbidden", guardrails=True)
        theirs_done = await wait_for_status(builtin, theirs.id, *ENDED)
        mine_done = await wait_for_status(ours, mine.id, *ENDED)
        assert refusal_of(theirs_done) == refusal_of(mine_done) == FLAGGED
        assert theirs_done.status == mine_done.status == "completed"
        assert model.requests == []
        # each reads the other's record
        assert refusal_of(await retrieve(builtin, mine.id)) == FLAGGED
        assert refusal_of(await retrieve(ours, theirs.id)) == FLAGGED

        def shape(response_id: str) -> Any:
            row = raw_row(db_path, response_id)["response_object"]
            # The builtin's refusal message has no id nor status (docs/ogx-1.5.md 4.10); ours has both.
            return (
                row["status"],
                row["background"],
                row["error"],
                [(i["type"], i["role"], i["content"]) for i in row["output"]],
            )

        assert shape(mine.id) == shape(theirs.id)
    finally:
        await stop_builtin(builtin)
