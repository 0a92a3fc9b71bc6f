"""The Vector stores API (``/v1/vector_stores``, openai-python's ``client.vector_stores``, its ``files`` and
``search``) and the search ``file_search`` runs.

Ingestion (adding a file): the request writes the vector store file ``in_progress`` and answers; a task of the
server (``INGESTIONS`` files at once) decodes the file as UTF-8 text (anything else fails the vector store file,
``last_error.code`` ``unsupported_file``), cuts it into chunks (``chunking_strategy``: static, or auto = OpenAI's
static defaults, 800 tokens with 400 overlapping; a token is estimated as 4 characters, the upstream's tokenizer
being unknown here), has each chunk embedded by the upstream's ``POST /embeddings`` (``--embedding-model``, routed
as chat models are) in batches of ``EMBED_BATCH``, and writes the file's end and its chunks in one transaction
(``completed``), if the row is still that run's. A failing embeddings call fails the file (``server_error``) and
writes no chunk. Search: the query is embedded the same way and every chunk of the stores' completed files (after
the attribute ``filters``) is scored by cosine similarity in the Rust core (``top_k_cosine``, brute force) over
the store's embeddings, kept in memory between searches while the store's chunks are unchanged (``MatrixCache``).
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import json
import logging
import re
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .._core import top_k_cosine
from ._app import ApiError, _answer, _upstream_status
from ._files import new_id, page
from ._store import STOPPED_INGESTION, NotFound
from ._upstream import UpstreamFailure

if TYPE_CHECKING:
    from ._app import App, Receive, Scope, Send

logger = logging.getLogger("responses_rs.server")

CHARS_PER_TOKEN = 4  # the token estimate (characters / 4), as OGX's builtin does without a tokenizer
DEFAULT_CHUNK_TOKENS = 800  # OpenAI's static defaults (auto)
DEFAULT_OVERLAP_TOKENS = 400
EMBED_BATCH = 64  # chunks per embeddings request
MAX_RESULTS = 50
DEFAULT_RESULTS = 10
_SPACE = re.compile(r"\s")
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")


class EmbeddingFailure(Exception):
    """The upstream's embeddings call failed (or answered something that is not embeddings)."""


# ----------------------------------------------------------------------------------------------------
# Checking requests


def _bad(field: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, f"{field}: {message}", param=field)


def chunking(value: Any, field: str = "chunking_strategy") -> dict[str, Any]:
    """The chunking strategy as OpenAI echoes it: always ``static`` with its two sizes."""
    if value is None or (isinstance(value, dict) and value.get("type") == "auto"):
        size, overlap = DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
    elif isinstance(value, dict) and value.get("type") == "static":
        static = value.get("static")
        if not isinstance(static, dict):
            raise _bad(f"{field}.static", "required for a static strategy")
        size = static.get("max_chunk_size_tokens")
        overlap = static.get("chunk_overlap_tokens")
        if not isinstance(size, int) or isinstance(size, bool) or not 100 <= size <= 4096:
            raise _bad(f"{field}.static.max_chunk_size_tokens", "must be an integer from 100 to 4096")
        if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap <= size // 2:
            raise _bad(f"{field}.static.chunk_overlap_tokens", "must be an integer from 0 to half the chunk size")
    else:
        raise _bad(f"{field}.type", "must be 'auto' or 'static'")
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise _bad(field, "must be an object of at most 16 keys")
    for key, item in value.items():
        if len(key) > 64:
            raise _bad(field, f"key '{key[:64]}...' is longer than 64 characters")
        if isinstance(item, str):
            if len(item) > 512:
                raise _bad(f"{field}.{key}", "a string of at most 512 characters")
        elif not isinstance(item, (bool, int, float)):
            raise _bad(f"{field}.{key}", "must be a string, a number or a boolean")
    return value


def metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise _bad("metadata", "must be an object of at most 16 string values")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 64 or len(item) > 512:
            raise _bad(f"metadata.{key}", "keys of at most 64 and string values of at most 512 characters")
    return value


