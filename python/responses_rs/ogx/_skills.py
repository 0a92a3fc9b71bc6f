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
(``._request``, which also applies the result to the request).

The resolution happens before the turn starts, so a failure is an HTTP error for streamed requests too (this
provider's convention for errors found before the stream, like an unknown ``previous_response_id``); the builtin
opens the stream first and sends them as its SSE ``error`` event.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any

from ogx_api import ServiceNotEnabledError


def effective_skills(request: Any, previous: Any) -> list[str] | None:
    """The request's skills, else those of its previous response (None: no skills at all)."""
    if request.skills is not None:
        return list(request.skills)
    if previous is None or previous.skills is None:
        return None
    return list(previous.skills)


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
