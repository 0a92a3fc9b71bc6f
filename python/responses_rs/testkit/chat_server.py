"""A scripted, OpenAI-compatible Chat Completions server for tests and demos.

Why this exists
---------------
responses-rs implements the OpenAI *Responses* API on top of an inference
provider that speaks the *Chat Completions* API.  In production that provider
is a real model server (OpenAI, vLLM, Ollama, ...).  Tests, the README demo and
end-to-end runs of ``llama stack run`` must not depend on such a server, on
network access or on a GPU, yet they should still exercise the real HTTP path:
real sockets, real Server-Sent Events, the official ``openai`` client's own
parsing.  ``ScriptedChatServer`` stands in for that outside world.  It is a
genuine HTTP server (stdlib only: :mod:`http.server`, :mod:`json`,
:mod:`threading`) whose answers are *scripted*: the test decides what the
"model" says next, including tool calls, HTTP errors and broken streams.

Scripting
---------
The server keeps a FIFO queue of *turns*.  Every ``POST /v1/chat/completions``
pops one turn; when the queue is empty a default turn answers
``"ok: <text of the last user message>"`` (or, given ``default_turn=fn``, the
turn ``fn(request_body)``; ``trial_turn`` is the one ``responses-rs serve``
answers with when it has no upstream).  A turn is a dict (or a callable
``fn(request_body) -> dict`` evaluated when the request arrives):

``{"text": "hello world", "chunk_size": 3}``
    Assistant text, streamed as content deltas of ``chunk_size`` characters
    (default 4).
``{"text_pieces": ["Hi \\ud83d", "\\ude00!"]}``
    Assistant text streamed as exactly these content deltas (instead of ``text``
    in ``chunk_size`` pieces; the text is their concatenation).  A piece may hold
    a lone UTF-16 surrogate, sent as its ``\\uXXXX`` escape: some model servers
    split an emoji's surrogate pair across two chunks, or send a lone one.
``{"json": {...}}``
    Shorthand for ``{"text": json.dumps(value)}`` (structured output).
``{"tool_calls": [{"name": ..., "arguments": "...", "id": ..., "index": ...}], ...}``
    Function calls.  ``arguments`` may be a string or a JSON-able value; ``id``
    defaults to ``call_<n>``; ``index`` (the ``tool_calls[].index`` on the
    wire) defaults to the call's position in the list, and may be any
    distinct integers (some servers do not number calls from 0).  Each call
    is streamed the way OpenAI does it: a first delta with ``index``, ``id``,
    ``type`` ``"function"``, the function name and empty arguments, then
    deltas carrying only ``index`` and pieces of ``function.arguments``.
    ``"interleave": true`` round-robins the deltas of several calls.
    ``"arguments_pieces": ["{\"m\": \"\\ud83d", "\\ude00\"}"]`` (on one call, instead
    of ``arguments``) streams that call's arguments as exactly these pieces (the
    arguments are their concatenation); like ``text_pieces``, a piece may hold a
    lone UTF-16 surrogate, sent as its ``\\uXXXX`` escape.
    ``"id_late": true`` (on the turn, or on one call) sends each call's first
    delta with ``index``, ``type`` and name but *no* ``id``; the id arrives in
    that call's next delta, together with its first arguments piece (or an
    empty one when the arguments are empty), as some OpenAI-compatible
    servers do.  ``"text"`` may accompany tool calls; it is sent first.
``{"reasoning": "...", "reasoning_field": "reasoning_content"}``
    Reasoning ("thinking") text, streamed in ``chunk_size`` pieces *before*
    any refusal, text or tool call, as ``delta.reasoning_content`` (vLLM /
    DeepSeek style, the default) or, with ``"reasoning_field": "reasoning"``,
    as ``delta.reasoning`` (OpenRouter / newer vLLM style).  A non-streamed
    completion carries it as ``message.reasoning_content`` (or
    ``message.reasoning``).  Reasoning deltas carry only that key.
``{"refusal": "..."}``
    A refusal, streamed as ``delta.refusal`` pieces (after any reasoning,
    before any text); ``message.refusal`` when not streamed (``content`` is
    then ``null`` unless ``"text"`` is given too).
``{"error": {"status": 500, "message": "boom"}}``
    An HTTP error (OpenAI error body) sent before any streaming.  Optional
    keys: ``type``, ``code``, ``param``, ``headers`` (extra response headers).
``{"fail_after_chunks": N, ...}``
    Send at most N SSE events (the initial role chunk counts, and so does
    ``[DONE]``) and then drop the connection without finishing the chunked
    body.  For a non-streamed
    request the connection is dropped without any response.

Optional keys for any answering turn: ``finish_reason`` (override, e.g.
``"length"`` or ``"content_filter"`` after a partial ``text``: the stream then
simply ends with that finish reason), ``usage`` (dict merged over the
estimated usage), ``delay`` (seconds to sleep before each streamed event),
``model`` (override the echoed model).

Usage
-----
Every completion has a ``usage`` object (a streamed one only when the request
asks with ``stream_options: {"include_usage": true}``: then every chunk has
``"usage": null`` and one last chunk with ``"choices": []`` carries it, as
OpenAI and vLLM do).  Its estimate counts about 4 characters a token: prompt
tokens from the request's messages, completion tokens from the reasoning,
refusal, text and tool calls; ``completion_tokens_details.reasoning_tokens``
is the reasoning's share and ``prompt_tokens_details.cached_tokens`` is 0.
The turn's ``usage`` dict is merged over that estimate, nested dicts key by
key (``{"prompt_tokens_details": {"cached_tokens": 5}}`` keeps
``audio_tokens``); ``total_tokens`` is recomputed unless given.

Endpoints
---------
* ``GET /v1/models`` and ``GET /v1/models/{id}`` (OpenAI list / model shape).
* ``POST /v1/chat/completions`` (streamed or not).
* ``POST /v1/embeddings``: deterministic embeddings, not scripted (see ``embed``): each
  input (a string or a list of strings) is a bag of its lowercased words, each word hashed
  (CRC-32) to one of ``dimensions`` (default ``EMBEDDING_DIMENSION``) coordinates with a sign,
  L2-normalised; so texts sharing words are near each other.  ``encoding_format`` ``float``
  (default) or ``base64`` (little-endian float32, what the ``openai`` client asks for).  Any
  ``model`` is accepted and echoed (``EMBEDDING_MODEL`` is the name the OGX run config registers).
  ``embedding_errors`` (a list of ``{"status", "message"}``) scripts failures: each embeddings request
  pops the first one and answers that HTTP error; ``embedding_delay`` (seconds) delays every answer;
  ``embedding_inputs`` records each request's inputs.
* Control endpoints for out-of-process use (e.g. when started via the CLI for
  an end-to-end ``llama stack run``): ``POST /__scripted__/script`` with
  ``{"turns": [...], "append": false}``, ``GET /__scripted__/requests`` and
  ``POST /__scripted__/reset``.

Paths are also accepted without the ``/v1`` prefix.

CLI
---
``python -m responses_rs.testkit.chat_server --port 0 [--script FILE.json]``
prints ``SCRIPTED_CHAT_SERVER http://127.0.0.1:PORT/v1`` on one line, flushes,
and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import json
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MODEL",
    "EMBEDDING_DIMENSION",
    "EMBEDDING_MODEL",
    "READY_PREFIX",
    "ScriptedChatServer",
    "Turn",
    "TurnFn",
    "embed",
    "main",
    "trial_turn",
]

JSON = dict[str, Any]
TurnFn = Callable[[JSON], JSON]
Turn = JSON | TurnFn

DEFAULT_MODEL = "scripted-model"
DEFAULT_CHUNK_SIZE = 4
READY_PREFIX = "SCRIPTED_CHAT_SERVER"
CONTROL_PREFIX = "/__scripted__"
SYSTEM_FINGERPRINT = "fp_scripted"
EMBEDDING_MODEL = "scripted-embedding"
EMBEDDING_DIMENSION = 64
_WORD = re.compile(r"[0-9a-z]+")


def embed(text: str, dimensions: int = EMBEDDING_DIMENSION) -> list[float]:
    """The deterministic embedding ``POST /v1/embeddings`` answers: a signed hashed bag of words."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        h = zlib.crc32(word.encode())
        vector[h % dimensions] += -1.0 if (h >> 16) & 1 else 1.0
    norm = sum(v * v for v in vector) ** 0.5
    if norm == 0.0:  # no word: a fixed unit vector, so every input has a direction
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


