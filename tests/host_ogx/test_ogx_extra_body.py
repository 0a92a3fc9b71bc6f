"""`extra_body` under OGX, as the builtin takes it (`request.model_extra["extra_body"]`): its fields go into
every chat completion request of the response, streamed or not and in the background, and its
`tokenizer_encoding` picks the tokenizer automatic compaction counts with."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ogx_api import CreateResponseRequest, RetrieveResponseRequest
from ogx_helpers import MODEL, Script, ToolCall, collect

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def request(**fields: Any) -> CreateResponseRequest:
    fields.setdefault("model", MODEL)
    return CreateResponseRequest(**fields)


async def test_extra_body_fields_reach_every_inference_call(impl: Any, script: Script, stream: bool) -> None:
    script.turns += ["first", "second"]
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 5}
    response, _ = await collect(await impl.create_openai_response(request(input="hi", stream=stream, extra_body=extra)))
    assert response.output[0].content[0].text == "first"
    (params,) = script.requests
    assert params.model_extra["chat_template_kwargs"] == {"enable_thinking": False}
    assert params.model_extra["top_k"] == 5
    # The next request without extra_body sends none of it (nothing leaks between requests).
    await collect(await impl.create_openai_response(request(input="again", stream=stream)))
    assert "top_k" not in (script.requests[-1].model_extra or {})


async def test_extra_body_reaches_a_background_run(impl: Any, script: Script) -> None:
    script.turns.append([ToolCall("get_weather", '{"city": "Paris"}')])
    extra = {"top_k": 7}
    response, _ = await collect(
        await impl.create_openai_response(
            request(input="weather?", tools=[WEATHER_TOOL], extra_body=extra, background=True)
        )
    )
    assert response.status == "queued"
    for _ in range(200):
        stored = await impl.get_openai_response(RetrieveResponseRequest(response_id=response.id))
        if stored.status not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.02)
    assert stored.status == "completed" and stored.output[0].type == "function_call"
    assert [p.model_extra.get("top_k") for p in script.requests] == [7]


async def test_extra_body_must_be_an_object(impl: Any, script: Script) -> None:
    with pytest.raises(ValueError, match="extra_body"):
        await impl.create_openai_response(request(input="hi", extra_body="fast"))
    assert script.requests == []


async def test_tokenizer_encoding_must_name_an_encoding(impl: Any, script: Script) -> None:
    with pytest.raises(ValueError, match="tokenizer_encoding"):
        await impl.create_openai_response(
            request(
                input="hi",
                context_management=[{"type": "compaction", "compact_threshold": 1}],
                extra_body={"tokenizer_encoding": "no_such_encoding"},
            )
        )
    assert script.requests == []
