"""OGX's `skills` request field (alpha in OGX 1.5): responses-rs against OGX's own `inline::builtin` responses
provider, both on one sqlite responses store and one real OGX skills provider (`inline::builtin` skills: its kv
store on sqlite, its bundles through the real localfs files provider). What the model is sent, what the response
echoes and stores, inheritance along a `previous_response_id` chain across the two providers, and the errors,
each compared with what the builtin does for the same request."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock

import pytest
from fastapi import UploadFile
from ogx.core.storage.datatypes import KVStoreReference, SqliteKVStoreConfig, SqlStoreReference
from ogx.core.storage.kvstore.kvstore import register_kvstore_backends, shutdown_kvstore_backends
from ogx.providers.inline.files.localfs.config import LocalfsFilesImplConfig
from ogx.providers.inline.files.localfs.files import LocalfsFilesImpl
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx.providers.inline.skills.builtin import get_provider_impl as skills_provider_impl
from ogx.providers.inline.skills.builtin.config import BuiltinSkillsConfig
from ogx_api import (
    Api,
    CreateResponseRequest,
    ListResponsesRequest,
    ResponseNotFoundError,
    RetrieveResponseRequest,
    ServiceNotEnabledError,
    ToolDef,
    ToolInvocationResult,
)
from ogx_api.skills import SkillVersionCreateRequest
from ogx_helpers import MODEL, Script, ToolCall, collect, make_store

from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl


def bundle(name: str, description: str, body: str, **extra_files: str) -> bytes:
    """A skill zip: SKILL.md (frontmatter + instructions) at the root, and any other files."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("SKILL.md", f"---\nname: {name}\ndescription: {description}\n---\n{body}\n")
        for path, text in extra_files.items():
            zf.writestr(path, text)
    return out.getvalue()


def upload(content: bytes) -> UploadFile:
    return UploadFile(file=io.BytesIO(content), filename="skill.zip", size=len(content))


@pytest.fixture
async def skills(tmp_path: Any, db_path: str) -> AsyncIterator[Any]:
    """OGX's own skills provider (what `ogx run` builds for `skills: inline::builtin`) on real stores."""
    await make_store(db_path)  # registers the sql_default backend the files metadata lives in
    register_kvstore_backends({"kv_default": SqliteKVStoreConfig(db_path=str(tmp_path / "kvstore.db"))})
    files = LocalfsFilesImpl(
        LocalfsFilesImplConfig(
            storage_dir=str(tmp_path / "files"),
            metadata_store=SqlStoreReference(backend="sql_default", table_name="files_metadata"),
        ),
        [],
    )
    await files.initialize()
    api = await skills_provider_impl(
        BuiltinSkillsConfig(persistence=KVStoreReference(backend="kv_default", namespace="skills")),
        {Api.files: files},
    )
    yield api
    await shutdown_kvstore_backends()


async def providers(inference: AsyncMock, skills_api: Any | None, **deps: Any) -> tuple[Any, Any]:
    """(builtin, ours) through their `get_provider_impl`, on the one store (sql_default) and these deps."""
    config = BuiltinResponsesImplConfig(
        persistence={"responses": {"table_name": "responses", "backend": "sql_default"}}
    )
    all_deps: dict[Api, Any] = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    all_deps[Api.inference] = inference
    all_deps.update({Api[name]: dep for name, dep in deps.items()})
    if skills_api is not None:
        all_deps[Api.skills] = skills_api
    builtin = await builtin_provider_impl(config, all_deps, [])
    ours = await our_provider_impl(config, all_deps, [])
    return builtin, ours


