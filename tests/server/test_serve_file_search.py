"""Files, vector stores and `file_search` through a real ``responses-rs serve`` process with
``--embedding-model``: the official openai client (``client.files``, ``client.vector_stores``, ``responses``) ->
serve -> the scripted Chat Completions server, whose ``POST /v1/embeddings`` embeds deterministically (texts sharing
words are near each other) and whose chat turns call ``file_search`` then cite what they read. Every stream goes
through the stream validator ("full" schema)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai._models import construct_type
from openai.types.responses import Response, ResponseStreamEvent
from serve_process import Serve, serve_process
from stream_validator import validate_stream
from websockets.sync.client import connect

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.chat_server import embed

MODEL = "scripted-model"
EMBEDDING = "scripted-embedding"
KEY, OTHER = "key-one", "key-two"

LLAMAS = b"Llamas eat grass and hay. A llama chews its food slowly, like a cow, and drinks little water.\n"
QUANTUM = b"Quantum chromodynamics describes quarks and gluons, the strong interaction inside protons.\n"
BREAD = b"# Bread\n\nBake bread with flour, water, salt and yeast; knead the dough and let it rise overnight.\n"
DOCS = {"llamas.txt": LLAMAS, "quantum.txt": QUANTUM, "bread.md": BREAD}


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL, EMBEDDING]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    flags = ("--embedding-model", EMBEDDING, "--api-key", KEY, "--api-key", OTHER, "--max-file-bytes", "20000")
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve-fs"), *flags) as s:
        yield s


def _client(serve: Serve, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=serve.base_url, api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def client(serve: Serve, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    oai = _client(serve, KEY)
    yield oai
    oai.close()


def upload(client: openai.OpenAI, name: str, content: bytes) -> str:
    return client.files.create(file=(name, content), purpose="assistants").id


def knowledge(client: openai.OpenAI) -> tuple[str, dict[str, str]]:
    """A vector store with the three documents, each with attributes; its id and the file ids by name."""
    ids = {
        "llamas.txt": upload(client, "llamas.txt", LLAMAS),
        "quantum.txt": upload(client, "quantum.txt", QUANTUM),
        "bread.md": upload(client, "bread.md", BREAD),
    }
    store = client.vector_stores.create(name="kb", metadata={"team": "docs"})
    attributes = {
        "llamas.txt": {"topic": "animals", "year": 2021, "public": True},
        "quantum.txt": {"topic": "physics", "year": 2024, "public": False},
        "bread.md": {"topic": "cooking", "year": 2023, "public": True},
    }
    for name, file_id in ids.items():
        added = client.vector_stores.files.create_and_poll(
            vector_store_id=store.id, file_id=file_id, attributes=attributes[name]
        )
        assert added.status == "completed" and added.last_error is None, added
    return store.id, ids


def settled(client: openai.OpenAI, store_id: str) -> Any:
    """The vector store once none of its files is in progress (the client has no poll helper for a store)."""
    deadline = time.monotonic() + 20
    while (store := client.vector_stores.retrieve(store_id)).file_counts.in_progress:
        assert time.monotonic() < deadline, store
        time.sleep(0.05)
    return store


def api_error(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    body = caught.value.body
    return caught.value.status_code, body if isinstance(body, dict) else {}


# ------------------------------------------------------------------------------------------------
# Files


def test_files_upload_list_retrieve_content_delete(client: openai.OpenAI) -> None:
    created = client.files.create(file=("notes.md", b"# Notes\nhello \xc3\xa9\n"), purpose="user_data")
    assert re.fullmatch(r"file-[0-9A-Za-z]{22}", created.id)
    assert (created.filename, created.bytes, created.purpose, created.object) == ("notes.md", 17, "user_data", "file")
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).content == b"# Notes\nhello \xc3\xa9\n"
    listed = [f.id for f in client.files.list()]
    assert created.id in listed
    assert created.id not in [f.id for f in client.files.list(purpose="assistants")]
    deleted = client.files.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    status, body = api_error(lambda: client.files.retrieve(created.id))
    assert status == 404 and body["param"] == "file_id"


def test_files_bad_requests_name_the_field(client: openai.OpenAI) -> None:
    status, body = api_error(lambda: client.files.create(file=("a.txt", b"x"), purpose="nonsense"))  # type: ignore[arg-type]
    assert status == 400 and body["param"] == "purpose"
    status, body = api_error(lambda: client.files.create(file=("big.txt", b"a" * 20001), purpose="assistants"))
    assert status == 413 and body["param"] == "file" and "20000" in body["message"]
    assert client.files.create(file=("fits.txt", b"a" * 20000), purpose="assistants").bytes == 20000
    status, body = api_error(lambda: client.files.create(file=("huge.txt", b"a" * 200_000), purpose="assistants"))
    assert status == 413 and body["param"] == "file" and "--max-file-bytes" in body["message"]


# ------------------------------------------------------------------------------------------------
# Vector stores and search


def test_vector_store_search_relevance_filters_and_threshold(client: openai.OpenAI) -> None:
    store_id, ids = knowledge(client)
    store = client.vector_stores.retrieve(store_id)
    assert store.name == "kb" and store.metadata == {"team": "docs"} and store.status == "completed"
    assert store.file_counts.completed == 3 and store.file_counts.total == 3 and store.usage_bytes > 0
    assert store_id in [s.id for s in client.vector_stores.list()]
    files = client.vector_stores.files.list(vector_store_id=store_id)
    assert [f.id for f in files] == list(ids.values())[::-1]  # newest first, as OpenAI lists
    oldest = client.vector_stores.files.list(vector_store_id=store_id, order="asc", limit=2)
    assert [f.id for f in oldest.data] == list(ids.values())[:2] and oldest.has_more
    after = client.vector_stores.files.list(vector_store_id=store_id, order="asc", after=oldest.data[-1].id)
    assert [f.id for f in after.data] == [ids["bread.md"]] and not after.has_more
    assert [f.id for f in client.files.list(order="asc")][-3:] == list(ids.values())
    one = client.vector_stores.files.retrieve(file_id=ids["bread.md"], vector_store_id=store_id)
    assert one.attributes == {"topic": "cooking", "year": 2023, "public": True}
    assert one.chunking_strategy.type == "static"  # auto is OpenAI's static defaults
    assert one.chunking_strategy.static.max_chunk_size_tokens == 800  # type: ignore[union-attr]

    page = client.vector_stores.search(vector_store_id=store_id, query="what do llamas eat")
    results = list(page)
    assert results[0].file_id == ids["llamas.txt"] and results[0].filename == "llamas.txt"
    assert results[0].content[0].text == LLAMAS.decode().strip()
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and len(results) >= 2

    def found(**kwargs: Any) -> list[str]:
        return [r.filename for r in client.vector_stores.search(vector_store_id=store_id, **kwargs)]

    # Filters (comparison, compound, numbers, booleans, `in`): what comes back is exactly the allowed files whose
    # cosine similarity to the query (computed here from the scripted embedder's vectors) is at least 0, best first.
    def expected(query: str, allowed: set[str]) -> list[str]:
        q = embed(query)
        scored = [(sum(a * b for a, b in zip(q, embed(DOCS[n].decode()), strict=True)), n) for n in allowed]
        return [n for s, n in sorted(scored, key=lambda x: -x[0]) if s >= 0]

    query = "llamas quarks bread water"
    assert expected(query, set(DOCS)) == found(query=query) and len(found(query=query)) == 3
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"type": "eq", "key": "topic", "value": "cooking"}, {"bread.md"}),
        ({"type": "ne", "key": "topic", "value": "cooking"}, {"llamas.txt", "quantum.txt"}),
        ({"type": "eq", "key": "public", "value": True}, {"llamas.txt", "bread.md"}),
        ({"type": "gte", "key": "year", "value": 2023}, {"quantum.txt", "bread.md"}),
        ({"type": "in", "key": "topic", "value": ["animals", "physics"]}, {"llamas.txt", "quantum.txt"}),
        ({"type": "nin", "key": "topic", "value": ["animals", "physics"]}, {"bread.md"}),
        ({"type": "eq", "key": "missing", "value": 1}, set()),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "topic", "value": "cooking"},
                    {"type": "gt", "key": "year", "value": 2023},
                ],
            },
            {"bread.md", "quantum.txt"},
        ),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "public", "value": True},
                    {"type": "lt", "key": "year", "value": 2023},
                ],
            },
            {"llamas.txt"},
        ),
    ]
    for flt, allowed in cases:
        got = found(query=query, filters=flt)
        assert got == expected(query, allowed) and set(got) == allowed, (flt, got)
    # max_num_results, and a score threshold above all but the best match.
    assert len(found(query="llamas water bread", max_num_results=1)) == 1
    best = results[0].score
    strict = found(query="what do llamas eat", ranking_options={"score_threshold": best - 1e-4})
    assert strict == ["llamas.txt"]
    assert found(query="what do llamas eat", ranking_options={"score_threshold": min(1.0, best + 0.01)}) == []


def test_static_chunking_cuts_a_file_into_overlapping_chunks(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    words = " ".join(f"word{i}" for i in range(600))  # 4,289 characters: about 1,072 tokens at 4 characters each
    file_id = upload(client, "long.txt", words.encode())
    strategy = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}
    store = client.vector_stores.create(name="long", file_ids=[file_id], chunking_strategy=strategy)  # type: ignore[arg-type]
    assert settled(client, store.id).file_counts.completed == 1
    chunks = [text for batch in chat_server.embedding_inputs for text in batch]
    assert len(chunks) > 10 and all(len(c) <= 400 for c in chunks)
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)
    # Each chunk starts within the previous one (80 characters of overlap), no word is cut.
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.split()[0] in before.split()
    assert " ".join(chunks).split()[-1] == "word599"
    # The search scores chunks, not the file: the best hit is the chunk nearest the query.
    q = embed("word321 word322")
    best = max(chunks, key=lambda c: sum(a * b for a, b in zip(q, embed(c), strict=True)))
    hits = list(client.vector_stores.search(vector_store_id=store.id, query="word321 word322", max_num_results=3))
    assert hits[0].content[0].text == best and len(hits) == 3 and all(h.file_id == file_id for h in hits)


def test_file_batches_and_the_clients_polling_helpers(client: openai.OpenAI, serve: Serve) -> None:
    store = client.vector_stores.create(name="batched")
    # files.upload_and_poll: upload, add, poll (fast: the server answers with openai-poll-after-ms).
    single = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=("llamas.txt", LLAMAS))
    assert single.status == "completed"
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id, files=[("quantum.txt", QUANTUM), ("image.png", b"\x89PNG\x00\xff")]
    )
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.failed, batch.file_counts.total) == (1, 1, 2)
    bread = upload(client, "bread.md", BREAD)
    per_file = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, files=[{"file_id": bread, "attributes": {"topic": "cooking"}}]
    )
    assert client.vector_stores.file_batches.retrieve(batch_id=per_file.id, vector_store_id=store.id) == per_file
    listed = client.vector_stores.file_batches.list_files(batch_id=per_file.id, vector_store_id=store.id)
    assert [(f.id, f.attributes) for f in listed] == [(bread, {"topic": "cooking"})]
    failed = client.vector_stores.file_batches.list_files(batch_id=batch.id, vector_store_id=store.id, filter="failed")
    assert [f.last_error.code for f in failed if f.last_error] == ["unsupported_file"]
    assert client.vector_stores.file_batches.cancel(batch_id=batch.id, vector_store_id=store.id).status == "completed"
    assert client.vector_stores.retrieve(store.id).file_counts.total == 4
    hits = client.vector_stores.search(
        vector_store_id=store.id, query="bread", filters={"type": "eq", "key": "topic", "value": "cooking"}
    )
    assert [h.file_id for h in hits] == [bread]
    status, body = api_error(
        lambda: client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[bread], files=[])
    )
    assert status == 400 and body["param"] == "files"
    with _client(serve, OTHER) as other:
        status, _ = api_error(
            lambda: other.vector_stores.file_batches.retrieve(batch_id=batch.id, vector_store_id=store.id)
        )
        assert status == 404
    status, _ = api_error(
        lambda: client.vector_stores.file_batches.retrieve(batch_id="vsfb_nope", vector_store_id=store.id)
    )
    assert status == 404


def test_a_file_that_is_not_text_fails_with_last_error(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="bin")
    binary = upload(client, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    added = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=binary)
    assert added.status == "failed" and added.last_error is not None
    assert added.last_error.code == "unsupported_file"
    assert client.vector_stores.retrieve(store.id).file_counts.failed == 1
    assert list(client.vector_stores.search(vector_store_id=store.id, query="png")) == []


def test_a_failing_embeddings_call_fails_the_file_and_writes_no_chunk(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    store_id, ids = knowledge(client)
    extra = upload(client, "more-llamas.txt", b"Llamas also eat leaves and shrubs.")
    chat_server.embedding_errors.append({"status": 500, "message": "embedder is down"})
    added = client.vector_stores.files.create_and_poll(vector_store_id=store_id, file_id=extra)
    assert added.status == "failed" and added.last_error is not None
    assert added.last_error.code == "server_error" and "embedder is down" in added.last_error.message
    counts = client.vector_stores.retrieve(store_id).file_counts
    assert (counts.completed, counts.failed) == (3, 1)
    # Nothing of it is searchable; the others still are.
    assert extra not in [
        r.file_id for r in client.vector_stores.search(vector_store_id=store_id, query="llamas leaves")
    ]
    # Adding it again (the embedder is back) completes it, replacing the failed row.
    assert client.vector_stores.files.create_and_poll(vector_store_id=store_id, file_id=extra).status == "completed"
    assert client.vector_stores.retrieve(store_id).file_counts.failed == 0
    again = [r.file_id for r in client.vector_stores.search(vector_store_id=store_id, query="llamas leaves")]
    assert again[0] == extra  # the search after the add sees it (nothing stale kept)
    # A search whose query cannot be embedded is a 502 naming the upstream's error.
    chat_server.embedding_errors.append({"status": 503, "message": "embedder is busy"})
    status, body = api_error(lambda: client.vector_stores.search(vector_store_id=store_id, query="llamas"))
    assert status == 502 and body["code"] == "upstream_error" and "embedder is busy" in body["message"]


def test_deleting_files_and_stores(client: openai.OpenAI) -> None:
    store_id, ids = knowledge(client)
    client.vector_stores.files.delete(file_id=ids["llamas.txt"], vector_store_id=store_id)
    assert client.files.retrieve(ids["llamas.txt"]).id == ids["llamas.txt"]  # the file itself stays
    names = [r.filename for r in client.vector_stores.search(vector_store_id=store_id, query="llamas eat grass")]
    assert "llamas.txt" not in names
    client.files.delete(ids["bread.md"])  # deleting a file removes it from its stores
    assert [f.id for f in client.vector_stores.files.list(vector_store_id=store_id)] == [ids["quantum.txt"]]
    assert client.vector_stores.delete(store_id).deleted is True
    status, _ = api_error(lambda: client.vector_stores.retrieve(store_id))
    assert status == 404


def test_bad_vector_store_requests_name_the_field(client: openai.OpenAI) -> None:
    store_id, ids = knowledge(client)
    bad_static = {"type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}}
    cases: list[tuple[Any, str]] = [
        (
            lambda: client.vector_stores.create(chunking_strategy=bad_static),
            "chunking_strategy.static.max_chunk_size_tokens",
        ),  # type: ignore[arg-type]
        (lambda: client.vector_stores.create(file_ids=["file-nope"]), "file_ids[0]"),
        (lambda: client.vector_stores.files.create(vector_store_id=store_id, file_id="file-nope"), "file_id"),
        (
            lambda: client.vector_stores.files.create(
                vector_store_id=store_id,
                file_id=ids["bread.md"],
                attributes={"a": {"nested": 1}},  # type: ignore[dict-item]
            ),
            "attributes.a",
        ),
        (
            lambda: client.vector_stores.search(
                vector_store_id=store_id, query="x", filters={"type": "like", "key": "a", "value": 1}
            ),  # type: ignore[arg-type]
            "filters.type",
        ),
        (
            lambda: client.vector_stores.search(
                vector_store_id=store_id,
                query="x",
                filters={"type": "and", "filters": [{"type": "eq", "key": 3, "value": 1}]},  # type: ignore[list-item]
            ),
            "filters.filters[0].key",
        ),
        (
            lambda: client.vector_stores.search(vector_store_id=store_id, query="x", max_num_results=0),
            "max_num_results",
        ),
        (
            lambda: client.vector_stores.search(
                vector_store_id=store_id, query="x", ranking_options={"score_threshold": 2}
            ),
            "ranking_options.score_threshold",
        ),
        (lambda: client.vector_stores.search(vector_store_id=store_id, query=""), "query"),
    ]
    for call, param in cases:
        status, body = api_error(call)
        assert status in (400, 404) and body.get("param") == param, (param, body)


# ------------------------------------------------------------------------------------------------
# file_search in responses


def cite_what_was_found(request: dict[str, Any]) -> dict[str, Any]:
    """The model's second round: it read the file_search results and cites the first file found."""
    tool = [m for m in request["messages"] if m["role"] == "tool"][-1]
    cited = re.search(r"cite as <\|(file-[0-9A-Za-z]+)\|>", tool["content"])
    assert cited is not None, tool["content"]
    return {"text": f"Llamas eat grass <|{cited.group(1)}|>. Nothing else.", "chunk_size": 5}


