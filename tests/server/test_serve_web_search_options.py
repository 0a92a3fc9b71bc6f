"""The `web_search` tool's options through a real ``responses-rs serve`` process (official openai client -> serve ->
the scripted Chat Completions server, which calls web_search; serve searches a stand-in SearXNG on 127.0.0.1):
``filters.allowed_domains`` (``site:`` terms for the backend, the results filtered), ``user_location`` (the country as
SearXNG's ``language``), ``search_context_size`` (how many results, how long, the model reads), ``include:
["web_search_call.action.sources"]`` and the model's markdown links to results as ``url_citation`` annotations. Each
is asserted on what the backend received and what the model and the client got; every stream goes through the
stream validator ("full" schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from openai.types.responses import Response
from searxng_stand_in import SearxStandIn
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
HOSTS = ["example.org", "news.example.org", "other.net", "notexample.org", "docs.rs"]


def fifteen_results(q: str) -> dict[str, Any]:
    """What the stand-in SearXNG answers: 15 results cycling through :data:`HOSTS`, each with a 3000-character
    snippet."""
    results = [
        {
            "title": f"Result {i}",
            "url": f"https://{HOSTS[(i - 1) % len(HOSTS)]}/page/{i}",
            "content": f"{i}:" + "x" * 3000,
            "engine": "stand-in",
        }
        for i in range(1, 16)
    ]
    return {"query": q, "results": results}


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend() -> Iterator[SearxStandIn]:
    b = SearxStandIn(fifteen_results)
    yield b
    b.close()


@pytest.fixture(scope="module")
def serve(
    chat_server: ScriptedChatServer, backend: SearxStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve"), "--search-url", backend.url) as s:
        yield s


@pytest.fixture
def client(serve: Serve, chat_server: ScriptedChatServer, backend: SearxStandIn) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    backend.requests.clear()
    oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=60)
    yield oai
    oai.close()


def script_search(chat_server: ScriptedChatServer, query: str) -> None:
    chat_server.script(
        [
            {"tool_calls": [{"name": "web_search", "arguments": {"query": query}, "id": "call_ws"}]},
            {"text": "Found it."},
        ]
    )


def model_read(chat_server: ScriptedChatServer) -> dict[str, Any]:
    """What the model read from its search (the tool message of the second inference call)."""
    [seen] = [m["content"] for m in chat_server.requests[1]["messages"] if m["role"] == "tool"]
    got: dict[str, Any] = json.loads(seen)
    return got


def streamed(client: openai.OpenAI, tool: dict[str, Any], **kwargs: Any) -> Response:
    events = list(client.responses.create(model=MODEL, stream=True, input="Search", tools=[tool], **kwargs))  # type: ignore[list-item]
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output_text == "Found it."
    return final  # type: ignore[no-any-return]


def host(url: str) -> str:
    return urlsplit(url).hostname or ""


# --------------------------------------------------------------------------------------------------------------
# filters.allowed_domains


def test_allowed_domains_reach_the_backend_as_site_terms_and_filter_the_results(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn
) -> None:
    script_search(chat_server, "rust news")
    tool = {"type": "web_search", "filters": {"allowed_domains": ["Example.org"]}}
    final = streamed(client, tool)
    assert backend.queries == [{"q": ["rust news site:example.org"], "format": ["json"]}]
    read = model_read(chat_server)
    assert read["query"] == "rust news"  # the model's query, without the site: term
    # Only example.org and its subdomains, never notexample.org; still the medium size's five results.
    assert [host(r["url"]) for r in read["results"]] == [
        "example.org",
        "news.example.org",
        "example.org",
        "news.example.org",
        "example.org",
    ]
    echoed = final.tools[0].model_dump()
    assert echoed["filters"] == {"allowed_domains": ["example.org"]}


def test_several_allowed_domains_are_or_ed(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn
) -> None:
    script_search(chat_server, "serde")
    client.responses.create(
        model=MODEL,
        input="Search",
        tools=[{"type": "web_search", "filters": {"allowed_domains": ["docs.rs", "other.net"]}}],
    )
    assert backend.queries == [{"q": ["serde (site:docs.rs OR site:other.net)"], "format": ["json"]}]
    assert {host(r["url"]) for r in model_read(chat_server)["results"]} == {"docs.rs", "other.net"}


@pytest.mark.parametrize(
    ("filters", "param"),
    [
        ("example.org", "tools[0].filters"),
        ({"allowed_domains": "example.org"}, "tools[0].filters.allowed_domains"),
        ({"allowed_domains": ["example.org", 3]}, "tools[0].filters.allowed_domains[1]"),
        ({"allowed_domains": ["https://example.org/"]}, "tools[0].filters.allowed_domains[0]"),
        ({"allowed_domains": [f"d{i}.org" for i in range(101)]}, "tools[0].filters.allowed_domains"),
    ],
)
def test_bad_allowed_domains_are_refused_naming_the_field(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn, filters: Any, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Search", tools=[{"type": "web_search", "filters": filters}])  # type: ignore[list-item]
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param, caught.value.body  # type: ignore[index]
    assert chat_server.requests == [] and backend.queries == []


# --------------------------------------------------------------------------------------------------------------
# user_location


def test_the_users_country_becomes_searxngs_language(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn
) -> None:
    script_search(chat_server, "Wetter")
    location = {
        "type": "approximate",
        "country": "de",
        "city": "Berlin",
        "region": "Berlin",
        "timezone": "Europe/Berlin",
    }
    final = streamed(client, {"type": "web_search", "user_location": location})
    # The city and region are not added to the query (OpenAI documents no such thing).
    assert backend.queries == [{"q": ["Wetter"], "format": ["json"], "language": ["de-DE"]}]
    echoed = final.tools[0].model_dump()
    assert echoed["user_location"] == {**location, "country": "DE"}


def test_a_country_without_a_mapping_sends_no_language(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn
) -> None:
    script_search(chat_server, "penguins")
    client.responses.create(
        model=MODEL,
        input="Search",
        tools=[{"type": "web_search", "user_location": {"type": "approximate", "country": "AQ"}}],
    )
    assert backend.queries == [{"q": ["penguins"], "format": ["json"]}]


@pytest.mark.parametrize(
    ("location", "param"),
    [
        ("Berlin", "tools[0].user_location"),
        ({"type": "exact", "country": "DE"}, "tools[0].user_location.type"),
        ({"type": "approximate", "country": 49}, "tools[0].user_location.country"),
        ({"type": "approximate", "city": 12}, "tools[0].user_location.city"),
    ],
)
def test_a_bad_user_location_is_refused_naming_the_field(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn, location: Any, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Search", tools=[{"type": "web_search", "user_location": location}])  # type: ignore[list-item]
    assert caught.value.body["param"] == param, caught.value.body  # type: ignore[index]
    assert chat_server.requests == [] and backend.queries == []


# --------------------------------------------------------------------------------------------------------------
# search_context_size


@pytest.mark.parametrize(("size", "results", "chars"), [("low", 3, 400), (None, 5, 1000), ("high", 10, 2000)])
def test_the_context_size_sets_how_much_the_model_reads(
    client: openai.OpenAI,
    chat_server: ScriptedChatServer,
    backend: SearxStandIn,
    size: str | None,
    results: int,
    chars: int,
) -> None:
    script_search(chat_server, "llamas")
    tool: dict[str, Any] = {"type": "web_search"}
    if size is not None:
        tool["search_context_size"] = size
    final = streamed(client, tool)
    read = model_read(chat_server)["results"]
    assert [r["url"] for r in read] == [
        f"https://{HOSTS[(i - 1) % len(HOSTS)]}/page/{i}" for i in range(1, results + 1)
    ]
    assert all(len(r["content"]) == chars for r in read)
    assert read[0]["content"].startswith("1:x")
    assert final.tools[0].model_dump()["search_context_size"] == (size or "medium")


def test_a_bad_context_size_is_refused_naming_the_field(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model=MODEL, input="Search", tools=[{"type": "web_search", "search_context_size": "max"}]
        )  # type: ignore[list-item]
    assert caught.value.body["param"] == "tools[0].search_context_size", caught.value.body  # type: ignore[index]
    assert chat_server.requests == []


# --------------------------------------------------------------------------------------------------------------
# include: ["web_search_call.action.sources"]


def sources_of(response: Response) -> list[str] | None:
    call = response.output[0]
    assert call.type == "web_search_call" and call.status == "completed"
    action = call.action.model_dump(exclude_none=True)
    assert action["type"] == "search" and action["query"] == "llamas"
    sources = action.get("sources")
    return None if sources is None else [s["url"] for s in sources if s["type"] == "url"]


def test_sources_are_shown_when_include_asks(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    read_urls = [f"https://{HOSTS[(i - 1) % len(HOSTS)]}/page/{i}" for i in (1, 2, 6)]
    tool = {"type": "web_search", "search_context_size": "low", "filters": {"allowed_domains": ["example.org"]}}
    script_search(chat_server, "llamas")
    final = streamed(client, tool, include=["web_search_call.action.sources"])
    # The sources are the results the model read (allowed, capped), in order.
    assert [r["url"] for r in model_read(chat_server)["results"]] == read_urls
    assert sources_of(final) == read_urls
    assert sources_of(client.responses.retrieve(final.id)) == read_urls
    # Not streamed, the same.
    chat_server.reset()
    script_search(chat_server, "llamas")
    plain = client.responses.create(
        model=MODEL, input="Search", tools=[tool], include=["web_search_call.action.sources"]
    )  # type: ignore[list-item]
    assert sources_of(plain) == read_urls


def test_sources_are_left_out_without_include(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    script_search(chat_server, "llamas")
    final = streamed(client, {"type": "web_search"})
    assert len(model_read(chat_server)["results"]) == 5
    assert sources_of(final) is None
    # The record keeps what the answer showed: GET /v1/responses/{id} answers it as is.
    assert sources_of(client.responses.retrieve(final.id)) is None


# --------------------------------------------------------------------------------------------------------------
# url_citation annotations


def cited(text: str, annotations: list[Any]) -> list[tuple[str, str, str]]:
    """Each url_citation (a model or a dict) as (the text it spans, its url, its title)."""
    out = []
    for a in annotations:
        a = a if isinstance(a, dict) else a.model_dump()
        assert a["type"] == "url_citation"
        out.append((text[a["start_index"] : a["end_index"]], a["url"], a["title"]))
    return out


@pytest.mark.parametrize("chunk_size", [3, 1000])
def test_links_to_search_results_become_url_citations(
    client: openai.OpenAI, chat_server: ScriptedChatServer, chunk_size: int
) -> None:
    answer = (
        "Llamas hum ([Result 1](https://example.org/page/1)). Not a result: [x](https://other.net/page/99); "
        "not read: [y](https://example.org/page/11). Also «[Result 6](https://example.org/page/6)»."
    )
    chat_server.script(
        [
            {"tool_calls": [{"name": "web_search", "arguments": {"query": "llamas"}, "id": "call_ws"}]},
            {"text": answer, "chunk_size": chunk_size},
        ]
    )
    tool = {"type": "web_search", "search_context_size": "low", "filters": {"allowed_domains": ["example.org"]}}
    events = list(client.responses.create(model=MODEL, stream=True, input="Search", tools=[tool]))  # type: ignore[list-item]
    final = validate_stream(events, response_cls=Response, schema_host="full")
    # The model was asked to cite as markdown links, and read results 1, 2 and 6 (page/11 was not read).
    read = model_read(chat_server)
    assert "markdown link" in read["instructions"]
    assert [r["url"] for r in read["results"]] == [
        f"https://{h}/page/{i}" for h, i in ((HOSTS[0], 1), (HOSTS[1], 2), (HOSTS[0], 6))
    ]
    message = final.output[1]
    assert message.type == "message"
    part = message.content[0]
    assert part.type == "output_text" and part.text == answer
    expected = [
        ("[Result 1](https://example.org/page/1)", "https://example.org/page/1", "Result 1"),
        ("[Result 6](https://example.org/page/6)", "https://example.org/page/6", "Result 6"),
    ]
    assert cited(part.text, part.annotations) == expected
    # Announced while streaming, inside the open part, before its done; the deltas still make up the text.
    types = [e.type for e in events]
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [(e.annotation_index, e.content_index, e.output_index) for e in added] == [(0, 0, 1), (1, 0, 1)]
    assert cited(answer, [e.annotation for e in added]) == expected
    done = types.index("response.output_text.done")
    assert all(types.index("response.content_part.added") < events.index(e) < done for e in added)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == answer
    # Stored with them.
    again = client.responses.retrieve(final.id).output[1]
    assert again.type == "message" and cited(answer, again.content[0].annotations) == expected  # type: ignore[union-attr]


def test_url_citations_not_streamed(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    answer = "See [Result 2](https://news.example.org/page/2)."
    chat_server.script(
        [
            {"tool_calls": [{"name": "web_search", "arguments": {"query": "llamas"}, "id": "call_ws"}]},
            {"text": answer},
        ]
    )
    final = client.responses.create(model=MODEL, input="Search", tools=[{"type": "web_search"}])
    part = final.output[1].content[0]  # type: ignore[union-attr]
    assert part.text == answer  # type: ignore[union-attr]
    assert cited(answer, part.annotations) == [  # type: ignore[union-attr]
        ("[Result 2](https://news.example.org/page/2)", "https://news.example.org/page/2", "Result 2")
    ]
