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

The tool's options (the core's ``search_options``) narrow the query: ``filters.allowed_domains`` become ``site:``
terms (SearXNG passes them to its engines, which understand them; at most :data:`MAX_SITE_TERMS` domains, more
are left to the filter alone), and ``user_location.country`` becomes SearXNG's ``language`` parameter
(:data:`COUNTRY_LANGUAGE`: the country's main language and the country, e.g. ``DE`` -> ``de-DE``, which engines
read as their region; a country not listed sends none, so the instance's default applies). ``city``, ``region``
and ``timezone`` are not sent: OpenAI documents them as hints to its own search, and SearXNG has no parameter for
them. The backend answers every result it has; the core keeps those from the allowed domains, as many and as long
as ``search_context_size`` allows, and that is what the model reads.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

# The results handed to the core per search, at most, and the characters of each result's snippet (the core
# cuts them further, by `search_context_size`: 3, 5 or 10 results of 400, 1000 or 2000 characters).
MAX_RESULTS = 50
MAX_SNIPPET = 4000
# `allowed_domains` up to this many become `site:` terms of the query; with more, only the core's filter applies.
MAX_SITE_TERMS = 10
# `user_location.country` (ISO 3166-1 alpha-2) -> SearXNG's `language` (the country's main language).
COUNTRY_LANGUAGE: dict[str, str] = {
    "AR": "es-AR", "AT": "de-AT", "AU": "en-AU", "BE": "nl-BE", "BG": "bg-BG", "BR": "pt-BR", "CA": "en-CA",
    "CH": "de-CH", "CL": "es-CL", "CN": "zh-CN", "CO": "es-CO", "CZ": "cs-CZ", "DE": "de-DE", "DK": "da-DK",
    "EE": "et-EE", "EG": "ar-EG", "ES": "es-ES", "FI": "fi-FI", "FR": "fr-FR", "GB": "en-GB", "GR": "el-GR",
    "HK": "zh-HK", "HR": "hr-HR", "HU": "hu-HU", "ID": "id-ID", "IE": "en-IE", "IL": "he-IL", "IN": "en-IN",
    "IT": "it-IT", "JP": "ja-JP", "KR": "ko-KR", "LT": "lt-LT", "LV": "lv-LV", "MX": "es-MX", "MY": "en-MY",
    "NL": "nl-NL", "NO": "nb-NO", "NZ": "en-NZ", "PE": "es-PE", "PH": "en-PH", "PL": "pl-PL", "PT": "pt-PT",
    "RO": "ro-RO", "RS": "sr-RS", "RU": "ru-RU", "SA": "ar-SA", "SE": "sv-SE", "SG": "en-SG", "SI": "sl-SI",
    "SK": "sk-SK", "TH": "th-TH", "TR": "tr-TR", "TW": "zh-TW", "UA": "uk-UA", "US": "en-US", "VN": "vi-VN",
    "ZA": "en-ZA",
}  # fmt: skip
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

    async def search(self, arguments: Any, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """One `web_search` call's arguments (``{"query": ...}``) and the tool's options (the core's
        ``search_options``) -> the core's tool result."""
        query = arguments.get("query") if isinstance(arguments, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise SearchFailure("web_search: query must be a non-empty string")
        params = search_params(query, options or {})
        try:
            async with asyncio.timeout(self.timeout):
                raw = await asyncio.to_thread(self._get, params)
        except TimeoutError:
            raise SearchFailure(f"the search backend did not answer within {self.timeout:g} s") from None
        return {"content": json.dumps({"query": query, "results": _results(raw)}, ensure_ascii=False)}

    def _get(self, params: dict[str, str]) -> bytes:
        request = urllib.request.Request(
            f"{self.url}?{urlencode(params)}",
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


def search_params(query: str, options: dict[str, Any]) -> dict[str, str]:
    """The SearXNG query parameters for `query` under the tool's options (see the module doc)."""
    domains = [d for d in options.get("allowed_domains") or [] if isinstance(d, str)]
    q = query
    if len(domains) == 1:
        q = f"{query} site:{domains[0]}"
    elif 1 < len(domains) <= MAX_SITE_TERMS:
        q = f"{query} ({' OR '.join(f'site:{d}' for d in domains)})"
    params = {"q": q, "format": "json"}
    location = options.get("user_location")
    country = location.get("country") if isinstance(location, dict) else None
    if isinstance(country, str) and country.upper() in COUNTRY_LANGUAGE:
        params["language"] = COUNTRY_LANGUAGE[country.upper()]
    return params


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
