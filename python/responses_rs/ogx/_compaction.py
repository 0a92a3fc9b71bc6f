"""Compaction for OGX, as its builtin does it (``compact_openai_response``, ``_maybe_auto_compact``,
``_count_tokens``, ``_resolve_encoding`` in ``ogx/providers/inline/responses/builtin/responses/openai_responses.py``).

The steps are the core's (``responses_rs._core.Compaction``: the summarization messages, the compacted window,
its object and record); this module does the I/O around them (one inference call, one stored record) and
counts tokens with tiktoken for ``context_management``. The prompts, the summary prefix, the summarization
model, the default threshold and the tokenizer choice come from the builtin's ``CompactionConfig``
(``config.compaction_config`` of the provider's ``BuiltinResponsesImplConfig``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from ogx_api import (
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAIMessageParam,
    OpenAIResponseInput,
    OpenAIResponseObject,
)
from ogx_api import openai_responses as ogx_responses
from pydantic import TypeAdapter

from .._core import Compaction, compaction_text_segments

logger = logging.getLogger("responses_rs")

MESSAGES = TypeAdapter(list[OpenAIMessageParam])
INPUT_ITEMS = TypeAdapter(list[OpenAIResponseInput])
# The builtin's character estimate when no tokenizer fits the model (responses/utils.py).
APPROX_CHARS_PER_TOKEN = 4


def compaction_config(config: Any) -> Any:
    """The provider config's ``compaction_config``, or the builtin's defaults."""
    configured = getattr(config, "compaction_config", None)
    if configured is not None:
        return configured
    from ogx.providers.inline.responses.builtin.config import CompactionConfig

    return CompactionConfig()


async def compact(
    inference_api: Any,
    responses_store: Any,
    config: Any,
    history: str | list[Any],
    *,
    model: str | None,
    instructions: str | None = None,
    prompt_cache_key: str | None = None,
) -> Compaction:
    """Summarize ``history`` with one inference call and store the compaction's record (a completed
    response with no output whose input is the compacted window), so that its id continues a chain."""
    settings = compaction_config(config)
    summarization_model = settings.summarization_model or model
    if not summarization_model:
        raise ValueError(
            "Failed to compact response: no model specified in request and no "
            "summarization_model configured in CompactionConfig"
        )
    compaction = Compaction(history, settings.summarization_prompt, instructions)
    params = OpenAIChatCompletionRequestWithExtraBody(
        model=summarization_model,
        messages=MESSAGES.validate_json(compaction.messages_json()),
        stream=False,
        prompt_cache_key=prompt_cache_key,
    )
    completion = await inference_api.openai_chat_completion(params)
    compaction.finish(completion, settings.summary_prefix or "")
    await responses_store.store_response_object(
        response_object=OpenAIResponseObject.model_validate_json(compaction.record_json(model or summarization_model)),
        input=INPUT_ITEMS.validate_json(compaction.input_json()),
        messages=MESSAGES.validate_json(compaction.window_messages_json()),
    )
    return compaction


def resolve_encoding(config: Any, model: str, tokenizer_encoding: str | None = None) -> Any:
    """The tiktoken encoding for ``model``: the configured one, else tiktoken's for the model name, else
    the first ``model_tokenizer_mappings`` prefix that matches; None means "estimate from characters".
    ``tokenizer_encoding`` (the request's ``extra_body.tokenizer_encoding``) comes first and must name an
    encoding, as in the builtin."""
    import tiktoken

    if tokenizer_encoding:
        try:
            return tiktoken.get_encoding(tokenizer_encoding)
        except ValueError:
            raise ValueError(
                f"tokenizer_encoding: {tokenizer_encoding!r} is not a tiktoken encoding (e.g. 'cl100k_base')"
            ) from None

    settings = compaction_config(config)
    if settings.tokenizer_encoding:
        return tiktoken.get_encoding(settings.tokenizer_encoding)
    name = model.split("/")[-1]
    try:
        return tiktoken.encoding_for_model(name)
    except KeyError:
        pass
    for prefix, encoding in settings.model_tokenizer_mappings.items():
        if name.lower().startswith(prefix.lower()):
            try:
                return tiktoken.get_encoding(encoding)
            except ValueError:
                logger.warning("responses-rs: invalid encoding %r in model_tokenizer_mappings", encoding)
                break
    logger.warning("responses-rs: no tokenizer for model %r, estimating tokens from characters", model)
    return None


def count_tokens(config: Any, input: str | list[Any], model: str, tokenizer_encoding: str | None = None) -> int:
    """The builtin's token estimate of a request's input: its texts (the core's ``compaction_text_segments``)
    counted with ``resolve_encoding``, else characters / 4."""
    encoding = resolve_encoding(config, model, tokenizer_encoding)
    segments = [input] if isinstance(input, str) else compaction_text_segments(input)
    if encoding is not None:
        return sum(len(encoding.encode(s)) for s in segments)
    return max(1, sum(len(s) for s in segments) // APPROX_CHARS_PER_TOKEN)


async def maybe_auto_compact(
    inference_api: Any,
    responses_store: Any,
    config: Any,
    history: str | list[Any],
    *,
    model: str,
    context_management: Sequence[Any],
    previous_usage: ogx_responses.OpenAIResponseUsage | None,
    tokenizer_encoding: str | None = None,
) -> list[Any] | None:
    """``context_management``: for each ``compaction`` entry, its ``compact_threshold`` (else the configured
    default; neither: the entry is skipped) against the previous response's total tokens (else the
    history's token estimate); above it, the history is compacted and the compacted window (item dicts)
    returned. None: nothing was compacted."""
    settings = compaction_config(config)
    count: int | None = None
    for entry in context_management:
        if getattr(entry, "type", None) != "compaction":
            continue
        threshold = entry.compact_threshold
        if threshold is None:
            threshold = settings.default_compact_threshold
        if threshold is None:
            continue
        if count is None:
            if previous_usage is not None and previous_usage.total_tokens:
                count = previous_usage.total_tokens
            else:
                count = count_tokens(config, history, model, tokenizer_encoding)
        if count > threshold:
            logger.info("responses-rs: compacting the context (%d tokens > %d)", count, threshold)
            compaction = await compact(inference_api, responses_store, config, history, model=model)
            return json.loads(compaction.input_json())
    return None