async def run(impl: Any, ours: Any, **fields: Any) -> Any:
    """One create request on `impl` -> its final response. Our streams go through the stream validator and
    every event carrying the response must echo its skills; the builtin's events are OGX's own."""
    result = await impl.create_openai_response(CreateResponseRequest(model=MODEL, **fields))
    if impl is not ours and fields.get("stream"):
        events = [e async for e in result]
        return events[-1].response
    response, events = await collect(result)
    carriers = [e for e in events if getattr(e, "response", None) is not None]
    assert not events or [e.type for e in carriers][:2] == ["response.created", "response.in_progress"]
    for event in carriers:
        assert event.response.skills == response.skills, event.type
    return response


def chat(params: Any) -> list[tuple[str, str]]:
    out = []
    for message in params.messages:
        content = message.content or ""
        out.append((message.role, content if isinstance(content, str) else "".join(p.text for p in content)))
    return out


async def test_skill_instructions_reach_the_model_as_the_builtin_sends_them(
    inference: AsyncMock, script: Script, skills: Any, stream: bool
) -> None:
    pdf = await skills.create_skill(upload(bundle("pdf-tools", "Reads PDFs.", "Use pdftotext.\n\nThen summarize.")))
    csv = await skills.create_skill(
        upload(bundle("csv-tools", "Reads CSV files.", "Split on commas.", **{"scripts/run.py": "print(1)"}))
    )
    builtin, ours = await providers(inference, skills)
    for instructions in ("Be brief.", None):
        sent = {}
        for impl in (builtin, ours):
            script.turns.append("ok")
            response = await run(
                impl, ours, input="hi", instructions=instructions, skills=[pdf.id, csv.id], stream=stream
            )
            assert response.status == "completed" and response.skills == [pdf.id, csv.id]
            sent[impl is ours] = chat(script.requests[-1])
        assert sent[True] == sent[False], instructions  # exactly what the builtin sends
        skill_message = ("system", sent[True][1 if instructions else 0][1])
        expected = [("system", instructions)] if instructions else []
        assert sent[True] == [*expected, skill_message, ("user", "hi")]
        text = skill_message[1]
        assert text == (
            "## Skill: pdf-tools\nReads PDFs.\n\n### Instructions\nUse pdftotext.\n\nThen summarize."
            "\n\n## Skill: csv-tools\nReads CSV files.\n\n### Instructions\nSplit on commas."
        )


async def test_the_default_version_is_the_one_used(inference: AsyncMock, script: Script, skills: Any) -> None:
    skill = await skills.create_skill(upload(bundle("notes", "v1", "Old way.")))
    await skills.create_skill_version(
        skill.id, SkillVersionCreateRequest(default=True), upload(bundle("notes", "v2", "New way."))
    )
    await skills.create_skill_version(
        skill.id, SkillVersionCreateRequest(default=False), upload(bundle("notes", "v3", "Newest way."))
    )
    builtin, ours = await providers(inference, skills)
    for impl in (builtin, ours):
        script.turns.append("ok")
        await run(impl, ours, input="hi", skills=[skill.id])
    assert chat(script.requests[0]) == chat(script.requests[1])
    assert chat(script.requests[1])[0] == ("system", "## Skill: notes\nv1\n\n### Instructions\nNew way.")


async def test_echoed_and_stored_for_each_other(inference: AsyncMock, script: Script, skills: Any) -> None:
    skill = await skills.create_skill(upload(bundle("s", "d", "Do it.")))
    builtin, ours = await providers(inference, skills)
    script.turns += ["a", "b"]
    theirs = await run(builtin, ours, input="q", skills=[skill.id])
    mine = await run(ours, ours, input="q", skills=[skill.id])
    for reader in (builtin, ours):
        for written in (theirs, mine):
            got = await reader.get_openai_response(RetrieveResponseRequest(response_id=written.id))
            assert got.skills == [skill.id]
    # Without skills, neither echoes any.
    script.turns.append("c")
    plain = await run(ours, ours, input="q")
    assert plain.skills is None
    assert (await builtin.get_openai_response(RetrieveResponseRequest(response_id=plain.id))).skills is None


