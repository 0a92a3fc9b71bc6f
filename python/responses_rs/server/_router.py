"""Several upstreams: which one serves a model.

Each upstream's ``GET /models`` is read at start-up (``Router.refresh``) and again on a miss (a model no listing
names, at most once a second, concurrent misses sharing one refresh), and by every ``GET /v1/models`` (whose answer
is the union of the listings). A model goes to the first upstream (in ``--upstream`` order) that lists it; an alias
names a model on any upstream. With one upstream, a model its listing lacks still goes to it (it answers for
itself, as before there were several); with several, it is refused: 404 ``model_not_found``, ``param: model``.
An upstream whose listing fails keeps its previous listing (and is logged); the others still serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ._upstream import Upstream, UpstreamFailure

logger = logging.getLogger("responses_rs.server")

# A miss refreshes the listings at most this often (seconds): unknown models cannot hammer the upstreams.
REFRESH_INTERVAL = 1.0


class CallSlots:
    """The caps on concurrent upstream calls: each upstream's own (``--upstream-max``, when set), then all upstreams
    together (``--max-upstream``). ``async with slots(upstream):`` around every call; an upstream's own slot is
    taken first, so calls waiting for a busy upstream hold no slot of the others'."""

    def __init__(self, total: int) -> None:
        self._total = asyncio.Semaphore(total)

    @contextlib.asynccontextmanager
    async def __call__(self, upstream: Upstream) -> AsyncIterator[None]:
        if upstream.slots is None:
            async with self._total:
                yield
        else:
            async with upstream.slots, self._total:
                yield


class Router:
    def __init__(self, upstreams: list[Upstream], aliases: dict[str, str], slots: CallSlots) -> None:
        if not upstreams:
            raise ValueError("upstream: at least one is required")
        self.upstreams = upstreams
        self.aliases = aliases
        self._slots = slots  # the caps on concurrent upstream calls
        self._listings: list[list[dict[str, Any]] | None] = [None] * len(upstreams)
        self._owner: dict[str, Upstream] = {}
        self._refreshed = -float("inf")
        self._lock = asyncio.Lock()

    async def _list(self, upstream: Upstream) -> list[dict[str, Any]]:
        async with self._slots(upstream):
            response = await upstream.request("GET", "/models")
            try:
                raw = await response.body(4 << 20)
            finally:
                response.close()
        if response.status != 200:
            from ._app import _upstream_status

            raise _upstream_status(response.status, raw)
        try:
            data = json.loads(raw).get("data")
        except (ValueError, AttributeError):
            data = None
        if not isinstance(data, list):
            raise UpstreamFailure(f"{upstream.base_url}/models: not a model list")
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def refresh(self) -> list[BaseException | None]:
        """Read every upstream's listing (concurrently) and rebuild the model map. Per upstream: None, or why
        its listing failed (it keeps its previous one)."""
        results = await asyncio.gather(*(self._list(u) for u in self.upstreams), return_exceptions=True)
        failures: list[BaseException | None] = []
        for i, (upstream, result) in enumerate(zip(self.upstreams, results, strict=True)):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation
                logger.warning("responses-rs serve: listing the models of %s failed: %s", upstream.base_url, result)
                failures.append(result)
            else:
                self._listings[i] = result
                failures.append(None)
        owner: dict[str, Upstream] = {}
        for upstream, listing in zip(self.upstreams, self._listings, strict=True):
            for model in listing or ():
                owner.setdefault(model["id"], upstream)
        self._owner = owner
        self._refreshed = time.monotonic()
        return failures

    async def route(self, model: str) -> tuple[Upstream, str]:
        """The upstream serving `model` (a model id or an alias) and its name there."""
        target = self.aliases.get(model, model)
        upstream = self._owner.get(target)
        if upstream is not None:
            return upstream, target
        if len(self.upstreams) == 1:
            return self.upstreams[0], target
        async with self._lock:  # concurrent misses share one refresh
            if target not in self._owner and time.monotonic() - self._refreshed >= REFRESH_INTERVAL:
                await self.refresh()
        upstream = self._owner.get(target)
        if upstream is not None:
            return upstream, target
        from ._app import ApiError

        named = f"'{model}'" if target == model else f"'{model}' (an alias of '{target}')"
        raise ApiError(
            404,
            f"model: the model {named} does not exist on any upstream (GET /v1/models lists them)",
            param="model",
            code="model_not_found",
        )

    async def models(self) -> dict[str, Any]:
        """``GET /v1/models``: the union of the upstreams' listings (read now; a model listed by several once,
        as the upstream serving it lists it), then the aliases. Every listing failing is a 502."""
        failures = await self.refresh()
        if all(f is not None for f in failures):
            from ._app import ApiError

            raise ApiError(502, f"no upstream answered GET /models: {failures[0]}", code="upstream_error")
        data: list[dict[str, Any]] = []
        seen: set[str] = set()
        for listing in self._listings:
            for model in listing or ():
                if model["id"] not in seen:
                    seen.add(model["id"])
                    data.append(model)
        for alias in self.aliases:
            if alias not in seen:
                data.append({"id": alias, "object": "model", "created": 0, "owned_by": "responses-rs"})
        return {"object": "list", "data": data}

    def close(self) -> None:
        for upstream in self.upstreams:
            upstream.close()