def check_filter(value: Any, field: str = "filters") -> None:
    """A comparison (``{type: eq|ne|gt|gte|lt|lte|in|nin, key, value}``) or compound (``{type: and|or,
    filters}``) filter, as OpenAI documents them."""
    if not isinstance(value, dict):
        raise _bad(field, "must be a comparison or compound filter object")
    kind = value.get("type")
    if kind in ("and", "or"):
        filters = value.get("filters")
        if not isinstance(filters, list) or not filters:
            raise _bad(f"{field}.filters", "must be a non-empty list of filters")
        for i, inner in enumerate(filters):
            check_filter(inner, f"{field}.filters[{i}]")
    elif kind in COMPARISONS:
        if not isinstance(value.get("key"), str):
            raise _bad(f"{field}.key", "must be a string")
        operand = value.get("value")
        if kind in ("in", "nin"):
            if not isinstance(operand, list) or not all(isinstance(v, (str, int, float)) for v in operand):
                raise _bad(f"{field}.value", f"must be a list of strings or numbers for '{kind}'")
        elif not isinstance(operand, (str, int, float, bool)):
            raise _bad(f"{field}.value", "must be a string, a number or a boolean")
    else:
        raise _bad(f"{field}.type", f"must be one of {', '.join(COMPARISONS)}, and, or")


def matches(flt: dict[str, Any], attrs: dict[str, Any]) -> bool:
    """Does a file with these attributes pass the (checked) filter? A comparison on an attribute the file lacks is
    false (``ne``/``nin`` included); ordering compares two numbers or two strings, anything else is false."""
    kind = flt["type"]
    if kind == "and":
        return all(matches(f, attrs) for f in flt["filters"])
    if kind == "or":
        return any(matches(f, attrs) for f in flt["filters"])
    if flt["key"] not in attrs:
        return False
    have, want = attrs[flt["key"]], flt["value"]
    if kind == "eq":
        return bool(have == want and isinstance(have, bool) == isinstance(want, bool))
    if kind == "ne":
        return not (have == want and isinstance(have, bool) == isinstance(want, bool))
    if kind in ("in", "nin"):
        return (have in want and not isinstance(have, bool)) == (kind == "in")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (have, want))
    if not numbers and not (isinstance(have, str) and isinstance(want, str)):
        return False
    return {"gt": have > want, "gte": have >= want, "lt": have < want, "lte": have <= want}[kind]


def search_options(
    filters: Any, max_num_results: Any, ranking_options: Any, prefix: str = ""
) -> tuple[dict[str, Any] | None, int, float]:
    """(filters, how many results, the score threshold) of a search or of a file_search tool, checked."""
    if filters is not None:
        check_filter(filters, f"{prefix}filters")
    if max_num_results is None:
        k = DEFAULT_RESULTS
    elif isinstance(max_num_results, int) and not isinstance(max_num_results, bool) and 1 <= max_num_results <= 50:
        k = max_num_results
    else:
        raise _bad(f"{prefix}max_num_results", f"must be an integer from 1 to {MAX_RESULTS}")
    threshold = 0.0
    if ranking_options is not None:
        if not isinstance(ranking_options, dict):
            raise _bad(f"{prefix}ranking_options", "must be an object")
        ranker = ranking_options.get("ranker")
        if ranker is not None and ranker not in ("auto", "default-2024-11-15", "default_2024_08_21", "none"):
            raise _bad(f"{prefix}ranking_options.ranker", "must be 'auto', 'default-2024-11-15' or 'none'")
        value = ranking_options.get("score_threshold")
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise _bad(f"{prefix}ranking_options.score_threshold", "must be a number from 0 to 1")
            threshold = float(value)
    return filters, k, threshold


# ----------------------------------------------------------------------------------------------------
# Chunking and embeddings


def chunk_text(text: str, strategy: dict[str, Any]) -> list[str]:
    """Windows of ``max_chunk_size_tokens`` (estimated: 4 characters a token) overlapping by
    ``chunk_overlap_tokens``; a window ends at its last whitespace when that is past its middle, so words are not
    cut (nor does the overlap start inside one)."""
    static = strategy["static"]
    size = static["max_chunk_size_tokens"] * CHARS_PER_TOKEN
    overlap = static["chunk_overlap_tokens"] * CHARS_PER_TOKEN
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start + size // 2:
                end = cut
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        following = max(end - overlap, start + 1)
        if not text[following - 1].isspace():  # the overlap starts at a word, not inside one
            space = _SPACE.search(text, following, end)
            if space is not None:
                following = space.end()
        start = following
    return chunks


