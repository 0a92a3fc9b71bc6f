"""End to end file_search: the official openai client -> a real ``ogx run`` (``run-config --file-search``:
sqlite-vec, local files, the scripted server's deterministic ``/v1/embeddings`` as the vector stores' default
embedding model) whose responses provider is responses-rs -> the scripted Chat Completions server. A file is
uploaded and indexed in a vector store; the scripted model calls ``file_search``, reads the results it is
given and cites the file with a ``<|file-id|>`` marker, which comes back as a ``file_citation`` annotation.
Every stream goes through the stream validator (host "full")."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from ogx_server import ogx_server
from openai.types.responses import Response
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.chat_server import EMBEDDING_MODEL

MODEL = "e2e-model"
DOCUMENT = (
    b"Llamas eat grass and hay. A llama hums when it is curious or worried.\n"
    b"Alpacas are smaller than llamas and are kept for their fleece.\n"
)
CITE = re.compile(r"cite as <\|(file-[A-Za-z0-9_-]+)\|>")


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ogx(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert hasattr(sqlite3.Connection, "enable_load_extension"), (
        "this interpreter's sqlite3 cannot load extensions, which sqlite-vec needs: remake the venv with "
        "scripts/venv.sh ogx-1.5.0 (scripts/python313.sh builds CPython with --enable-loadable-sqlite-extensions)"
    )
    env = {"OPENAI_EMBEDDING_MODEL": EMBEDDING_MODEL, "OPENAI_EMBEDDING_DIMENSION": "64"}
    state = tmp_path_factory.mktemp("ogx-file-search")
    with ogx_server(
        state, base_url=chat_server.base_url, model=MODEL, run_config_args=("--file-search",), env=env
    ) as base:
        yield base


@pytest.fixture
def client(ogx: str, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    oai = openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=60)
    yield oai
    oai.close()


@pytest.fixture(scope="module")
def indexed(ogx: str) -> tuple[str, str]:
    """(vector store id, file id): the document uploaded and indexed (sqlite-vec, scripted embeddings)."""
    with openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=60) as oai:
        uploaded = oai.files.create(file=("llamas.txt", DOCUMENT, "text/plain"), purpose="assistants")
        store = oai.vector_stores.create(name="camelids", file_ids=[uploaded.id])
        deadline = time.monotonic() + 60
        while (status := oai.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id).status) not in (
            "completed",
            "failed",
        ):
            assert time.monotonic() < deadline, f"indexing still {status}"
            time.sleep(0.2)
        assert status == "completed"
        return store.id, uploaded.id


def cite_what_you_were_given(body: dict[str, Any]) -> dict[str, Any]:
    """The scripted model's second turn: it reads the tool message and cites the file it names."""
    told = body["messages"][-1]
    assert told["role"] == "tool"
    content = told["content"] if isinstance(told["content"], str) else "".join(p["text"] for p in told["content"])
    file_id = CITE.search(content).group(1)
    return {"text": f"Llamas eat grass <|{file_id}|>. They hum when curious [{file_id}]!", "chunk_size": 3}


def script_search(chat_server: ScriptedChatServer) -> None:
    search = {"tool_calls": [{"name": "file_search", "arguments": {"query": "what do llamas eat"}}]}
    chat_server.script([search, cite_what_you_were_given])


ANSWER = "Llamas eat grass. They hum when curious!"


def check_answer(response: Any, file_id: str, *, include: bool) -> None:
    assert response.status == "completed"
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed"
    assert call.queries == ["what do llamas eat"]
    if include:
        assert call.results and all(r.file_id == file_id for r in call.results)
        assert any("Llamas eat grass" in r.text for r in call.results)
        assert all(r.filename == "llamas.txt" and r.score is not None for r in call.results)
    else:
        assert call.results is None
    part = message.content[0]
    assert part.text == ANSWER
    assert [(a.type, a.file_id, a.filename, a.index) for a in part.annotations] == [
        ("file_citation", file_id, "llamas.txt", len("Llamas eat grass")),
        ("file_citation", file_id, "llamas.txt", len(ANSWER) - 1),
    ]


def test_file_search_with_citations_not_streamed(client: openai.OpenAI, chat_server, indexed) -> None:
    store_id, file_id = indexed
    script_search(chat_server)
    tools = [{"type": "file_search", "vector_store_ids": [store_id]}]
    response = client.responses.create(
        model=MODEL, input="What do llamas eat?", tools=tools, include=["file_search_call.results"]
    )
    check_answer(response, file_id, include=True)
    # The model was offered OGX's file_search tool and given the chunk with its citation line.
    first, second = chat_server.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["file_search"]
    assert f"cite as <|{file_id}|>" in str(second["messages"][-1]["content"])
    assert "Llamas eat grass" in str(second["messages"][-1]["content"])


def test_file_search_with_citations_streamed_results_only_with_include(
    client: openai.OpenAI, chat_server, indexed, ogx: str
) -> None:
    store_id, file_id = indexed
    tools = [{"type": "file_search", "vector_store_ids": [store_id]}]
    for include in (False, True):
        chat_server.reset()
        script_search(chat_server)
        extra = {"include": ["file_search_call.results"]} if include else {}
        events = list(
            client.responses.create(model=MODEL, input="What do llamas eat?", tools=tools, stream=True, **extra)
        )
        response = validate_stream(events, response_cls=Response, schema_host="full")
        check_answer(response, file_id, include=include)
        added = [e for e in events if e.type == "response.output_text.annotation.added"]
        assert [(e.annotation_index, e.output_index, e.item_id) for e in added] == [
            (0, 1, response.output[1].id),
            (1, 1, response.output[1].id),
        ]
        # The deltas carry no marker: they are the final text.
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == ANSWER
        # The stored response keeps the results (as OGX's builtin stores them).
        stored = client.responses.retrieve(response.id)
        assert stored.output[0].results and stored.output[0].results[0].file_id == file_id
        assert stored.output[1].content[0].annotations == response.output[1].content[0].annotations

    # Listed in a chain's input items: results only with include.
    chat_server.script({"text": "Anything else?"})
    follow = client.responses.create(model=MODEL, input="Thanks", previous_response_id=response.id)
    plain = client.responses.input_items.list(follow.id)
    [listed_plain] = [i for i in plain.data if i.type == "file_search_call"]
    assert listed_plain.results is None
    # openai-python sends a list query parameter as `include[]=...`, which OGX's route does not read (it takes
    # `include=...`): asked directly.
    full = httpx.get(f"{ogx}/responses/{follow.id}/input_items", params={"include": "file_search_call.results"})
    [listed_full] = [i for i in full.json()["data"] if i["type"] == "file_search_call"]
    assert listed_full["results"][0]["file_id"] == file_id
