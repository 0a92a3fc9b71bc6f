"""The `web_search` tool's backend: a SearXNG instance's JSON API (``--search-url``).

Why SearXNG: it is the most widely used self-hostable metasearch engine (one container, no account, no per-query
fee), and its JSON API is one plain GET: ``GET {url}/search?q=QUERY&format=json`` answers
``{"results": [{"title", "url", "content", ...}, ...]}``. Any service that answers that request in that shape
works (a proxy in front of a paid search API, say). The instance must allow the JSON format (``search.formats``
in its ``settings.yml`` lists ``json``). ``--search-key`` is sent as ``Authorization: Bearer KEY`` (for an
instance behind an authenticating proxy).

The core asks for the tool's definition (``get_tool``: answered with :data:`TOOL_DEF`, llama-stack's ``ToolDef``
shape) and, per call the model makes, for its I/O (``invoke_tool``: answered with a ``ToolInvocationResult``-shaped
dict whose ``content`` is what the model reads). A search that fails (unreachable, an error status, a timeout, an
answer that is not the JSON above) raises :class:`SearchFailure`; the caller feeds it to the core as that call's
failure. Searches are rare next to model calls, so this uses the standard library's client in a thread.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

# The results the model gets per search, at most, and the characters of each result's snippet.
MAX_RESULTS = 5
MAX_SNIPPET = 1000
# The answer's size at most (bytes).
MAX_BODY = 4 << 20

TOOL_DEF: dict[str, Any] = {
    "name": "web_search",
    "description": "Search the web for current information; returns the top results (title, URL, snippet).",
    "parameters": [
        {
            "name": "query",
            "parameter_type": "string",
            "description": "The search query",
            "required": True,
        }
    ],
}


class SearchFailure(Exception):
    """The search backend could not answer this search."""


class SearchBackend:
    def __init__(self, url: str, key: str | None = None, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"search_url: not an http(s) URL: {url!r}")
        if not timeout > 0:
            raise ValueError(f"search_timeout: must be positive, got {timeout!r}")
        self.url = url.rstrip("/")
        if not self.url.endswith("/search"):
            self.url += "/search"
        self.key = key
        self.timeout = timeout

    async def search(self, arguments: Any) -> dict[str, Any]:
        """One `web_search` call's arguments (``{"query": ...}``) -> the core's tool result."""
        query = arguments.get("query") if isinstance(arguments, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise SearchFailure("web_search: query must be a non-empty string")
        try:
            async with asyncio.timeout(self.timeout):
                raw = await asyncio.to_thread(self._get, query)
        except TimeoutError:
            raise SearchFailure(f"the search backend did not answer within {self.timeout:g} s") from None
        return {"content": json.dumps({"query": query, "results": _results(raw)}, ensure_ascii=False)}

    def _get(self, query: str) -> bytes:
        request = urllib.request.Request(
            f"{self.url}?{urlencode({'q': query, 'format': 'json'})}",
            headers={"Accept": "application/json", "User-Agent": "responses-rs"},
        )
        if self.key:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - http(s) checked
                body: bytes = answer.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            raise SearchFailure(f"the search backend answered HTTP {exc.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise SearchFailure(f"the search backend could not be reached: {exc}") from None
        if len(body) > MAX_BODY:
            raise SearchFailure("the search backend's answer is too large")
        return body


def _results(raw: bytes) -> list[dict[str, str]]:
    try:
        answer = json.loads(raw)
    except ValueError:
        raise SearchFailure("the search backend's answer is not JSON") from None
    listed = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(listed, list):
        raise SearchFailure("the search backend's answer has no `results` list")
    results = []
    for hit in listed:
        if not isinstance(hit, dict) or not isinstance(hit.get("url"), str):
            continue
        title, content = hit.get("title"), hit.get("content")
        results.append(
            {
                "title": title if isinstance(title, str) else "",
                "url": hit["url"],
                "content": content[:MAX_SNIPPET] if isinstance(content, str) else "",
            }
        )
        if len(results) == MAX_RESULTS:
            break
    return results