def _unit_f32(vector: list[float]) -> bytes:
    """A vector as unit-length little-endian float32 bytes (as stored)."""
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    values = array.array("f", (v / norm for v in vector))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


async def embed(app: App, texts: list[str]) -> list[bytes]:
    """Each text's embedding (unit float32 bytes) from the upstream serving ``--embedding-model``, in batches."""
    model = app.config.embedding_model
    if model is None:
        raise EmbeddingFailure("no --embedding-model is configured")
    try:
        upstream, name = await app.router.route(model)
    except ApiError as exc:  # several upstreams, none listing it
        raise EmbeddingFailure(f"--embedding-model: {exc}") from None
    out: list[bytes] = []
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        payload = json.dumps({"model": name, "input": batch, "encoding_format": "float"}).encode()
        try:
            async with app._slots(upstream):
                response = await upstream.request("POST", "/embeddings", payload)
                try:
                    raw = await response.body(256 << 20)
                finally:
                    response.close()
        except UpstreamFailure as exc:
            raise EmbeddingFailure(f"the embeddings call failed: {exc}") from None
        if response.status != 200:
            raise EmbeddingFailure(f"the embeddings call failed: {_upstream_status(response.status, raw)}")
        try:
            data = sorted(json.loads(raw)["data"], key=lambda d: d["index"])
            vectors = [_vector(d["embedding"]) for d in data]
            if len(vectors) != len(batch):
                raise ValueError(f"{len(vectors)} embeddings for {len(batch)} inputs")
            out.extend(_unit_f32(v) for v in vectors)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise EmbeddingFailure(f"the embeddings answer is not OpenAI's embeddings list: {exc}") from None
    if len({len(v) for v in out}) > 1:
        raise EmbeddingFailure("the embeddings answer has vectors of different dimensions")
    return out


def _vector(value: Any) -> list[float]:
    """An embedding as the upstream sent it: a list of numbers, or (a server that answers base64 whatever it is
    asked) base64 of little-endian float32."""
    if isinstance(value, str):
        raw = base64.b64decode(value, validate=True)
        if not raw or len(raw) % 4:
            raise ValueError("a base64 embedding that is not float32 values")
        values = array.array("f", raw)
        if sys.byteorder == "big":
            values.byteswap()
        return list(values)
    if not isinstance(value, list) or not value or not all(isinstance(x, (int, float)) for x in value):
        raise ValueError("an embedding that is not a list of numbers")
    return value


def require_embeddings(app: App, field: str, what: str = "vector store search and ingestion") -> None:
    if app.config.embedding_model is None:
        raise ApiError(
            400,
            f"{field}: {what} needs embeddings, and this server has no embedding model (start it with"
            " --embedding-model NAME or RESPONSES_RS_EMBEDDING_MODEL)",
            param=field,
            code="unsupported_parameter",
        )


# ----------------------------------------------------------------------------------------------------
# Objects


def store_object(row: tuple[Any, ...], files: list[tuple[Any, ...]]) -> dict[str, Any]:
    id, created_at, name, meta = row
    counts = _counts(files)
    return {
        "id": id,
        "object": "vector_store",
        "created_at": created_at,
        "name": name,
        "metadata": json.loads(meta),
        "usage_bytes": sum(f[7] for f in files),
        "file_counts": counts,
        "status": "in_progress" if counts["in_progress"] else "completed",
        "last_active_at": max([created_at, *(f[2] for f in files)]),
        "expires_after": None,
        "expires_at": None,
    }


def file_object(row: tuple[Any, ...]) -> dict[str, Any]:
    store_id, file_id, created_at, status, attrs, strategy, last_error, usage = row
    return {
        "id": file_id,
        "object": "vector_store.file",
        "created_at": created_at,
        "vector_store_id": store_id,
        "status": status,
        "usage_bytes": usage,
        "attributes": json.loads(attrs),
        "chunking_strategy": json.loads(strategy),
        "last_error": json.loads(last_error) if last_error else None,
    }


# ----------------------------------------------------------------------------------------------------
# Ingestion and search


INGESTIONS = 4  # files embedded at once by one server (each also takes the upstream slots it calls with)


class Ingestion:
    """A file being added to a vector store by this server: its task and the run id its row carries."""

    __slots__ = ("id", "store_id", "file_id", "task")

    def __init__(self, store_id: str, file_id: str) -> None:
        self.id = uuid.uuid4().hex
        self.store_id = store_id
        self.file_id = file_id
        self.task: asyncio.Task[None] | None = None