class _AbortStream(Exception):
    """Raised inside the handler to drop the connection on purpose."""


# ---------------------------------------------------------------------------
# Helpers that turn a scripted turn into OpenAI-shaped data
# ---------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """Flatten a chat message ``content`` (string or list of parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return str(content)


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages") or []
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _example_value(schema: Any) -> Any:
    """A value for a JSON schema: its ``default``, first ``examples`` or ``enum`` entry, else one of its type."""
    if not isinstance(schema, Mapping):
        return "example"
    for key in ("default", "const"):
        if key in schema:
            return copy.deepcopy(schema[key])
    for key in ("examples", "enum"):
        values = schema.get(key)
        if isinstance(values, list) and values:
            return copy.deepcopy(values[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return _example_arguments(schema)
    if kind == "array":
        return [_example_value(schema.get("items"))] if schema.get("minItems") else []
    return {"integer": 1, "number": 1, "boolean": True, "null": None}.get(str(kind), "example")


def _example_arguments(parameters: Any) -> JSON:
    """Arguments for a function whose ``parameters`` schema is given: every required property (all of them when
    none is marked required), each with its ``_example_value``."""
    if not isinstance(parameters, Mapping):
        return {}
    properties = parameters.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    required = parameters.get("required")
    names = [n for n in required if n in properties] if isinstance(required, list) and required else list(properties)
    return {name: _example_value(properties[name]) for name in names}


def trial_turn(body: JSON) -> JSON:
    """The scripted model ``responses-rs serve`` answers with when no upstream is given (for trying it out).

    * the last message is a tool's result: text saying what the tool returned;
    * the request offers function tools (and ``tool_choice`` is not ``"none"``): a call of the first one (or of
      the one ``tool_choice`` names), its arguments made from its parameters schema (``_example_value``);
    * otherwise: text repeating the last user message.
    """
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    last = messages[-1] if messages else {}
    note = "(the scripted model; serve with --upstream URL for a real one)"
    if last.get("role") == "tool":
        names = {
            call.get("id"): (call.get("function") or {}).get("name")
            for message in messages
            if message.get("role") == "assistant"
            for call in message.get("tool_calls") or []
            if isinstance(call, Mapping)
        }
        name = names.get(last.get("tool_call_id")) or "the tool"
        return {"text": f"{name} returned: {_content_text(last.get('content'))} {note}", "chunk_size": 12}
    functions = [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, Mapping) and t.get("type") == "function" and isinstance(t.get("function"), Mapping)
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        named = choice["function"].get("name")
        functions = [f for f in functions if f.get("name") == named] or functions
    if functions and choice != "none" and isinstance(functions[0].get("name"), str):
        function = functions[0]
        arguments = _example_arguments(function.get("parameters"))
        return {"tool_calls": [{"name": function["name"], "arguments": arguments}], "chunk_size": 12}
    return {"text": f"You said: {_last_user_text(body)!r}. {note}", "chunk_size": 12}


def _estimate_tokens(text: str) -> int:
    """A deterministic, tokenizer-free token estimate (about 4 chars/token)."""
    return (len(text) + 3) // 4


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            total += _estimate_tokens(_content_text(message.get("content"))) + 1
    return max(total, 1)


def _chunks(text: str, size: int) -> list[str]:
    size = max(1, int(size))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _normalise_tool_calls(raw: Iterable[Any], counter: Iterator[int], id_late: bool = False) -> list[JSON]:
    calls: list[JSON] = []
    for position, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"tool call must be a dict, got {item!r}")
        function = item.get("function")
        if isinstance(function, Mapping):  # OpenAI-shaped input is accepted too
            name = function.get("name")
            arguments = function.get("arguments", "")
        else:
            name = item.get("name")
            arguments = item.get("arguments", "")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool call needs a name: {item!r}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        pieces = item.get("arguments_pieces")
        if pieces is not None:
            if not isinstance(pieces, list) or not all(isinstance(p, str) for p in pieces):
                raise ValueError(f"'arguments_pieces' must be a list of strings, got {pieces!r}")
            arguments = "".join(pieces)
        call_id = item.get("id") or f"call_{next(counter)}"
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"tool call index must be a non-negative integer: {item!r}")
        calls.append(
            {
                "id": str(call_id),
                "name": name,
                "arguments": arguments,
                "index": index,
                "id_late": bool(item.get("id_late", id_late)),
                "arguments_pieces": pieces,
            }
        )
    indexes = [c["index"] for c in calls]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"tool call indexes must be distinct, got {indexes}")
    return calls