async def test_inherited_along_a_chain_across_providers(
    inference: AsyncMock, script: Script, skills: Any, stream: bool
) -> None:
    skill = await skills.create_skill(upload(bundle("s", "Inherited.", "Keep doing it.")))
    builtin, ours = await providers(inference, skills)
    skill_text = "## Skill: s\nInherited.\n\n### Instructions\nKeep doing it."
    previous = None
    # ours (with skills) -> builtin -> ours -> builtin, only the first naming skills
    for i, impl in enumerate((ours, builtin, ours, builtin)):
        script.turns.append(f"a{i}")
        fields: dict[str, Any] = {"skills": [skill.id]} if i == 0 else {}
        response = await run(
            impl, ours, input=f"q{i}", previous_response_id=previous, instructions="Be kind.", stream=stream, **fields
        )
        assert response.skills == [skill.id], i
        sent = chat(script.requests[-1])
        assert sent[:2] == [("system", "Be kind."), ("system", skill_text)], i
        history = [(role, f"{kind}{j}") for j in range(i) for role, kind in (("user", "q"), ("assistant", "a"))]
        assert sent[2:] == [*history, ("user", f"q{i}")], i
        previous = response.id
    # An explicit empty list ends the inheritance, for both.
    for impl in (ours, builtin):
        script.turns.append("plain")
        response = await run(impl, ours, input="no skills", previous_response_id=previous, skills=[], stream=stream)
        assert response.skills == []
        assert all(role != "system" for role, _ in chat(script.requests[-1]))
    # A turn that names other skills replaces the inherited ones.
    other = await skills.create_skill(upload(bundle("other", "Other.", "Other way.")))
    script.turns.append("x")
    response = await run(ours, ours, input="other", previous_response_id=previous, skills=[other.id], stream=stream)
    assert response.skills == [other.id]
    assert chat(script.requests[-1])[0] == ("system", "## Skill: other\nOther.\n\n### Instructions\nOther way.")


