"""OGX's ``skills`` request field (alpha in OGX 1.5) on responses-rs, as OGX's builtin serves it.

- The skills in effect are the request's ``skills``, else (when the request gives none, ``None``) the ones the
  ``previous_response_id`` response was created with (``inherited_skills``). An explicit ``[]`` means none.
- Each skill id is resolved through the optional ``Api.skills`` collaborator: ``get_skill(id)`` (OGX's skills
  provider raises ``ValueError`` for an unknown id: HTTP 400), then its default version's zip
  (``get_skill_version_content``); ``SKILL.md`` at the archive root is parsed with OGX's own
  ``parse_skill_manifest``. Skills in effect without a skills API configured: ``ServiceNotEnabledError("skills")``
  (HTTP 503).
- One system message per request, the skills' sections joined by a blank line (``## Skill: <name>``, the
  description, ``### Instructions`` and the manifest's body), placed right after the instructions' system message
  (first when there are no instructions), in every inference call of the turn. It is not stored (the builtin
  stores no system message either): the next turn resolves the inherited skills again.
- The skills in effect are echoed on the response object (``skills``), in every event that carries it, and in the
  stored row, where the builtin reads them back when it continues the chain (and we read the builtin's).

A request chained on a previous response always needs that response's skills; so that this costs no extra
store read, the previous response is read once, before the turn, and handed to the turn's own read of it
(`_PreviousRead`).

The resolution happens before the turn starts, so a failure is an HTTP error for streamed requests too (this
provider's convention for errors found before the stream, like an unknown ``previous_response_id``); the builtin
opens the stream first and sends them as its SSE ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ogx_api import ResponseNotFoundError, ServiceNotEnabledError

from ._impl import OGXResponsesImpl

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


def effective_skills(request: Any, previous: Any) -> list[str] | None:
    """The request's skills, else those of its previous response (None: no skills at all)."""
    if request.skills is not None:
        return list(request.skills)
    if previous is None or previous.skills is None:
        return None
    return list(previous.skills)


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


async def _skill_section(skills_api: Any, skill_id: str) -> str:
    from ogx.providers.inline.skills.builtin.manifest import parse_skill_manifest
    from ogx.providers.inline.skills.builtin.validation import _SKILL_MD

    skill = await skills_api.get_skill(skill_id)
    content = await skills_api.get_skill_version_content(skill_id, skill.default_version)
    manifest = None
    with zipfile.ZipFile(io.BytesIO(content.body)) as bundle:
        if _SKILL_MD in bundle.namelist():
            manifest = parse_skill_manifest(bundle.read(_SKILL_MD).decode("utf-8"))
    section = f"## Skill: {skill.name}"
    if skill.description:
        section += f"\n{skill.description}"
    if manifest is not None and manifest.instructions:
        section += f"\n\n### Instructions\n{manifest.instructions}"
    return section


async def skill_instructions(skills_api: Any, skill_ids: list[str]) -> str | None:
    """The system message's text for these skills (None for no skills); the errors of the skills API pass."""
    if not skill_ids:
        return None
    if skills_api is None:
        raise ServiceNotEnabledError("skills")
    sections = await asyncio.gather(*(_skill_section(skills_api, skill_id) for skill_id in skill_ids))
    return "\n\n".join(sections)


class RequestDriver(OGXResponsesImpl):
    """The provider for one request that builds on a previous response or has skills in effect: the same
    collaborators and store, the previous response read once (see `_PreviousRead`) and, with skills, their system
    message in every inference call and the skills echoed on every response object."""

    def __init__(
        self,
        base: OGXResponsesImpl,
        previous: Any,
        skills: list[str] | None,
        text: str | None,
        *,
        after_instructions: bool,
    ) -> None:
        self.__dict__.update(base.__dict__)
        if previous is not None:
            self.responses_store = _PreviousRead(base.responses_store, previous)
        self._skills = skills
        self._skill_message = None if text is None else {"role": "system", "content": text}
        self._skill_index = 1 if after_instructions else 0

    def _response_object(self, response_json: str) -> Any:
        response = super()._response_object(response_json)
        if self._skills is not None:
            response.skills = list(self._skills)
        return response

    async def _infer(self, action: Any, model: str, temperature: float | None) -> Any:
        if self._skill_message is not None:
            messages = json.loads(action[1])
            messages.insert(self._skill_index, self._skill_message)
            action = (action[0], json.dumps(messages), *action[2:])
        return await super()._infer(action, model, temperature)

    async def _store(self, response_id: str, response_json: str, input_json: str) -> Any:
        if self._skills is not None:
            response = json.loads(response_json)
            response["skills"] = self._skills
            response_json = json.dumps(response)
        return await super()._store(response_id, response_json, input_json)

    def _stream(  # type: ignore[override]
        self, turn: Turn, model: str, temperature: float | None, primed: tuple[Any, Any] | None = None
    ) -> AsyncIterator[Any]:
        events = super()._stream(turn, model, temperature, primed)
        return events if self._skills is None else self._echo_skills(events)

    async def _echo_skills(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                response = getattr(event, "response", None)
                if response is not None:
                    response.skills = list(self._skills or ())
                yield event


async def request_driver(base: OGXResponsesImpl, request: Any) -> OGXResponsesImpl:
    """``base`` itself for a request with no previous response and no skills, else a `RequestDriver` for it.
    The previous response is read first, as the builtin does; when it is missing, ``base`` serves the request
    (and reports it, after checking the request's fields)."""
    if request.skills is None and not request.previous_response_id:
        return base
    previous = await _read_previous(request, base.responses_store)
    if request.previous_response_id and previous is None:
        return base
    skills = effective_skills(request, previous)
    text = None if skills is None else await skill_instructions(getattr(base, "skills_api", None), skills)
    return RequestDriver(base, previous, skills, text, after_instructions=request.instructions is not None)