def _merge(base: JSON, override: Mapping[str, Any]) -> None:
    """Merge ``override`` into ``base``; nested dicts key by key."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _usage(body: Mapping[str, Any], completion_text: str, override: Any, reasoning_text: str = "") -> JSON:
    prompt = _prompt_tokens(body)
    reasoning = _estimate_tokens(reasoning_text)
    completion = _estimate_tokens(completion_text) + reasoning
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if isinstance(override, Mapping):
        _merge(usage, override)
        if "total_tokens" not in override:
            usage["total_tokens"] = int(usage["prompt_tokens"]) + int(usage["completion_tokens"])
    return usage


def _error_body(message: str, type_: str, code: Any = None, param: Any = None) -> JSON:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _model_object(model_id: str, created: int) -> JSON:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "scripted"}


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its owner and never blocks on close."""

    daemon_threads = True
    # Idle keep-alive connections would otherwise make server_close() hang.
    block_on_close = False
    allow_reuse_address = True
    owner: ScriptedChatServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedChatServer/1.0"
    server: _HTTPServer

    # -- connection bookkeeping ------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Each SSE event is its own small write: without TCP_NODELAY, Nagle's algorithm holds the first one
        # back until the client's delayed ACK (~40 ms on Linux), as no real model server does.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            sys.stderr.write(f"[scripted-chat] {self.address_string()} {format % args}\n")

    # -- low-level I/O ----------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # consume trailers up to the blank line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(str(key), str(value))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, status: int, message: str, type_: str, code: Any = None) -> None:
        self._send_json(status, _error_body(message, type_, code))

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Drop the connection mid-response (no terminating chunk)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _path(self) -> str:
        path = unquote(urlsplit(self.path).path).rstrip("/") or "/"
        if path.startswith("/v1/") or path == "/v1":
            path = path[3:] or "/"
        return path

    # -- verbs ---------------------------------------------------------------

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self._path()
        if path == "/models":
            data = [_model_object(m, owner.created) for m in owner.models]
            self._send_json(200, {"object": "list", "data": data})
        elif path.startswith("/models/"):
            model_id = path[len("/models/") :]
            if model_id in owner.models:
                self._send_json(200, _model_object(model_id, owner.created))
            else:
                self._send_error(
                    404,
                    f"The model '{model_id}' does not exist",
                    "invalid_request_error",
                    "model_not_found",
                )
        elif path == f"{CONTROL_PREFIX}/requests":
            self._send_json(200, {"requests": owner.requests})
        elif path in ("/health", f"{CONTROL_PREFIX}/health"):
            self._send_json(200, {"status": "OK"})
        else:
            self._send_error(404, f"Unknown path {self.path}", "invalid_request_error")

    def do_POST(self) -> None:
        owner = self.server.owner
        path = self._path()
        raw = self._read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            self._send_error(400, f"Invalid JSON body: {exc}", "invalid_request_error")
            return
        if not isinstance(body, dict):
            self._send_error(400, "Body must be a JSON object", "invalid_request_error")
            return

        if path == "/chat/completions":
            self._chat_completions(body)
        elif path == "/embeddings":
            self._embeddings(body)
        elif path == f"{CONTROL_PREFIX}/script":
            turns = body.get("turns", [])
            owner.script(turns, append=bool(body.get("append", False)))
            self._send_json(200, {"pending": owner.pending})
        elif path == f"{CONTROL_PREFIX}/reset":
            owner.reset()
            self._send_json(200, {"pending": 0})
        else:
            self._send_error(404, f"Unknown path {self.path}", "invalid_request_error")

    # -- embeddings ------------------------------------------------------------

    def _embeddings(self, body: JSON) -> None:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            self._send_error(400, "input: must be a string or a non-empty list of strings", "invalid_request_error")
            return
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSION
        encoding = body.get("encoding_format") or "float"
        if not isinstance(dimensions, int) or dimensions < 1 or encoding not in ("float", "base64"):
            self._send_error(400, "dimensions or encoding_format: unsupported value", "invalid_request_error")
            return
        owner = self.server.owner
        with owner._lock:
            owner.embedding_inputs.append(list(inputs))
            error = owner.embedding_errors.pop(0) if owner.embedding_errors else None
            delay = owner.embedding_delay
        if delay:
            time.sleep(delay)
        if error is not None:
            self._send_error(int(error.get("status", 500)), str(error.get("message", "boom")), "server_error")
            return
        data = []
        for index, text in enumerate(inputs):
            vector = embed(text, dimensions)
            if encoding == "base64":
                value: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
            else:
                value = vector
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(max(1, len(t) // 4) for t in inputs)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model") or EMBEDDING_MODEL),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- chat completions ----------------------------------------------------

    def _chat_completions(self, body: JSON) -> None:
        owner = self.server.owner
        owner._record(body)
        try:
            turn = owner._next_turn(body)
            plan = owner._plan(turn, body)
        except Exception as exc:  # a broken script is reported, not swallowed
            self._send_error(500, f"scripted turn failed: {exc!r}", "server_error")
            return

        if "error" in plan:
            err = plan["error"]
            status = int(err.get("status", 500))
            payload = _error_body(
                str(err.get("message", "scripted error")),
                str(err.get("type", "server_error" if status >= 500 else "invalid_request_error")),
                err.get("code"),
                err.get("param"),
            )
            self._send_json(status, payload, err.get("headers"))
            return

        try:
            if body.get("stream"):
                self._stream(body, plan)
            else:
                self._complete(body, plan)
        except _AbortStream:
            self._abort()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _complete(self, body: JSON, plan: JSON) -> None:
        if plan["fail_after_chunks"] is not None:
            raise _AbortStream
        only_refusal = plan["refusal"] and not plan["text"]
        message: JSON = {
            "role": "assistant",
            "content": plan["text"] if plan["text"] or not (plan["tool_calls"] or only_refusal) else None,
            "refusal": plan["refusal"] or None,
            "annotations": [],
        }
        if plan["reasoning"]:
            message[plan["reasoning_field"]] = plan["reasoning"]
        if plan["tool_calls"]:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in plan["tool_calls"]
            ]
        payload = {
            "id": plan["id"],
            "object": "chat.completion",
            "created": plan["created"],
            "model": plan["model"],
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": plan["finish_reason"],
                }
            ],
            "usage": plan["usage"],
        }
        self._send_json(200, payload)

    def _stream(self, body: JSON, plan: JSON) -> None:
        stream_options = body.get("stream_options") or {}
        include_usage = bool(isinstance(stream_options, Mapping) and stream_options.get("include_usage"))

        def chunk(delta: JSON, finish_reason: str | None = None) -> JSON:
            obj: JSON = {
                "id": plan["id"],
                "object": "chat.completion.chunk",
                "created": plan["created"],
                "model": plan["model"],
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if include_usage:
                obj["usage"] = None
            return obj

        size = plan["chunk_size"]
        events: list[JSON] = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({plan["reasoning_field"]: piece}) for piece in _chunks(plan["reasoning"], size)]
        events += [chunk({"refusal": piece}) for piece in _chunks(plan["refusal"], size)]
        text_pieces = plan["text_pieces"] if plan["text_pieces"] is not None else _chunks(plan["text"], size)
        events += [chunk({"content": piece}) for piece in text_pieces]
        events += [chunk({"tool_calls": [d]}) for d in _tool_call_deltas(plan)]
        events.append(chunk({}, plan["finish_reason"]))
        if include_usage:
            events.append(
                {
                    "id": plan["id"],
                    "object": "chat.completion.chunk",
                    "created": plan["created"],
                    "model": plan["model"],
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [],
                    "usage": plan["usage"],
                }
            )

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

        payloads = [f"data: {json.dumps(event)}\n\n".encode() for event in events]
        payloads.append(b"data: [DONE]\n\n")
        fail_after: int | None = plan["fail_after_chunks"]
        delay: float = plan["delay"]
        for n, payload in enumerate(payloads):
            if fail_after is not None and n >= fail_after:
                raise _AbortStream
            if delay > 0:
                time.sleep(delay)
            self._write_chunk(payload)
        if fail_after is not None:  # a failing turn never ends cleanly
            raise _AbortStream
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _tool_call_deltas(plan: JSON) -> list[JSON]:
    """OpenAI-style tool-call deltas for every call, optionally interleaved."""
    per_call: list[list[JSON]] = []
    for call in plan["tool_calls"]:
        index = call["index"]
        first: JSON = {"index": index, "id": call["id"], "type": "function"}
        first["function"] = {"name": call["name"], "arguments": ""}
        deltas: list[JSON] = [first]
        pieces = call["arguments_pieces"]
        if pieces is None:
            pieces = _chunks(call["arguments"], plan["chunk_size"])
        deltas += [{"index": index, "function": {"arguments": piece}} for piece in pieces]
        if call["id_late"]:
            # the id moves from the first delta to the next one of the same call
            del first["id"]
            if len(deltas) == 1:  # (openai-python's stream accumulator needs a function on every delta)
                deltas.append({"index": index, "function": {"arguments": ""}})
            deltas[1] = {"index": index, "id": call["id"], **{k: v for k, v in deltas[1].items() if k != "index"}}
        per_call.append(deltas)
    if not plan["interleave"]:
        return [d for deltas in per_call for d in deltas]
    out: list[JSON] = []
    for step in range(max((len(d) for d in per_call), default=0)):
        out += [deltas[step] for deltas in per_call if step < len(deltas)]
    return out


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