async def ingest(
    app: App, owner: str, store_id: str, file_id: str, attrs: dict[str, Any], strategy: dict[str, Any]
) -> dict[str, Any]:
    """Start adding a file to a vector store: its row is written `in_progress` (replacing an earlier one and its
    chunks) and a task of this server reads, chunks and embeds it, then writes the end (`_run_ingestion`). The row
    as written. NotFound when the file (or the store) is not this owner's."""
    await app.store.file(file_id, owner)
    run = Ingestion(store_id, file_id)
    row = (store_id, file_id, int(time.time()), "in_progress", json.dumps(attrs), json.dumps(strategy), None, 0)
    await app.store.put_vector_store_file(owner, row, [], run.id)
    app.ingestions[run.id] = run
    run.task = asyncio.create_task(_run_ingestion(app, owner, run, strategy), name=f"responses-rs ingest {file_id}")
    return file_object(row)


async def _run_ingestion(app: App, owner: str, run: Ingestion, strategy: dict[str, Any]) -> None:
    """Read, chunk and embed the file, then write its end: `completed` with its chunks, or `failed` with
    `last_error` (not text: `unsupported_file`; no text: `invalid_file`; the embeddings call failed, or anything
    else: `server_error`) and no chunk. Written only if the row is still this run's (`finish_vector_store_file`)."""
    try:
        try:
            async with app.ingestion_slots:
                chunks, error = await _chunks(app, owner, run, strategy)
        except NotFound:
            return  # the file was deleted meanwhile (and with it this row)
        except Exception as exc:
            logger.exception("responses-rs serve: adding %s to %s", run.file_id, run.store_id)
            chunks, error = [], {"code": "server_error", "message": f"{type(exc).__name__}: {exc}"}
        usage = sum(len(t.encode()) + len(e) for t, e in chunks)
        status, last_error = ("failed", json.dumps(error)) if error else ("completed", None)
        await app.store.finish_vector_store_file(run.store_id, run.file_id, run.id, status, last_error, usage, chunks)
    except asyncio.CancelledError:
        raise  # batch cancelled (the row is marked), or the server is stopping (`abandon_ingestions` marks it)
    except Exception:
        logger.exception("responses-rs serve: storing %s of %s", run.file_id, run.store_id)
    finally:
        if app.ingestions.get(run.id) is run:
            del app.ingestions[run.id]


async def _chunks(
    app: App, owner: str, run: Ingestion, strategy: dict[str, Any]
) -> tuple[list[tuple[str, bytes]], dict[str, str] | None]:
    """The file's chunks with their embeddings, or why it cannot be added (`last_error`)."""
    content = await app.store.file_content(run.file_id, owner)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        return [], {"code": "unsupported_file", "message": "the file is not UTF-8 text (text, markdown, json, code)"}
    pieces = chunk_text(text, strategy)
    if not pieces:
        return [], {"code": "invalid_file", "message": "the file has no text"}
    try:
        return list(zip(pieces, await embed(app, pieces), strict=True)), None
    except EmbeddingFailure as exc:
        logger.warning("responses-rs serve: adding %s to %s failed: %s", run.file_id, run.store_id, exc)
        return [], {"code": "server_error", "message": str(exc)}


async def abandon_ingestions(app: App) -> None:
    """At shutdown: the files this server is still adding are stopped and stored `failed`."""
    runs = list(app.ingestions.values())
    app.ingestions.clear()
    for run in runs:
        if run.task is not None:
            run.task.cancel()
    for run in runs:
        try:
            await app.store.finish_vector_store_file(
                run.store_id, run.file_id, run.id, "failed", STOPPED_INGESTION, 0, []
            )
        except Exception:
            logger.exception("responses-rs serve: marking %s of %s failed", run.file_id, run.store_id)