async def test_every_inference_call_of_the_turn_gets_the_skill(
    inference: AsyncMock, script: Script, skills: Any, stream: bool
) -> None:
    """A server-side tool (web_search) makes the turn call the model twice: both calls carry the skill."""
    skill = await skills.create_skill(upload(bundle("search", "Searching.", "Cite sources.")))
    tool_groups = AsyncMock()
    tool_groups.get_tool.return_value = ToolDef(
        name="web_search",
        description="Search the web",
        input_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    tool_runtime = AsyncMock()
    tool_runtime.invoke_tool.return_value = ToolInvocationResult(content="llamas are camelids")
    builtin, ours = await providers(inference, skills, tool_groups=tool_groups, tool_runtime=tool_runtime)
    for impl in (builtin, ours):
        script.turns += [[ToolCall("web_search", {"query": "llamas"})], "Camelids."]
        response = await run(
            impl,
            ours,
            input="llamas?",
            instructions="Be brief.",
            tools=[{"type": "web_search"}],
            skills=[skill.id],
            stream=stream,
        )
        assert [item.type for item in response.output] == ["web_search_call", "message"]
    builtin_calls, our_calls = script.requests[:2], script.requests[2:]
    head = [("system", "Be brief."), ("system", "## Skill: search\nSearching.\n\n### Instructions\nCite sources.")]
    for call in (*builtin_calls, *our_calls):
        assert chat(call)[:2] == head
        assert [role for role, _ in chat(call)[2:]].count("system") == 0
    assert [role for role, _ in chat(our_calls[1])] == [role for role, _ in chat(builtin_calls[1])]


async def test_unknown_skill_is_the_skills_apis_error(
    inference: AsyncMock, script: Script, skills: Any, stream: bool
) -> None:
    builtin, ours = await providers(inference, skills)
    with pytest.raises(ValueError) as theirs:
        result = await builtin.create_openai_response(
            CreateResponseRequest(model=MODEL, input="hi", skills=["skill-nope"], stream=stream)
        )
        if stream:
            async for _ in result:  # the builtin fails on the stream's first iteration
                pass
    with pytest.raises(ValueError) as mine:
        await ours.create_openai_response(
            CreateResponseRequest(model=MODEL, input="hi", skills=["skill-nope"], stream=stream)
        )
    assert str(mine.value) == str(theirs.value) == "Failed to find skill: 'skill-nope' does not exist"
    assert script.requests == []  # no inference, nothing stored
    assert (await ours.list_openai_responses(ListResponsesRequest())).data == []


async def test_without_a_skills_api_it_is_the_builtins_503(
    inference: AsyncMock, script: Script, skills: Any, stream: bool
) -> None:
    skill = await skills.create_skill(upload(bundle("s", "d", "Do it.")))
    with_skills, _ = await providers(inference, skills)
    builtin, ours = await providers(inference, None)  # the same store, no Api.skills
    script.turns.append("a")
    first = await run(with_skills, ours, input="q", skills=[skill.id])

    async def refused(impl: Any, **fields: Any) -> str:
        with pytest.raises(ServiceNotEnabledError) as exc:
            result = await impl.create_openai_response(CreateResponseRequest(model=MODEL, stream=stream, **fields))
            if stream:
                async for _ in result:
                    pass
        assert exc.value.status_code == 503
        return str(exc.value)

    for fields in ({"input": "q", "skills": [skill.id]}, {"input": "q", "previous_response_id": first.id}):
        assert await refused(ours, **fields) == await refused(builtin, **fields), fields
    # No skills in effect: served without a skills API, by both.
    for impl in (builtin, ours):
        script.turns.append("b")
        response = await run(impl, ours, input="q", skills=[], stream=stream)
        assert response.status == "completed" and response.skills == []


# ------------------------------------------------------------------------------------------------
# End to end: the openai client -> `ogx run` (run-config --skills: OGX's skills API served by its builtin skills
# provider) with responses-rs -> the scripted Chat Completions server.


@pytest.fixture(scope="module")
def chat_server() -> Any:
    from responses_rs.testkit import ScriptedChatServer

    server = ScriptedChatServer(models=[E2E_MODEL]).start()
    yield server
    server.stop()


E2E_MODEL = "e2e-model"


@pytest.fixture(scope="module")
def ogx(chat_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ogx_server import ogx_server

    state = tmp_path_factory.mktemp("ogx-skills")
    with ogx_server(state, base_url=chat_server.base_url, model=E2E_MODEL, run_config_args=("--skills",)) as base:
        yield base


def test_e2e_skill_uploaded_over_http_reaches_the_model(ogx: str, chat_server: Any) -> None:
    import httpx
    import openai
    from openai.types.responses import Response
    from stream_validator import validate_stream

    chat_server.reset()
    root = ogx.removesuffix("/v1")
    content = bundle("haiku", "Writes haiku.", "Answer in 5-7-5 syllables.")
    uploaded = httpx.post(f"{root}/v1alpha/skills", files={"file": ("haiku.zip", content, "application/zip")})
    assert uploaded.status_code == 200, uploaded.text
    skill_id = uploaded.json()["id"]
    skill_text = "## Skill: haiku\nWrites haiku.\n\n### Instructions\nAnswer in 5-7-5 syllables."

    client = openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=30)
    try:
        chat_server.script([{"text": "Autumn moon."}, {"text": "Again, moon."}])
        first = client.responses.create(
            model=E2E_MODEL, input="A poem?", instructions="Be brief.", extra_body={"skills": [skill_id]}
        )
        assert first.output_text == "Autumn moon." and first.to_dict()["skills"] == [skill_id]
        sent = [(m["role"], m["content"]) for m in chat_server.requests[-1]["messages"]]
        assert sent == [("system", "Be brief."), ("system", skill_text), ("user", "A poem?")]
        # The next turn of the chain inherits the skill (streamed this time), and the stored row echoes it.
        events = list(
            client.responses.create(model=E2E_MODEL, input="More?", previous_response_id=first.id, stream=True)
        )
        second = validate_stream(events, response_cls=Response, schema_host="full")
        assert second.output_text == "Again, moon." and second.to_dict()["skills"] == [skill_id]
        assert [(m["role"], m["content"]) for m in chat_server.requests[-1]["messages"]][0] == ("system", skill_text)
        assert client.responses.retrieve(second.id).to_dict()["skills"] == [skill_id]
        # An unknown skill: the skills provider's 400, nothing sent to the model.
        before = len(chat_server.requests)
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model=E2E_MODEL, input="x", extra_body={"skills": ["skill-nope"]})
        assert "skill-nope" in bad.value.response.text
        assert len(chat_server.requests) == before
    finally:
        client.close()


