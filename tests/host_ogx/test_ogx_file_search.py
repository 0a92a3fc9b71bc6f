"""file_search under OGX 1.5 with the vector store search mocked (the outside world): the fixed `file_search`
tool, what the model is told, `file_citation` annotations from its `<|file-id|>` markers (streamed as
`response.output_text.annotation.added`), and `include: ["file_search_call.results"]`. OGX's own store
underneath; every stream through the stream validator."""

from __future__ import annotations

from typing import Any

import pytest
from ogx_api import (
    CreateResponseRequest,
    ListResponseInputItemsRequest,
    VectorStoreContent,
    VectorStoreSearchResponse,
    VectorStoreSearchResponsePage,
)
from ogx_helpers import MODEL, Script, ToolCall, collect

FILES = {"file-a": ("a.txt", 0.9, "Llamas hum."), "file-b": ("b.txt", 0.4, "Alpacas spit.")}
TOOL = {"type": "file_search", "vector_store_ids": ["vs_1", "vs_2"], "max_num_results": 5}


def page(*file_ids: str) -> VectorStoreSearchResponsePage:
    data = [
        VectorStoreSearchResponse(
            file_id=f,
            filename=FILES[f][0],
            score=FILES[f][1],
            attributes={"lang": "en"},
            content=[VectorStoreContent(type="text", text=FILES[f][2])],
        )
        for f in file_ids
    ]
    return VectorStoreSearchResponsePage(search_query=["q"], data=data, has_more=False)


@pytest.fixture
def vector_io(impl: Any) -> Any:
    """vs_1 holds file-b, vs_2 file-a (so the best-scored file is not the first result)."""
    pages = {"vs_1": page("file-b"), "vs_2": page("file-a")}

    async def search(vector_store_id: str, request: Any) -> Any:
        return pages[vector_store_id]

    impl.vector_io_api.openai_search_vector_store.side_effect = search
    return impl.vector_io_api


async def create(impl: Any, **fields: Any) -> tuple[Any, list[Any]]:
    fields.setdefault("model", MODEL)
    return await collect(await impl.create_openai_response(CreateResponseRequest(**fields)))


def searched_then(script: Script, answer: str) -> None:
    script.turns.extend([[ToolCall("file_search", {"query": "camelids"})], answer])


@pytest.mark.parametrize("include", [False, True], ids=["results-hidden", "results-included"])
async def test_file_search_cites_and_shows_results_only_when_included(
    impl: Any, script: Script, vector_io: Any, stream: bool, include: bool
) -> None:
    searched_then(script, "Llamas hum <|file-a|>. Alpacas spit [file-b]! Not (file-zz).")
    extra = {"include": ["file_search_call.results"]} if include else {}
    response, events = await create(impl, input="camelids?", tools=[TOOL], stream=stream, **extra)

    # The fixed tool was offered (no tool group lookup) and both stores were searched.
    assert [t["function"]["name"] for t in script.requests[0].tools] == ["file_search"]
    impl.tool_groups_api.get_tool.assert_not_called()
    searched = {c.args[0]: c.args[1] for c in vector_io.openai_search_vector_store.call_args_list}
    assert set(searched) == {"vs_1", "vs_2"}
    assert searched["vs_1"].query == "camelids" and searched["vs_1"].max_num_results == 5
    # The model was told each chunk with how to cite it.
    told = script.requests[1].messages[-1]
    assert told.role == "tool"
    assert '[2] document_id: file-a, score: 0.9, attributes: {"lang":"en"} cite as <|file-a|>\nLlamas hum.' in (
        told.content
    )
    assert "using `<|file-id|>` format" in told.content

    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed" and call.queries == ["camelids"]
    if include:
        assert [(r.file_id, r.filename, r.text, r.score) for r in call.results] == [
            ("file-b", "b.txt", "Alpacas spit.", 0.4),
            ("file-a", "a.txt", "Llamas hum.", 0.9),
        ]
    else:
        assert call.results is None
    part = message.content[0]
    assert part.text == "Llamas hum. Alpacas spit! Not (file-zz)."
    assert [(a.type, a.file_id, a.filename, a.index) for a in part.annotations] == [
        ("file_citation", "file-a", "a.txt", 10),
        ("file_citation", "file-b", "b.txt", 24),
    ]
    if stream:
        added = [e for e in events if e.type == "response.output_text.annotation.added"]
        assert [(e.annotation_index, e.annotation.file_id, e.item_id) for e in added] == [
            (0, "file-a", message.id),
            (1, "file-b", message.id),
        ]

    # The record keeps the results either way (OGX's builtin stores them), in OGX's own format.
    stored = await impl.responses_store.get_response_object(response.id)
    assert [r.file_id for r in stored.output[0].results] == ["file-b", "file-a"]
    assert stored.output[1].content[0].annotations == part.annotations


async def test_text_that_cites_nothing_is_attributed_to_the_best_file(
    impl: Any, script: Script, vector_io: Any, stream: bool
) -> None:
    searched_then(script, "Camelids are calm.")
    response, events = await create(impl, input="camelids?", tools=[TOOL], stream=stream)
    part = response.output[1].content[0]
    assert part.text == "Camelids are calm."
    assert [(a.file_id, a.index) for a in part.annotations] == [("file-a", len("Camelids are calm."))]
    if stream:
        types = [e.type for e in events]
        assert types.index("response.output_text.annotation.added") < types.index("response.output_text.done")


async def test_stored_results_are_listed_with_include_on_a_chain(impl: Any, script: Script, vector_io: Any) -> None:
    searched_then(script, "Llamas hum <|file-a|>.")
    first, _ = await create(impl, input="camelids?", tools=[TOOL])
    assert first.output[0].results is None
    script.turns.append("More?")
    second, _ = await create(impl, input="and then?", previous_response_id=first.id)

    async def listed(include: list[str] | None) -> Any:
        request = ListResponseInputItemsRequest(response_id=second.id, include=include, order="asc")
        items = (await impl.list_openai_response_input_items(request)).data
        return next(item for item in items if item.type == "file_search_call")

    assert (await listed(None)).results is None
    assert [r.file_id for r in (await listed(["file_search_call.results"])).results] == ["file-b", "file-a"]
    # The chain's history carries the cleaned answer, not the markers.
    replayed = script.requests[-1].messages[-2]
    assert replayed.role == "assistant" and [part.text for part in replayed.content] == ["Llamas hum."]


async def test_a_failing_store_leaves_the_others_results(impl: Any, script: Script) -> None:
    async def search(vector_store_id: str, request: Any) -> Any:
        if vector_store_id == "vs_1":
            raise RuntimeError("store down")
        return page("file-a")

    impl.vector_io_api.openai_search_vector_store.side_effect = search
    searched_then(script, "Hum <|file-a|>.")
    response, _ = await create(impl, input="x", tools=[TOOL], include=["file_search_call.results"])
    assert [r.file_id for r in response.output[0].results] == ["file-a"]
    assert response.output[1].content[0].annotations[0].file_id == "file-a"


async def test_tool_choice_file_search_forces_the_tool(impl: Any, script: Script, vector_io: Any) -> None:
    searched_then(script, "Hum <|file-a|>.")
    await create(impl, input="x", tools=[TOOL], tool_choice={"type": "file_search"})
    assert script.requests[0].tool_choice == {"type": "function", "function": {"name": "file_search"}}