class Matrix:
    """A vector store's chunks as the search scores them: their (seq, file_id, filename, attributes JSON) and their
    embeddings as one contiguous float32 buffer (`dim` values a row)."""

    __slots__ = ("stamp", "rows", "buffer", "dim")

    def __init__(self, stamp: tuple[int, int], chunks: list[tuple[Any, ...]]) -> None:
        self.stamp = stamp
        self.rows = [chunk[:4] for chunk in chunks]
        self.buffer = b"".join(chunk[4] for chunk in chunks)
        self.dim = len(chunks[0][4]) // 4 if chunks else 0
        if any(len(chunk[4]) != self.dim * 4 for chunk in chunks):
            raise EmbeddingFailure(
                "the vector store's chunks differ in dimension (was --embedding-model changed?): re-add its files"
            )


class MatrixCache:
    """The vector stores' matrices this server searched lately, up to `max_bytes` of embeddings (the least recently
    searched dropped first). Each search reads the store's chunk stamp (one indexed count): a matrix whose stamp
    changed (a file added or deleted, on any server of the database) is read again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: dict[str, Matrix] = {}  # in least recently used order

    async def get(self, app: App, store_id: str, owner: str) -> Matrix | None:
        """The store's matrix as it stands; None when the store is not this owner's."""
        stamp = await app.store.chunk_stamp(store_id, owner)
        if stamp is None:
            return None
        matrix = self._entries.pop(store_id, None)
        if matrix is None or matrix.stamp != stamp:
            matrix = Matrix(stamp, await app.store.chunks(store_id, owner))
        self._entries[store_id] = matrix
        total = sum(len(m.buffer) for m in self._entries.values())
        for key in list(self._entries):
            if total <= self.max_bytes or key == store_id:
                break
            total -= len(self._entries.pop(key).buffer)
        return matrix


CACHE_BYTES = 256 << 20  # embeddings kept in memory for search, all vector stores together


def _cache(app: App) -> MatrixCache:
    if app.vector_cache is None:
        app.vector_cache = MatrixCache(CACHE_BYTES)
    return app.vector_cache


async def search(
    app: App,
    owner: str,
    store_ids: list[str],
    queries: list[str],
    filters: dict[str, Any] | None,
    k: int,
    threshold: float,
) -> list[dict[str, Any]]:
    """The `k` best chunks of these stores for the queries (a chunk's score: its best cosine similarity to any of
    them), at least `threshold`, best first, as OpenAI's search results. EmbeddingFailure when the query cannot be
    embedded."""
    matrices: list[tuple[Matrix, list[int] | None]] = []
    for store_id in dict.fromkeys(store_ids):
        matrix = await _cache(app).get(app, store_id, owner)
        if matrix is None or not matrix.rows:
            continue
        kept: list[int] | None = None  # rows passing the filters (None: every row)
        if filters is not None:
            passes: dict[str, bool] = {}
            kept = []
            for i, row in enumerate(matrix.rows):
                if row[3] not in passes:
                    passes[row[3]] = matches(filters, json.loads(row[3]))
                if passes[row[3]]:
                    kept.append(i)
            if not kept:
                continue
        matrices.append((matrix, kept))
    if not matrices:
        return []
    vectors = await embed(app, queries)
    best: dict[tuple[int, int], tuple[float, tuple[Any, ...]]] = {}  # (store, row) -> (score, row)
    for n, (matrix, kept) in enumerate(matrices):
        width = matrix.dim * 4
        if kept is None:
            buffer = matrix.buffer
        else:
            view = memoryview(matrix.buffer)
            buffer = b"".join(view[i * width : (i + 1) * width] for i in kept)
        for vector in vectors:
            if len(vector) != width:
                raise EmbeddingFailure(
                    f"the query's embedding has {len(vector) // 4} dimensions, the vector store's chunks"
                    f" {matrix.dim} (was --embedding-model changed?)"
                )
            for index, score in top_k_cosine(vector, buffer, matrix.dim, k, threshold):
                row = index if kept is None else kept[index]
                if score > best.get((n, row), (-2.0,))[0]:
                    best[(n, row)] = (score, matrix.rows[row])
    ranked = sorted(best.values(), key=lambda hit: (-hit[0], hit[1][0]))[:k]
    texts = await app.store.chunk_texts([row[0] for _, row in ranked])
    return [
        {
            "file_id": row[1],
            "filename": row[2],
            "score": round(score, 6),
            "attributes": json.loads(row[3]),
            "content": [{"type": "text", "text": texts[row[0]]}],
        }
        for score, row in ranked
        if row[0] in texts  # (a chunk deleted meanwhile is left out)
    ]


async def check_visible(app: App, owner: str, store_ids: list[str], field: str) -> None:
    """404 naming the field when one of these vector stores is not this owner's."""
    for i, store_id in enumerate(store_ids):
        try:
            await app.store.vector_store(store_id, owner)
        except NotFound:
            raise ApiError(
                404, f"{field}[{i}]: no vector store with id '{store_id}'", param=f"{field}[{i}]", code="not_found"
            ) from None


