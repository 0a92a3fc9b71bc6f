"""``context_management`` together with ``conversation`` in a real ``responses-rs serve`` process with the official
openai client: a conversation's history compacted before answering (the model gets the window: the user messages
and the summary, not the old turns), the conversation keeping every item (the turn's input, the ``compaction``
item, the output), the next turn starting from the window, a compaction item put there by the client, compacting
twice, a failing summarization, and the same on PostgreSQL (two servers on one database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import Response
from serve_process import serve_fixtures, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
SUMMARY = "The user asked for a long story about a lighthouse; it was told."
STORY = "story " * 200  # 1,200 characters: about 300 tokens by the server's estimate
# Past the story's turn, under the window (its user messages, the summary, the answer and a short question).
MANAGE = [{"type": "compaction", "compact_threshold": 200}]

chat_server, serve, client = serve_fixtures(MODEL, state="serve-compact-conv")


def contents(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        c = m.get("content")
        out.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c or []))
    return out


def item_texts(items: list[Any]) -> list[tuple[str, str]]:
    """(type or role, text) of each conversation item."""
    out = []
    for item in items:
        if item.type == "compaction":
            out.append(("compaction", item.encrypted_content))
        else:
            out.append((item.role, "".join(part.text for part in item.content)))
    return out


def listed(client: openai.OpenAI, conversation_id: str) -> list[Any]:
    return client.conversations.items.list(conversation_id, order="asc", limit=100).data


def a_long_turn(client: openai.OpenAI, chat_server: ScriptedChatServer) -> str:
    """A conversation whose first turn (not compacted) holds a long answer; its id."""
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Tell me a long story."}]
    )
    chat_server.script([{"text": STORY}])
    first = client.responses.create(model=MODEL, input="About a lighthouse, please.", conversation=conversation.id)
    assert first.output_text == STORY
    return conversation.id


def test_under_the_threshold_the_conversation_is_not_compacted(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "I am Ada."}])
    chat_server.script([{"text": "Hello Ada."}])
    answer = client.responses.create(
        model=MODEL,
        input="Who am I?",
        conversation=conversation.id,
        context_management=[{"type": "compaction", "compact_threshold": 100_000}],
    )
    assert answer.output_text == "Hello Ada."
    # One call, the answer's (streamed): no summarization; the model sees the conversation, then the input.
    assert len(chat_server.requests) == 1 and chat_server.requests[0]["stream"] is True
    assert contents(chat_server.requests[0]["messages"]) == ["I am Ada.", "Who am I?"]
    assert [t for t, _ in item_texts(listed(client, conversation.id))] == ["user", "user", "assistant"]


def test_over_the_threshold_the_conversation_is_compacted_and_keeps_every_item(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    conversation = a_long_turn(client, chat_server)
    before = [item.id for item in listed(client, conversation)]
    chat_server.script([{"text": SUMMARY}, {"text": "Answer."}])
    with client.responses.create(
        model=MODEL, input="Next question?", conversation=conversation, context_management=MANAGE, stream=True
    ) as stream:
        events = list(stream)
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output_text == "Answer."
    summarize, answer = chat_server.requests[1], chat_server.requests[2]
    # The summarization call (not streamed) gets the whole history: the conversation, then the input.
    assert summarize["stream"] is False
    sent = contents(summarize["messages"])
    assert sent[:4] == ["Tell me a long story.", "About a lighthouse, please.", STORY, "Next question?"]
    assert "Summarize" in sent[4]
    # The model answers from the window: the user messages, then the summary; never the old answer.
    sent = contents(answer["messages"])
    assert sent[:3] == ["Tell me a long story.", "About a lighthouse, please.", "Next question?"]
    assert SUMMARY in sent[3] and len(sent) == 4
    assert [m["role"] for m in answer["messages"]] == ["user", "user", "user", "assistant"]
    assert STORY not in sent

    # The conversation keeps every item: the old ones, then this turn's input, the compaction item, the output.
    items = listed(client, conversation)
    assert [item.id for item in items[:3]] == before
    assert item_texts(items)[3] == ("user", "Next question?")
    assert items[4].type == "compaction" and items[4].id.startswith("cmp_") and SUMMARY in items[4].encrypted_content
    assert item_texts(items)[5] == ("assistant", "Answer.")
    assert len(items) == 6
    # Each one retrievable by its id, the compaction item too.
    assert client.conversations.items.retrieve(items[4].id, conversation_id=conversation).type == "compaction"

    # The next turn starts from the window and its answer: no summarization (it is under the threshold again).
    chat_server.script([{"text": "Later."}])
    later = client.responses.create(model=MODEL, input="Later?", conversation=conversation, context_management=MANAGE)
    assert later.output_text == "Later." and len(chat_server.requests) == 4
    assert chat_server.requests[3]["stream"] is True
    sent = contents(chat_server.requests[3]["messages"])
    assert sent[:3] == ["Tell me a long story.", "About a lighthouse, please.", "Next question?"]
    assert SUMMARY in sent[3] and sent[4:] == ["Answer.", "Later?"]
    assert STORY not in sent
    assert len(listed(client, conversation)) == 8


def test_a_background_response_compacts_its_conversation(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    conversation = a_long_turn(client, chat_server)
    chat_server.script([{"text": SUMMARY}, {"text": "Answer."}])
    started = client.responses.create(
        model=MODEL, input="Next question?", conversation=conversation, context_management=MANAGE, background=True
    )
    # The summarization was answered before the response was queued.
    assert started.status == "queued" and chat_server.requests[1]["stream"] is False
    deadline = time.monotonic() + 20
    while client.responses.retrieve(started.id).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.responses.retrieve(started.id).output_text == "Answer."
    kinds = [t for t, _ in item_texts(listed(client, conversation))]
    assert kinds == ["user", "user", "assistant", "user", "compaction", "assistant"]


def test_compacting_twice_starts_from_the_latest_compaction(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    conversation = a_long_turn(client, chat_server)
    chat_server.script([{"text": SUMMARY}, {"text": "Another long one: " + STORY}])
    client.responses.create(model=MODEL, input="Another?", conversation=conversation, context_management=MANAGE)
    # Past the threshold again (the second long answer): compacted again, from the first window.
    second = "The user asked for two long stories; both were told."
    chat_server.script([{"text": second}, {"text": "Done."}])
    client.responses.create(model=MODEL, input="Enough.", conversation=conversation, context_management=MANAGE)
    assert len(chat_server.requests) == 5 and chat_server.requests[3]["stream"] is False
    sent = contents(chat_server.requests[3]["messages"])
    # The summarization sees the first window, its answer and the input (not the first story).
    assert sent[:3] == ["Tell me a long story.", "About a lighthouse, please.", "Another?"]
    assert SUMMARY in sent[3] and sent[4] == "Another long one: " + STORY and sent[5] == "Enough."
    sent = contents(chat_server.requests[4]["messages"])
    assert sent[:4] == ["Tell me a long story.", "About a lighthouse, please.", "Another?", "Enough."]
    assert second in sent[4] and len(sent) == 5
    kinds = [t for t, _ in item_texts(listed(client, conversation))]
    assert kinds == ["user", "user", "assistant", "user", "compaction", "assistant", "user", "compaction", "assistant"]
    # The next turn starts from the latest compaction item.
    chat_server.script([{"text": "Bye."}])
    client.responses.create(model=MODEL, input="Bye?", conversation=conversation)
    sent = contents(chat_server.requests[5]["messages"])
    assert sent[:4] == ["Tell me a long story.", "About a lighthouse, please.", "Another?", "Enough."]
    assert second in sent[4] and sent[5:] == ["Done.", "Bye?"]
    assert not any(SUMMARY in s for s in sent)


def test_a_compaction_item_the_client_put_in_the_conversation(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    conversation = client.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": "I am Ada."},
            {"type": "message", "role": "assistant", "content": "An old answer that should not come back."},
        ]
    )
    # A window from /responses/compact, added through the items API (the compaction item without an id).
    added = client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "user", "content": "My favourite colour is teal."},
            {"type": "compaction", "encrypted_content": "Summary: Ada likes teal."},  # type: ignore[list-item]
        ],
    )
    assert added.data[1].id.startswith("cmp_")
    chat_server.script([{"text": "Teal."}])
    client.responses.create(model=MODEL, input="Remind me?", conversation=conversation.id)
    messages = chat_server.requests[0]["messages"]
    assert contents(messages) == ["I am Ada.", "My favourite colour is teal.", "Summary: Ada likes teal.", "Remind me?"]
    assert [m["role"] for m in messages] == ["user", "user", "assistant", "user"]
    # Listing the conversation shows everything, the old answer too.
    assert len(listed(client, conversation.id)) == 6


def test_a_failing_summarization_leaves_the_conversation_unchanged(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    conversation = a_long_turn(client, chat_server)
    before = [item.model_dump() for item in listed(client, conversation)]
    chat_server.script([{"error": {"status": 500, "message": "boom"}}])
    # Streamed: answered before any stream starts.
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(
            model=MODEL, input="Next?", conversation=conversation, context_management=MANAGE, stream=True
        )
    assert caught.value.status_code == 502 and "boom" in caught.value.message
    chat_server.script([{"error": {"status": 500, "message": "boom again"}}])
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=MODEL, input="Next?", conversation=conversation, context_management=MANAGE)
    assert caught.value.status_code == 502 and "boom again" in caught.value.message
    # Only the two summarization calls were made; the conversation is as it was.
    assert len(chat_server.requests) == 3 and all(r["stream"] is False for r in chat_server.requests[1:])
    assert [item.model_dump() for item in listed(client, conversation)] == before


# ------------------------------------------------------------------------------------------------
# PostgreSQL

POSTGRES = os.environ.get("RESPONSES_RS_POSTGRES", "")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    asyncpg = pytest.importorskip("asyncpg", reason="the PostgreSQL store needs asyncpg (the [postgres] extra)")
    name = "serve_" + uuid.uuid4().hex[:12]

    async def sql(query: str) -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(query)
        finally:
            await conn.close()

    asyncio.run(sql(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.mark.skipif(
    not POSTGRES, reason="RESPONSES_RS_POSTGRES is unset: `scripts/postgres.sh start` starts a PostgreSQL and prints it"
)
def test_on_postgres_a_conversation_compacted_on_one_server_continues_on_the_other(
    chat_server: ScriptedChatServer, tmp_path: Path
) -> None:
    chat_server.reset()
    with fresh_database() as url:
        flags = ("--database-url", url)
        with serve_process(chat_server.base_url, tmp_path / "a", *flags) as a:
            with serve_process(chat_server.base_url, tmp_path / "b", *flags, console_script=False) as b:
                with (
                    openai.OpenAI(base_url=a.base_url, api_key="x", max_retries=0, timeout=30) as one,
                    openai.OpenAI(base_url=b.base_url, api_key="x", max_retries=0, timeout=30) as other,
                ):
                    conversation = a_long_turn(one, chat_server)
                    chat_server.script([{"text": SUMMARY}, {"text": "Answer."}])
                    events = list(
                        one.responses.create(
                            model=MODEL,
                            input="Next question?",
                            conversation=conversation,
                            context_management=MANAGE,
                            stream=True,
                        )
                    )
                    assert validate_stream(events, response_cls=Response, schema_host="full").output_text == "Answer."
                    kinds = [t for t, _ in item_texts(listed(other, conversation))]
                    assert kinds == ["user", "user", "assistant", "user", "compaction", "assistant"]
                    # The other server reads the conversation as the window.
                    chat_server.script([{"text": "Later."}])
                    other.responses.create(
                        model=MODEL, input="Later?", conversation=conversation, context_management=MANAGE
                    )
                    assert len(chat_server.requests) == 4
                    sent = contents(chat_server.requests[3]["messages"])
                    assert sent[:3] == ["Tell me a long story.", "About a lighthouse, please.", "Next question?"]
                    assert SUMMARY in sent[3] and sent[4:] == ["Answer.", "Later?"]
