"""What one OGX create request adds to the provider before its turn: the previous response read once, the skills
in effect (``._skills``) and the memory context (``._memory``).

A request with none of them is served by the provider itself, untouched. Any other gets a `RequestDriver`: the
same collaborators and store (a copy of the provider's attributes, made per request) whose `with_context` puts the
skills' and the memory's system messages into the new turn (the core sends them on every inference call) and has
the core echo the skills on the response, its events and its stored row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ogx_api import ResponseNotFoundError

from ._impl import OGXResponsesImpl
from ._memory import memory_config, memory_context
from ._skills import effective_skills, skill_instructions

if TYPE_CHECKING:
    from responses_rs._core import Turn


async def _read_previous(request: Any, responses_store: Any) -> Any:
    """The ``previous_response_id`` response (input reconstructed, as the turn reads it), or None (no previous
    response, or none stored under that id: the turn reports that itself, after checking the request's fields)."""
    if not request.previous_response_id:
        return None
    try:
        return await responses_store.get_response_object(request.previous_response_id)
    except ResponseNotFoundError:
        return None


class _PreviousRead:
    """The responses store, with the previous response already read: the first ``get_response_object`` of it
    (reconstructed input, the default) answers that object, so the turn does not read it again. Everything else,
    the read before storing included, goes to the store."""

    def __init__(self, store: Any, previous: Any) -> None:
        self._responses_store = store
        self._previous = previous

    async def get_response_object(self, response_id: str, reconstruct_input: bool = True) -> Any:
        previous, self._previous = self._previous, None
        if previous is not None and reconstruct_input and response_id == previous.id:
            return previous
        return await self._responses_store.get_response_object(response_id, reconstruct_input=reconstruct_input)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._responses_store, name)


class RequestDriver(OGXResponsesImpl):
    """The provider for one request that builds on a previous response, has skills in effect or recalls memory."""

    def __init__(
        self,
        base: OGXResponsesImpl,
        *,
        previous: Any,
        skills: list[str] | None,
        skills_text: str | None,
        memory_text: str | None,
        after_instructions: bool,
    ) -> None:
        self.__dict__.update(base.__dict__)
        if previous is not None:
            self.responses_store = _PreviousRead(base.responses_store, previous)
        self._skills = skills
        self._skill_message = skills_text
        self._skill_index = 1 if after_instructions else 0
        self._memory_message = memory_text
        self._memory_request: Any = None  # memory on: the request, whose stored conversation turn writes memory

    async def _store_turn(self, turn: Any, response_json: str, input_json: str) -> Any:
        response = await super()._store_turn(turn, response_json, input_json)
        self._schedule_memory_write(turn.response_id, response.status)
        return response

    async def _background_ending(self, turn: Any, response_json: str, input_json: str) -> None:
        await super()._background_ending(turn, response_json, input_json)
        self._schedule_memory_write(turn.response_id, json.loads(response_json).get("status"))

    def _schedule_memory_write(self, response_id: str, status: str | None) -> None:
        """After the conversation turn is stored, as the builtin schedules it (see ``._memory.MemoryWrites``)."""
        request = self._memory_request
        if request is not None and request.conversation:
            self._memory_writes.schedule(
                self,
                conversation_id=request.conversation,
                response_id=response_id,
                response_status=status,
                model=request.model,
                memory=request.memory,
                metadata=request.metadata,
                safety_identifier=request.safety_identifier,
            )

    def with_context(self, prepare: Callable[[Turn], None] | None, prompted: bool) -> Callable[[Turn], None]:
        """The new turn's host context: ``prepare`` (conversation, prompt), then the skills' system message
        (after the prompt and the instructions, as the builtin places it), then the memory context (after the
        leading system and developer messages); the skills are echoed on the response, its events and its
        record."""

        def context(turn: Turn) -> None:
            if prepare is not None:
                prepare(turn)
            if self._skill_message is not None:
                turn.insert_system(self._skill_message, self._skill_index + int(prompted))
            if self._memory_message is not None:
                turn.insert_system(self._memory_message)
            if self._skills is not None:
                turn.echo_field("skills", list(self._skills))

        return context


async def request_driver(base: OGXResponsesImpl, request: Any) -> OGXResponsesImpl:
    """``base`` itself for a request with no previous response, no skills and memory off, else a `RequestDriver`
    for it. In the builtin's order: the previous response (when it is missing, ``base`` serves the request and
    reports it, after checking the request's fields), the skills, the memory context."""
    memory = memory_config(base)
    if request.skills is None and not request.previous_response_id and memory is None:
        return base
    previous = await _read_previous(request, base.responses_store)
    if request.previous_response_id and previous is None:
        return base
    skills = effective_skills(request, previous)
    skills_text = None if skills is None else await skill_instructions(getattr(base, "skills_api", None), skills)
    memory_text = None if memory is None else await memory_context(base, memory, request)
    driver = RequestDriver(
        base,
        previous=previous,
        skills=skills,
        skills_text=skills_text,
        memory_text=memory_text,
        after_instructions=request.instructions is not None,
    )
    if memory is not None:
        driver._memory_request = request
    return driver