# ----------------------------------------------------------------------------------------------------
# Routes


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _file_ids(value: Any, field: str, most: int = 500) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or len(value) > most:
        raise _bad(field, f"must be a list of at most {most} file ids")
    return list(dict.fromkeys(value))


async def _store_answer(app: App, owner: str, store_id: str) -> bytes:
    row = await app.store.vector_store(store_id, owner)
    return json.dumps(store_object(row, await app.store.vector_store_files(store_id, owner))).encode()


async def route(app: App, scope: Scope, receive: Receive, send: Send, owner: str) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    parts = path[len("/v1/vector_stores") :].strip("/").split("/")
    store_id = parts[0]
    if not store_id:
        if method == "POST":
            await _create(app, _json(await app.read_body(receive)), owner, send)
        elif method == "GET":
            rows = await app.store.vector_stores(owner)
            objects = [store_object(r, await app.store.vector_store_files(r[0], owner)) for r in rows]
            await _answer(send, 200, page(objects, scope))
        else:
            raise ApiError(405, f"{method} is not allowed on /v1/vector_stores")
        return
    try:
        if len(parts) == 1 and method == "GET":
            await _polled(send, await _store_answer(app, owner, store_id))
        elif len(parts) == 1 and method == "DELETE":
            await app.store.delete_vector_store(store_id, owner)
            body = {"id": store_id, "object": "vector_store.deleted", "deleted": True}
            await _answer(send, 200, json.dumps(body).encode())
        elif parts[1:] == ["search"] and method == "POST":
            await _search(app, _json(await app.read_body(receive)), owner, store_id, send)
        elif parts[1:] == ["files"] and method == "POST":
            await _add_file(app, _json(await app.read_body(receive)), owner, store_id, send)
        elif parts[1:] == ["files"] and method == "GET":
            files = [file_object(r) for r in await app.store.vector_store_files(store_id, owner)]
            status = {k: v[-1] for k, v in _query_pairs(scope)}.get("filter")
            if status:
                files = [f for f in files if f["status"] == status]
            await _answer(send, 200, page(files, scope))
        elif len(parts) == 3 and parts[1] == "files" and method in ("GET", "DELETE"):
            await _file(app, owner, store_id, parts[2], method, send)
        elif len(parts) >= 2 and parts[1] == "file_batches":
            await _file_batches(app, scope, receive, send, owner, store_id, parts[2:])
        else:
            raise ApiError(404, f"no route {method} {path}", code="not_found")
    except NotFound:
        raise ApiError(404, f"No vector store found with id '{store_id}'.", code="not_found") from None


# How long the client's polling helpers (`create_and_poll`, `upload_and_poll`) wait between two looks, as OpenAI
# tells them (their default is a second).
POLL_AFTER_MS = b"100"