def file_search_turns(chat_server: ScriptedChatServer, query: str = "what do llamas eat") -> None:
    chat_server.script([{"tool_calls": [{"name": "file_search", "arguments": {"query": query}}]}, cite_what_was_found])


def test_file_search_streamed_with_a_file_citation(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    store_id, ids = knowledge(client)
    file_search_turns(chat_server)
    tools = [{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}]
    events = list(client.responses.create(model=MODEL, input="What do llamas eat?", tools=tools, stream=True))  # type: ignore[arg-type]
    final = validate_stream(events, response_cls=Response, schema_host="full")
    types = [e.type for e in events]
    assert types.index("response.file_search_call.searching") < types.index("response.file_search_call.completed")
    assert "response.output_text.annotation.added" in types
    call, message = final.output[0], final.output[-1]
    assert call.type == "file_search_call" and call.status == "completed" and call.queries == ["what do llamas eat"]
    assert call.results is None  # not asked for with include
    assert message.type == "message"
    part = message.content[0]
    assert part.text == "Llamas eat grass. Nothing else."
    assert [(a.type, a.file_id, a.filename, a.index) for a in part.annotations] == [  # type: ignore[union-attr]
        ("file_citation", ids["llamas.txt"], "llamas.txt", len("Llamas eat grass"))
    ]
    # The model was offered file_search and read at most max_num_results chunks, the best first.
    first = chat_server.requests[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["file_search"]
    tool_message = [m for m in chat_server.requests[1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "found 2 chunks" in tool_message and tool_message.index("llama") < tool_message.index("[2]")
    # Stored as answered (the record keeps the results the answer left out).
    stored = client.responses.retrieve(final.id)
    assert stored.output[-1].content[0].annotations == part.annotations  # type: ignore[union-attr]
    kept = stored.output[0].results  # type: ignore[union-attr]
    assert kept is not None and [r.file_id for r in kept][:1] == [ids["llamas.txt"]] and len(kept) == 2


def test_file_search_results_with_include_not_streamed_filters_and_ranking(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    store_id, ids = knowledge(client)
    file_search_turns(chat_server, "llamas bread water")
    tools = [
        {
            "type": "file_search",
            "vector_store_ids": [store_id],
            "filters": {"type": "eq", "key": "topic", "value": "animals"},
            "ranking_options": {"score_threshold": 0.01},
        }
    ]
    response = client.responses.create(
        model=MODEL,
        input="Food?",
        tools=tools,
        include=["file_search_call.results"],  # type: ignore[arg-type]
    )
    call = response.output[0]
    assert call.type == "file_search_call" and call.results is not None
    assert [(r.file_id, r.filename) for r in call.results] == [(ids["llamas.txt"], "llamas.txt")]
    assert call.results[0].attributes == {"topic": "animals", "year": 2021, "public": True}
    assert call.results[0].text == LLAMAS.decode().strip() and 0 < (call.results[0].score or 0) <= 1
    echoed = response.tools[0]
    assert echoed.type == "file_search" and echoed.vector_store_ids == [store_id]


def test_file_search_in_background_and_over_the_websocket(
    client: openai.OpenAI, chat_server: ScriptedChatServer, serve: Serve
) -> None:
    store_id, ids = knowledge(client)
    tools = [{"type": "file_search", "vector_store_ids": [store_id]}]
    file_search_turns(chat_server)
    queued = client.responses.create(model=MODEL, input="Llamas?", tools=tools, background=True)  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while (done := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert done.status == "completed" and done.output[0].type == "file_search_call"
    assert done.output[-1].content[0].annotations[0].file_id == ids["llamas.txt"]  # type: ignore[union-attr]

    file_search_turns(chat_server)
    url = serve.base_url.replace("http://", "ws://") + "/responses"
    with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "Llamas?", "tools": tools}))
        frames = []
        while not frames or frames[-1]["type"] not in ("response.completed", "response.failed", "error"):
            frames.append(json.loads(ws.recv(timeout=30)))
    typed = [construct_type(value=f, type_=ResponseStreamEvent) for f in frames]
    final = validate_stream(typed, response_cls=Response, schema_host="full")
    assert final.output[-1].content[0].annotations[0].file_id == ids["llamas.txt"]  # type: ignore[union-attr]


def test_a_failing_query_embedding_fails_only_the_call(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    store_id, _ = knowledge(client)
    chat_server.script(
        [{"tool_calls": [{"name": "file_search", "arguments": {"query": "llamas"}}]}, {"text": "I could not search."}]
    )
    chat_server.embedding_errors.append({"status": 500, "message": "embedder is down"})
    tools = [{"type": "file_search", "vector_store_ids": [store_id]}]
    events = list(client.responses.create(model=MODEL, input="Llamas?", tools=tools, stream=True))  # type: ignore[arg-type]
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output[0].status == "failed"
    assert final.output_text == "I could not search."
    told = [m for m in chat_server.requests[1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "embedder is down" in told


def test_api_keys_isolate_files_stores_and_file_search(
    client: openai.OpenAI, serve: Serve, chat_server: ScriptedChatServer
) -> None:
    store_id, ids = knowledge(client)
    with _client(serve, OTHER) as other:
        assert ids["llamas.txt"] not in [f.id for f in other.files.list()]
        assert store_id not in [s.id for s in other.vector_stores.list()]
        assert api_error(lambda: other.files.retrieve(ids["llamas.txt"]))[0] == 404
        assert api_error(lambda: other.files.content(ids["llamas.txt"]))[0] == 404
        assert api_error(lambda: other.vector_stores.retrieve(store_id))[0] == 404
        assert api_error(lambda: other.vector_stores.search(vector_store_id=store_id, query="llamas"))[0] == 404
        own = other.vector_stores.create(name="mine")
        status, body = api_error(
            lambda: other.vector_stores.files.create(vector_store_id=own.id, file_id=ids["llamas.txt"])
        )
        assert status == 404 and body["param"] == "file_id"
        tools = [{"type": "file_search", "vector_store_ids": [own.id, store_id]}]
        for stream in (False, True):
            status, body = api_error(
                lambda stream=stream: other.responses.create(model=MODEL, input="x", tools=tools, stream=stream)  # type: ignore[arg-type,call-overload]
            )
            assert status == 404 and body["param"] == "tools[0].vector_store_ids[1]", body
    assert chat_server.requests == []  # refused before the model was called


def test_bad_file_search_tools_are_refused_naming_the_field(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    store_id, _ = knowledge(client)
    cases = [
        ({"type": "file_search"}, "tools[0].vector_store_ids"),
        ({"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 99}, "tools[0].max_num_results"),
        ({"type": "file_search", "vector_store_ids": [store_id], "filters": {"type": "eq"}}, "tools[0].filters.key"),
        (
            {"type": "file_search", "vector_store_ids": [store_id], "ranking_options": {"score_threshold": -1}},
            "tools[0].ranking_options.score_threshold",
        ),
    ]
    for tool, param in cases:
        status, body = api_error(lambda tool=tool: client.responses.create(model=MODEL, input="x", tools=[tool]))  # type: ignore[list-item]
        assert status == 400 and body["param"] == param, (param, body)
    assert chat_server.requests == []


def test_without_an_embedding_model_the_calls_that_need_one_are_refused(
    chat_server: ScriptedChatServer, tmp_path: Any
) -> None:
    chat_server.reset()
    with serve_process(chat_server.base_url, tmp_path) as s, _client(s, "none") as plain:
        file_id = upload(plain, "llamas.txt", LLAMAS)  # files need no embeddings
        store = plain.vector_stores.create(name="empty")  # nor does an empty store
        expected = [
            (lambda: plain.vector_stores.create(file_ids=[file_id]), "file_ids"),
            (lambda: plain.vector_stores.files.create(vector_store_id=store.id, file_id=file_id), "file_id"),
            (lambda: plain.vector_stores.search(vector_store_id=store.id, query="llamas"), "query"),
            (
                lambda: plain.responses.create(
                    model=MODEL, input="x", tools=[{"type": "file_search", "vector_store_ids": [store.id]}]
                ),
                "tools[0].type",
            ),
        ]
        for call, param in expected:
            status, body = api_error(call)
            assert status == 400 and body["param"] == param and "--embedding-model" in body["message"], body
            assert ("file_search" in body["message"]) == (param == "tools[0].type")
        raw = httpx.get(f"{s.base_url}/files/{file_id}/content")
        assert raw.status_code == 200 and raw.content == LLAMAS
    assert chat_server.requests == [] and chat_server.embedding_inputs == []


# ------------------------------------------------------------------------------------------------
# Ingestion runs after the answer


def chunk_rows(serve: Serve, file_id: str) -> int:
    with sqlite3.connect(f"file:{serve.db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM vector_store_chunks WHERE file_id = ?", (file_id,)).fetchone()[0])


def test_a_file_is_in_progress_until_embedded(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    store = client.vector_stores.create(name="slow")
    file_id = upload(client, "llamas.txt", LLAMAS)
    chat_server.embedding_delay = 0.6
    added = client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    assert added.status == "in_progress" and added.usage_bytes == 0
    now = client.vector_stores.retrieve(store.id)
    assert now.status == "in_progress" and now.file_counts.in_progress == 1
    # A search meanwhile sees only completed files (its own query embedding waits too).
    assert list(client.vector_stores.search(vector_store_id=store.id, query="llamas")) == []
    chat_server.embedding_delay = 0.0
    done = client.vector_stores.files.poll(file_id, vector_store_id=store.id)
    assert done.status == "completed" and done.usage_bytes > 0
    assert settled(client, store.id).status == "completed"
    assert [h.file_id for h in client.vector_stores.search(vector_store_id=store.id, query="llamas")] == [file_id]


def test_a_file_removed_or_added_again_while_in_progress(
    client: openai.OpenAI, chat_server: ScriptedChatServer, serve: Serve
) -> None:
    store = client.vector_stores.create(name="racing")
    removed, twice = upload(client, "a.txt", LLAMAS), upload(client, "b.txt", BREAD)
    chat_server.embedding_delay = 0.4
    client.vector_stores.files.create(vector_store_id=store.id, file_id=removed)
    client.vector_stores.files.delete(file_id=removed, vector_store_id=store.id)
    client.vector_stores.files.create(vector_store_id=store.id, file_id=twice)
    again = client.vector_stores.files.create(vector_store_id=store.id, file_id=twice, attributes={"n": 2})
    assert again.status == "in_progress"
    deadline = time.monotonic() + 20
    while len(chat_server.embedding_inputs) < 3:  # the three runs have had their embeddings
        assert time.monotonic() < deadline
        time.sleep(0.05)
    chat_server.embedding_delay = 0.0
    assert client.vector_stores.files.poll(twice, vector_store_id=store.id).status == "completed"
    time.sleep(0.3)  # and the runs whose rows were no longer theirs have ended (writing nothing)
    files = client.vector_stores.files.list(vector_store_id=store.id)
    assert [(f.id, f.status, f.attributes) for f in files] == [(twice, "completed", {"n": 2})]
    # The removed file's run wrote nothing; the file added twice has one set of chunks (the second run's).
    assert chunk_rows(serve, removed) == 0 and chunk_rows(serve, twice) == 1
    assert len(chat_server.embedding_inputs) == 3


def test_cancelling_a_batch_stops_its_files(
    client: openai.OpenAI, chat_server: ScriptedChatServer, serve: Serve
) -> None:
    store = client.vector_stores.create(name="cancelled")
    ids = [upload(client, "a.txt", LLAMAS), upload(client, "b.txt", QUANTUM)]
    chat_server.embedding_delay = 0.4
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert batch.status == "in_progress" and batch.file_counts.in_progress == 2
    cancelled = client.vector_stores.file_batches.cancel(batch_id=batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 2
    time.sleep(0.8)
    chat_server.embedding_delay = 0.0
    assert client.vector_stores.file_batches.retrieve(batch_id=batch.id, vector_store_id=store.id) == cancelled
    assert [chunk_rows(serve, i) for i in ids] == [0, 0]


def test_a_server_stopped_while_adding_a_file_marks_it_failed(chat_server: ScriptedChatServer, tmp_path: Any) -> None:
    chat_server.reset()
    flags = ("--embedding-model", EMBEDDING)
    with serve_process(chat_server.base_url, tmp_path, *flags) as s, _client(s, "none") as c:
        store = c.vector_stores.create(name="interrupted")
        file_id = upload(c, "llamas.txt", LLAMAS)
        chat_server.embedding_delay = 3.0
        assert c.vector_stores.files.create(vector_store_id=store.id, file_id=file_id).status == "in_progress"
    chat_server.embedding_delay = 0.0
    with serve_process(chat_server.base_url, tmp_path, *flags) as s, _client(s, "none") as c:
        stopped = c.vector_stores.files.retrieve(file_id=file_id, vector_store_id=store.id)
        assert stopped.status == "failed" and stopped.last_error is not None
        assert stopped.last_error.message == "the server stopped before the file was processed"
        assert c.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=file_id).status == "completed"