async def test_a_chained_request_reads_its_previous_response_once(
    inference: AsyncMock, script: Script, skills: Any, stream: bool
) -> None:
    """The inherited skills come from the one read of the previous response the turn needs anyway (the store
    write does not read it again), with skills or without."""
    skill = await skills.create_skill(upload(bundle("s", "d", "Do it.")))
    _, ours = await providers(inference, skills)
    store = ours.responses_store
    reads: list[tuple[str, bool]] = []
    read = store.get_response_object

    async def counted(response_id: str, reconstruct_input: bool = True) -> Any:
        reads.append((response_id, reconstruct_input))
        return await read(response_id, reconstruct_input=reconstruct_input)

    store.get_response_object = counted
    for fields in ({"skills": [skill.id]}, {}):
        script.turns += ["a", "b"]
        first = await run(ours, ours, input="q", stream=stream, **fields)
        reads.clear()
        second = await run(ours, ours, input="q2", previous_response_id=first.id, stream=stream)
        assert second.skills == first.skills
        assert reads == [(first.id, True)], fields


async def test_a_missing_previous_response_comes_before_the_skills(
    inference: AsyncMock, script: Script, skills: Any
) -> None:
    builtin, ours = await providers(inference, skills)
    for impl in (builtin, ours):
        with pytest.raises(ResponseNotFoundError):
            await impl.create_openai_response(
                CreateResponseRequest(model=MODEL, input="q", previous_response_id="resp_nope", skills=["skill-nope"])
            )
    assert script.requests == []


@pytest.mark.parametrize(
    "files",
    [
        {"README.md": "no manifest"},  # no SKILL.md at the root: the name and description only
        {"SKILL.md": "Just do it.\n"},  # no frontmatter: the whole file is the instructions
        {"sub/SKILL.md": "---\nname: x\n---\nNested."},  # only the root SKILL.md counts
    ],
    ids=["no-manifest", "no-frontmatter", "nested"],
)
async def test_bundles_the_skills_provider_would_refuse(
    inference: AsyncMock, script: Script, db_path: str, files: dict[str, str]
) -> None:
    """Bundles OGX's own skills provider refuses at upload, as another skills provider might serve them (an
    `AsyncMock` stands for that provider): read as the builtin reads them."""
    from fastapi import Response
    from ogx_api.skills import Skill

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    skills_api = AsyncMock()
    skills_api.get_skill.return_value = Skill(
        id="skill-1", created_at=0, default_version="1", latest_version="1", name="odd", description="Odd one."
    )
    skills_api.get_skill_version_content.return_value = Response(content=out.getvalue())
    await make_store(db_path)
    builtin, ours = await providers(inference, skills_api)
    for impl in (builtin, ours):
        script.turns.append("ok")
        await run(impl, ours, input="hi", skills=["skill-1"])
    assert chat(script.requests[1]) == chat(script.requests[0])
    skill_text = chat(script.requests[1])[0][1]
    assert skill_text.startswith("## Skill: odd\nOdd one.")
    assert ("Just do it." in skill_text) == ("SKILL.md" in files)
    assert "Nested." not in skill_text