async def _polled(send: Send, body: bytes) -> None:
    """A 200 JSON answer the client polls: with `openai-poll-after-ms`."""
    headers = [(b"content-type", b"application/json"), (b"openai-poll-after-ms", POLL_AFTER_MS)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _query_pairs(scope: Scope) -> list[tuple[str, list[str]]]:
    return list(parse_qs(scope.get("query_string", b"").decode()).items())


async def _file(app: App, owner: str, store_id: str, file_id: str, method: str, send: Send) -> None:
    files = await app.store.vector_store_files(store_id, owner)
    row = next((r for r in files if r[1] == file_id), None)
    if row is None:
        raise ApiError(404, f"No file found with id '{file_id}' in vector store '{store_id}'.", code="not_found")
    if method == "GET":
        await _polled(send, json.dumps(file_object(row)).encode())
        return
    await app.store.delete_vector_store_file(store_id, owner, file_id)
    body = {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
    await _answer(send, 200, json.dumps(body).encode())


def _counts(files: list[tuple[Any, ...]]) -> dict[str, int]:
    counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
    for f in files:
        counts[f[3]] = counts.get(f[3], 0) + 1
    return {**counts, "total": len(files)}


def batch_object(row: tuple[Any, ...], store_id: str, files: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A file batch: its files' counts as they stand (a file removed from the store since is no longer counted)."""
    counts = _counts(files)
    return {
        "id": row[0],
        "object": "vector_store.files_batch",
        "created_at": row[1],
        "vector_store_id": store_id,
        "status": "in_progress" if counts["in_progress"] else "cancelled" if counts["cancelled"] else "completed",
        "file_counts": counts,
    }


async def _cancel_batch(app: App, store_id: str, file_ids: list[str]) -> None:
    """Cancel a batch's files still in progress: this server's runs are stopped, and every row still
    `in_progress` (whichever server runs it) becomes `cancelled`, which that run's end then leaves as it is."""
    wanted = set(file_ids)
    for run in list(app.ingestions.values()):
        if run.store_id == store_id and run.file_id in wanted and run.task is not None:
            del app.ingestions[run.id]
            run.task.cancel()
    await app.store.cancel_vector_store_files(store_id, file_ids)


async def _file_batches(
    app: App, scope: Scope, receive: Receive, send: Send, owner: str, store_id: str, rest: list[str]
) -> None:
    """`POST .../file_batches` (each file's ingestion started), `GET .../file_batches/{id}`,
    `POST .../file_batches/{id}/cancel` (its files still in progress become `cancelled`), `GET
    .../file_batches/{id}/files`."""
    method = scope["method"]
    if not rest and method == "POST":
        body = _json(await app.read_body(receive))
        if body.get("files") is not None and body.get("file_ids") is not None:
            raise _bad("files", "give either file_ids or files, not both")
        attrs = attributes(body.get("attributes"))
        strategy = chunking(body.get("chunking_strategy"))
        entries: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        if body.get("files") is not None:
            files = body["files"]
            if not isinstance(files, list) or not files or len(files) > 2000:
                raise _bad("files", "must be a list of 1 to 2000 {file_id, attributes, chunking_strategy} objects")
            for i, entry in enumerate(files):
                if not isinstance(entry, dict) or not isinstance(entry.get("file_id"), str):
                    raise _bad(f"files[{i}].file_id", "required: the id of an uploaded file")
                entries.append(
                    (
                        entry["file_id"],
                        attributes(entry.get("attributes"), f"files[{i}].attributes"),
                        chunking(entry.get("chunking_strategy"), f"files[{i}].chunking_strategy"),
                    )
                )
            field = "files"
        else:
            ids = _file_ids(body.get("file_ids"), "file_ids", 2000)
            if not ids:
                raise _bad("file_ids", "required: a list of 1 to 2000 file ids (or files)")
            entries = [(file_id, attrs, strategy) for file_id in ids]
            field = "file_ids"
        await app.store.vector_store(store_id, owner)
        require_embeddings(app, field)
        await _check_files(app, owner, [e[0] for e in entries], field)
        for file_id, file_attrs, file_strategy in entries:
            await ingest(app, owner, store_id, file_id, file_attrs, file_strategy)
        row = (new_id("vsfb_"), int(time.time()), json.dumps([e[0] for e in entries]))
        await app.store.put_file_batch(row[0], store_id, row[1], row[2])
    elif rest and (
        (len(rest) == 1 and method == "GET")
        or (rest[1:] == ["cancel"] and method == "POST")
        or (rest[1:] == ["files"] and method == "GET")
    ):
        try:
            row = await app.store.file_batch(rest[0], store_id, owner)
        except NotFound:
            await app.store.vector_store(store_id, owner)  # NotFound: the store's 404
            raise ApiError(
                404, f"No file batch found with id '{rest[0]}' in vector store '{store_id}'.", code="not_found"
            ) from None
        if rest[1:] == ["cancel"]:
            await _cancel_batch(app, store_id, json.loads(row[2]))
    else:
        raise ApiError(404, f"no route {method} {scope['path']}", code="not_found")
    batch_ids = set(json.loads(row[2]))
    files = [f for f in await app.store.vector_store_files(store_id, owner) if f[1] in batch_ids]
    if rest[1:] == ["files"]:
        objects = [file_object(f) for f in files]
        status = {k: v[-1] for k, v in _query_pairs(scope)}.get("filter")
        await _answer(send, 200, page([o for o in objects if not status or o["status"] == status], scope))
        return
    await _polled(send, json.dumps(batch_object(row, store_id, files)).encode())


async def _check_files(app: App, owner: str, file_ids: list[str], field: str) -> None:
    for i, file_id in enumerate(file_ids):
        try:
            await app.store.file(file_id, owner)
        except NotFound:
            raise ApiError(
                404, f"{field}[{i}]: no file with id '{file_id}'", param=f"{field}[{i}]", code="not_found"
            ) from None


async def _create(app: App, body: dict[str, Any], owner: str, send: Send) -> None:
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise _bad("name", "must be a string")
    meta = metadata(body.get("metadata"))
    file_ids = _file_ids(body.get("file_ids"), "file_ids")
    strategy = chunking(body.get("chunking_strategy"))
    if body.get("expires_after") is not None:
        raise ApiError(
            400,
            "expires_after: not supported by responses-rs serve",
            param="expires_after",
            code="unsupported_parameter",
        )
    if file_ids:
        require_embeddings(app, "file_ids")
        await _check_files(app, owner, file_ids, "file_ids")
    store_id = "vs_" + uuid.uuid4().hex
    await app.store.create_vector_store(store_id, owner, int(time.time()), name, json.dumps(meta))
    for file_id in file_ids:
        await ingest(app, owner, store_id, file_id, {}, strategy)
    await _answer(send, 200, await _store_answer(app, owner, store_id))


async def _add_file(app: App, body: dict[str, Any], owner: str, store_id: str, send: Send) -> None:
    await app.store.vector_store(store_id, owner)  # NotFound: 404 naming the store
    file_id = body.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        raise _bad("file_id", "required: the id of an uploaded file")
    attrs = attributes(body.get("attributes"))
    strategy = chunking(body.get("chunking_strategy"))
    require_embeddings(app, "file_id")
    try:
        await app.store.file(file_id, owner)
    except NotFound:
        raise ApiError(404, f"file_id: no file with id '{file_id}'", param="file_id", code="not_found") from None
    await _answer(send, 200, json.dumps(await ingest(app, owner, store_id, file_id, attrs, strategy)).encode())


async def _search(app: App, body: dict[str, Any], owner: str, store_id: str, send: Send) -> None:
    await app.store.vector_store(store_id, owner)  # NotFound: 404 naming the store
    query = body.get("query")
    queries = [query] if isinstance(query, str) else query
    if not isinstance(queries, list) or not queries or not all(isinstance(q, str) and q.strip() for q in queries):
        raise _bad("query", "must be a non-empty string or list of strings")
    filters, k, threshold = search_options(
        body.get("filters"), body.get("max_num_results"), body.get("ranking_options")
    )
    require_embeddings(app, "query")
    try:
        data = await search(app, owner, [store_id], queries, filters, k, threshold)
    except EmbeddingFailure as exc:
        raise ApiError(502, str(exc), code="upstream_error") from None
    body = {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": False,
        "next_page": None,
    }
    await _answer(send, 200, json.dumps(body).encode())


# ----------------------------------------------------------------------------------------------------
# file_search in POST /v1/responses


async def check_tool(app: App, owner: str, tool: dict[str, Any], index: int) -> None:
    """A `file_search` tool of a request, before anything runs: 400 naming the field, 404 for a vector store the
    caller cannot see."""
    require_embeddings(app, f"tools[{index}].type", "the file_search tool")
    ids = tool.get("vector_store_ids")
    field = f"tools[{index}].vector_store_ids"
    if not isinstance(ids, list) or not ids or not all(isinstance(v, str) for v in ids):
        raise _bad(field, "must be a non-empty list of vector store ids")
    search_options(tool.get("filters"), tool.get("max_num_results"), tool.get("ranking_options"), f"tools[{index}].")
    await check_visible(app, owner, ids, field)


async def perform(app: App, owner: str, action: Any) -> list[dict[str, Any]]:
    """The core's `file_search` action: one search page over every listed store (the core reads its `data`)."""
    _, query, store_ids, filters, max_num_results, ranking_options = action
    filters, k, threshold = search_options(filters, max_num_results, ranking_options)
    data = await search(app, owner, list(store_ids), [query], filters, k, threshold)
    return [{"object": "vector_store.search_results.page", "search_query": [query], "data": data}]
