"""OGX's Responses memory (alpha in OGX 1.5) on responses-rs: the read half, as OGX's builtin serves it.

The operator turns memory on in the provider's config (``memory_config``, OGX's ``MemoryConfig``: ``enabled`` is
False by default); a request's ``memory`` (``MemoryToolConfig``) only tunes it (``enabled``, ``owner_id``,
``vector_store_id``, ``max_num_results``, ``max_context_tokens``, ``filters``, ``ranking_options``). With memory
off, ``memory`` is accepted and has no effect, as in the builtin.

- Read: before the turn, OGX's own ``resolve_memory_context`` (imported at run time from the builtin's package, so
  the owner rules, the vector store choice or lazy creation, the owner filters, the hybrid search and the
  ``<memories>`` text are OGX's) searches the memory vector store for the request's last user text; the text it
  returns becomes one system message placed after the leading system/developer messages (the instructions', the
  skills'), in every inference call of the turn, never stored.
- Write: the builtin writes memory only after a stored turn of a ``conversation`` (a debounced task summarising
  the conversation's messages into a Markdown file in the memory vector store, ``write_conversation_memory``).
  responses-rs does not write memory yet; a request that would have it written (``conversation`` with memory
  writes on) is refused naming the field rather than silently not remembered.
"""

from __future__ import annotations

from typing import Any


def memory_config(base: Any) -> Any:
    """The provider config's ``MemoryConfig`` when memory is on, else None."""
    config = getattr(getattr(base, "config", None), "memory_config", None)
    return config if config is not None and config.enabled else None


async def memory_context(base: Any, config: Any, request: Any) -> str | None:
    """The memory system message's text for this request (None: nothing to recall); OGX's errors pass."""
    if request.memory is not None and not request.memory.enabled:
        return None
    if request.conversation and config.write_enabled:
        raise NotImplementedError("memory: writing conversation memory is not supported by responses-rs (yet)")
    from ogx.providers.inline.responses.builtin.responses.memory import resolve_memory_context

    return await resolve_memory_context(
        vector_io_api=base.vector_io_api,
        memory_config=config,
        request_memory=request.memory,
        input=request.input,
        metadata=request.metadata,
        safety_identifier=request.safety_identifier,
        responses_store=base.responses_store,
    )


def insert_after_leading_system(messages: list[dict[str, Any]], message: dict[str, Any]) -> None:
    """Insert ``message`` after the chat messages' leading system/developer messages (where the builtin puts
    the memory context)."""
    at = 0
    while at < len(messages) and messages[at].get("role") in ("system", "developer"):
        at += 1
    messages.insert(at, message)