class ScriptedChatServer:
    """A real HTTP server that plays the part of an OpenAI-compatible model.

    Use it wherever responses-rs (or llama-stack in front of it) needs an
    inference provider but the test must be hermetic::

        with ScriptedChatServer() as server:
            server.script([{"text": "hello"}, {"tool_calls": [...]}])
            client = openai.OpenAI(base_url=server.base_url, api_key="x")
            ...
            assert server.requests[0]["messages"][-1]["content"] == "hi"

    All public methods are thread-safe; the server answers each connection on
    its own daemon thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Iterable[str] | None = None,
        turns: Iterable[Turn] | Turn | None = None,
        default_turn: TurnFn | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.models: list[str] = list(models) if models is not None else [DEFAULT_MODEL]
        if not self.models:
            raise ValueError("at least one model id is required")
        self.verbose = verbose
        # What a request answers when no scripted turn is pending (None: "ok: <last user text>").
        self.default_turn = default_turn
        self.created = int(time.time())
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque[Turn] = collections.deque()
        self._requests: list[JSON] = []
        # Failures the next embeddings requests answer, in order ({"status", "message"}); each request's inputs.
        self.embedding_errors: list[JSON] = []
        self.embedding_inputs: list[list[str]] = []
        self.embedding_delay = 0.0
        self._connections: set[socket.socket] = set()
        self._call_counter = _Counter()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        if turns is not None:
            self.script(turns)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> ScriptedChatServer:
        """Bind the socket and serve on a background daemon thread."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-chat-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and all open connections."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> ScriptedChatServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1`` — what an OpenAI client's ``base_url`` wants."""
        if self._httpd is None:
            raise RuntimeError("server is not started")
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    # -- scripting ------------------------------------------------------------

    def script(self, turns: Iterable[Turn] | Turn, *, append: bool = False) -> ScriptedChatServer:
        """Set the turns the next requests answer (FIFO; one per request).

        Replaces any turns still pending unless ``append=True``.  Accepts a
        list of turns or a single turn (dict or callable).
        """
        if isinstance(turns, Mapping) or callable(turns):
            items: list[Turn] = [turns]  # type: ignore[list-item]
        else:
            items = list(turns)
        for item in items:
            if not (isinstance(item, Mapping) or callable(item)):
                raise TypeError(f"a turn must be a dict or a callable, got {item!r}")
        with self._lock:
            if not append:
                self._queue.clear()
            self._queue.extend(items)
        return self

    @property
    def pending(self) -> int:
        """Number of scripted turns not consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[JSON]:
        """Snapshot of the JSON bodies received on ``/v1/chat/completions``."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[JSON]:
        """Block until at least ``count`` requests arrived; return the snapshot."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"got {len(self._requests)} requests, expected {count}")
                self._cond.wait(remaining)
            return copy.deepcopy(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and pending turns."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self.embedding_errors.clear()
            self.embedding_inputs.clear()
            self.embedding_delay = 0.0

    # -- internals used by the handler ---------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, body: JSON) -> None:
        with self._cond:
            self._requests.append(copy.deepcopy(body))
            self._cond.notify_all()

    def _next_turn(self, body: JSON) -> JSON:
        with self._lock:
            turn: Turn | None = self._queue.popleft() if self._queue else None
        if turn is None:
            if self.default_turn is None:
                return {"text": f"ok: {_last_user_text(body)}"}
            turn = self.default_turn
        if callable(turn):
            result = turn(copy.deepcopy(body))
            if not isinstance(result, Mapping):
                raise TypeError(f"callable turn returned {result!r}, expected a dict")
            return dict(result)
        return copy.deepcopy(dict(turn))

    def _plan(self, turn: JSON, body: JSON) -> JSON:
        """Normalise a turn into everything the handler needs to answer."""
        if "error" in turn:
            err = turn["error"]
            if isinstance(err, str):
                err = {"message": err}
            if not isinstance(err, Mapping):
                raise ValueError(f"'error' must be a dict or string, got {err!r}")
            return {"error": dict(err)}

        if "json" in turn:
            text = json.dumps(turn["json"])
        else:
            text = turn.get("text") or ""
            if not isinstance(text, str):
                raise ValueError(f"'text' must be a string, got {text!r}")
        text_pieces = turn.get("text_pieces")
        if text_pieces is not None:
            if not isinstance(text_pieces, list) or not all(isinstance(p, str) for p in text_pieces):
                raise ValueError(f"'text_pieces' must be a list of strings, got {text_pieces!r}")
            text = "".join(text_pieces)
        reasoning = turn.get("reasoning") or ""
        refusal = turn.get("refusal") or ""
        for key, value in (("reasoning", reasoning), ("refusal", refusal)):
            if not isinstance(value, str):
                raise ValueError(f"{key!r} must be a string, got {value!r}")
        reasoning_field = turn.get("reasoning_field") or "reasoning_content"
        if reasoning_field not in ("reasoning_content", "reasoning"):
            raise ValueError(f"'reasoning_field' must be 'reasoning_content' or 'reasoning', got {reasoning_field!r}")
        tool_calls = _normalise_tool_calls(
            turn.get("tool_calls") or [], self._call_counter, id_late=bool(turn.get("id_late", False))
        )
        completion_text = refusal + text + "".join(c["name"] + c["arguments"] for c in tool_calls)
        fail_after = turn.get("fail_after_chunks")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": str(turn.get("model") or body.get("model") or self.models[0]),
            "text": text,
            "text_pieces": text_pieces,
            "reasoning": reasoning,
            "reasoning_field": reasoning_field,
            "refusal": refusal,
            "tool_calls": tool_calls,
            "chunk_size": int(turn.get("chunk_size") or DEFAULT_CHUNK_SIZE),
            "interleave": bool(turn.get("interleave", False)),
            "finish_reason": turn.get("finish_reason") or ("tool_calls" if tool_calls else "stop"),
            "usage": _usage(body, completion_text, turn.get("usage"), reasoning),
            "fail_after_chunks": None if fail_after is None else int(fail_after),
            "delay": float(turn.get("delay") or 0.0),
        }


class _Counter:
    """Thread-safe counter used for default tool-call ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def __iter__(self) -> _Counter:
        return self

    def __next__(self) -> int:
        with self._lock:
            self._value += 1
            return self._value


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def _load_script(path: str) -> list[Turn]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if isinstance(data, Mapping) and "turns" in data:
        data = data["turns"]
    if isinstance(data, Mapping):
        return [dict(data)]
    if not isinstance(data, list):
        raise SystemExit(f"{path}: expected a JSON list of turns")
    return list(data)


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground (for ``llama stack run`` end-to-end runs)."""
    parser = argparse.ArgumentParser(
        prog="python -m responses_rs.testkit.chat_server",
        description="Scripted OpenAI-compatible Chat Completions server (test double).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", metavar="FILE.json", help="JSON list of turns")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="ID",
        help=f"model id to advertise (repeatable; default {DEFAULT_MODEL})",
    )
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    turns = _load_script(args.script) if args.script else None
    server = ScriptedChatServer(args.host, args.port, models=args.models, turns=turns, verbose=args.verbose)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    try:
        print(f"{READY_PREFIX} {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
