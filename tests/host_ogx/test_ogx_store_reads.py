"""OGX (1.5) store path: a chained response is written incrementally (this turn's input only) without reading the
previous response a second time: the driver counts the chain's items when it reads them for the model
(``Turn.history_items``), and the write slices there. Real sqlite ``ResponsesStore``; its reads are counted."""

from __future__ import annotations

from typing import Any

from ogx_api import CreateResponseRequest
from ogx_helpers import MODEL, Script, collect

from responses_rs._engine import _history_items


def count_reads(impl: Any) -> list[str]:
    """Record every `get_response_object` of the implementation's (real) store."""
    store = impl.responses_store
    real = store.get_response_object
    reads: list[str] = []

    async def get_response_object(response_id: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(response_id)
        return await real(response_id, *args, **kwargs)

    store.get_response_object = get_response_object
    return reads


async def test_chained_store_reads_the_previous_response_once(impl: Any, script: Script, stream: bool) -> None:
    script.turns += ["first answer", "second answer"]
    first, _ = await collect(
        await impl.create_openai_response(CreateResponseRequest(model=MODEL, input="first question", stream=stream))
    )
    reads = count_reads(impl)
    new_items = [
        {"type": "message", "role": "user", "content": "second question"},
        {"type": "message", "role": "user", "content": "and a follow-up"},
    ]
    request = CreateResponseRequest(model=MODEL, input=new_items, previous_response_id=first.id, stream=stream)
    second, _ = await collect(await impl.create_openai_response(request))
    assert second.status == "completed" and second.previous_response_id == first.id
    assert reads == [first.id]  # the chain, read once for the model; the write did not read it again
    # the model saw the whole chain
    sent = [(m.role, m.content) for m in script.requests[-1].messages]
    assert [role for role, _ in sent] == ["user", "assistant", "user", "user"]
    # the row holds this turn's two items only, marked incremental, as OGX's builtin writes it
    row = await impl.responses_store.sql_store.fetch_one("responses", where={"id": second.id})
    assert row["input_storage_mode"] == "incremental" and row["previous_response_id"] == first.id
    assert [item["content"] for item in row["response_object"]["input"]] == ["second question", "and a follow-up"]
    # OGX's store rebuilds the whole input from the chain
    stored = await impl.responses_store.get_response_object(second.id)
    texts = [item.content if isinstance(item.content, str) else item.content[0].text for item in stored.input]
    assert texts == ["first question", "first answer", "second question", "and a follow-up"]


async def test_unchained_store_reads_nothing(impl: Any, script: Script, stream: bool) -> None:
    script.turns.append("an answer")
    reads = count_reads(impl)
    response, _ = await collect(
        await impl.create_openai_response(CreateResponseRequest(model=MODEL, input="a question", stream=stream))
    )
    assert reads == []
    row = await impl.responses_store.sql_store.fetch_one("responses", where={"id": response.id})
    assert row["input_storage_mode"] is None and len(row["response_object"]["input"]) == 1


def test_history_items_counts_the_prepended_chain() -> None:
    chain = [{"n": 0}, {"n": 1}, {"n": 2}]
    assert _history_items("new text", [*chain, {"n": 3}]) == 3
    assert _history_items([{"n": 3}, {"n": 4}], [*chain, {"n": 3}, {"n": 4}]) == 3
    assert _history_items([], chain) == 3
    assert _history_items("no chain", "no chain") == 0
