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
- Write (``write_enabled``): after a stored, completed turn of a ``conversation`` (its items and chat history
  written, in the foreground or in a background run), a task is scheduled per (owner, conversation, memory
  vector store) that waits ``write_debounce_seconds`` and then calls OGX's own ``write_conversation_memory``
  (the summary by the model, the Markdown file uploaded and attached with the owner's attributes, the store's
  memory record, the previous file deleted). A newer turn of the same key cancels a task still waiting (two
  quick turns: one write); a write under way is not cancelled, the next one waits for it (one lock per key).
  The builtin's skip rules: memory off for the request, no owner, no vector store and no auto-create, a turn
  not completed. The write's failure is logged, never the turn's; ``shutdown`` cancels the tasks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger(__name__)


def memory_config(base: Any) -> Any:
    """The provider config's ``MemoryConfig`` when memory is on, else None."""
    config = getattr(getattr(base, "config", None), "memory_config", None)
    return config if config is not None and config.enabled else None


async def memory_context(base: Any, config: Any, request: Any) -> str | None:
    """The memory system message's text for this request (None: nothing to recall); OGX's errors pass."""
    if request.memory is not None and not request.memory.enabled:
        return None
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


class MemoryWrites:
    """The provider's scheduled conversation memory writes (the builtin's ``_schedule_memory_write``), keyed by
    (owner, conversation, vector store or ``__default__``)."""

    def __init__(self) -> None:
        self.tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._active: set[tuple[str, str, str]] = set()

    def schedule(
        self,
        impl: Any,
        *,
        conversation_id: str | None,
        response_id: str,
        response_status: str | None,
        model: str | None,
        memory: Any,
        metadata: dict[str, str] | None,
        safety_identifier: str | None,
    ) -> None:
        """After a stored turn: a debounced write of its conversation's memory, unless a skip rule holds."""
        config = memory_config(impl)
        if (
            config is None
            or not config.write_enabled
            or (memory is not None and not memory.enabled)
            or response_status != "completed"
            or not conversation_id
        ):
            return
        vector_store_id = memory.vector_store_id if memory and memory.vector_store_id else None
        vector_store_id = vector_store_id or config.default_vector_store_id
        if vector_store_id is None and not config.auto_create_default_vector_store:
            return
        from ogx.core.task import capture_request_context, create_detached_background_task
        from ogx.providers.inline.responses.builtin.responses.memory import resolve_memory_owner_id

        owner_id = resolve_memory_owner_id(memory, metadata, safety_identifier)
        if not owner_id:
            logger.debug("responses-rs: no memory write for %s: no owner", conversation_id)
            return
        key = (owner_id, conversation_id, vector_store_id or "__default__")
        previous = self.tasks.get(key)
        if previous is not None and not previous.done() and key not in self._active:
            previous.cancel()  # still waiting: this turn's write replaces it
        write = dict(
            conversation_id=conversation_id,
            response_id=response_id,
            response_status=response_status,
            model=model,
            request_memory=memory,
            metadata=metadata,
            safety_identifier=safety_identifier,
            owner_id=owner_id,
        )
        self.tasks[key] = create_detached_background_task(
            self._after_delay(impl, config, key, capture_request_context(), write)
        )

    async def _after_delay(
        self, impl: Any, config: Any, key: tuple[str, str, str], context: Any, write: dict[str, Any]
    ) -> None:
        from ogx.core.task import activate_request_context
        from ogx.providers.inline.responses.builtin.responses.memory import write_conversation_memory

        try:
            with activate_request_context(context):
                if config.write_debounce_seconds > 0:
                    await asyncio.sleep(config.write_debounce_seconds)
                lock = self._locks.setdefault(key, asyncio.Lock())
                async with lock:
                    self._active.add(key)
                    try:
                        await write_conversation_memory(
                            inference_api=impl.inference_api,
                            files_api=impl.files_api,
                            vector_io_api=impl.vector_io_api,
                            responses_store=impl.responses_store,
                            memory_config=config,
                            **write,
                        )
                    except Exception as exc:  # the builtin's: logged, the turn is long done
                        logger.warning(
                            "responses-rs: failed to write memory summary for %s (%s): %s",
                            write["conversation_id"],
                            write["response_id"],
                            exc,
                        )
                    finally:
                        self._active.discard(key)
        finally:
            if self.tasks.get(key) is asyncio.current_task():
                self.tasks.pop(key, None)
            if key not in self.tasks and key not in self._active:
                self._locks.pop(key, None)

    async def shutdown(self) -> None:
        """Cancel every scheduled or running write and wait for them to end."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
