"""Type stubs for the Rust extension `responses_rs._core` (src/glue). Keep in step with src/glue/mod.rs."""

from typing import Any

from pydantic import BaseModel

__version__: str

class DriverProtocolError(RuntimeError):
    """The driver called the core out of order (a bug in responses-rs, never in the request)."""

class InvalidRequest(ValueError):
    """The request is malformed; the message starts with the field, e.g. `input[2].role: ...`."""

class InternalError(RuntimeError):
    """A Rust panic inside the core, turned into an ordinary exception."""

class UpstreamError(RuntimeError):
    """The model server's body is not a Chat Completions stream (framing, JSON, an error chunk)."""

class ChunkedBody:
    """`Transfer-Encoding: chunked` removed from an HTTP/1.1 body, fed as read from the socket."""

    def __init__(self) -> None: ...
    def feed(self, data: bytes, /) -> bytes: ...
    @property
    def done(self) -> bool: ...

class EventFactory:
    """Builds stream event objects: `classes` maps each event `type` to its pydantic class."""

    def __init__(self, classes: dict[str, type[BaseModel]]) -> None: ...
    @property
    def fast_types(self) -> frozenset[str]: ...

class Constructor:
    """Builds pydantic objects from JSON text as validation would, by plans (see responses_rs._construct)."""

    def __init__(
        self,
        plans: list[tuple[type[BaseModel], list[tuple[str, tuple[Any, ...], bool, Any]], bool]],
        roots: list[tuple[Any, ...]] | None = None,
    ) -> None: ...
    def build_json(self, index: int, text: str) -> BaseModel | None:
        """The instance of plan `index`, or None when the text does not fit the plan."""
    def build_root_json(self, root: int, text: str) -> Any:
        """The value of root kind `root` (e.g. a list of input items), or None when the text does not fit."""

# Actions returned by Turn.next_action(), by their first element:
#   ("get_tool", name)
#   ("list_mcp_tools", server_label, server_url, headers | None)
#   ("infer", messages_json, tools_json | None, stream, response_format | None, chat_params)
#   ("invoke_tool", name, arguments, search_options | None)  (web_search's options: allowed_domains,
#       user_location, search_context_size, max_results)
#   ("invoke_mcp", server_url, headers | None, name, arguments)
#   ("file_search", query, vector_store_ids, filters | None, max_num_results | None, ranking_options | None)
#   ("store", response_json, input_json)
#   ("done",)
Action = tuple[Any, ...]

class Turn:
    """One create_openai_response call: a sans-IO state machine that asks for I/O and is fed results."""

    def __init__(
        self,
        factory: EventFactory,
        model: Any,
        input: Any,
        tools: Any = None,
        *,
        temperature: Any = None,
        emit_events: bool = False,
        store: bool = True,
        instructions: Any = None,
        text: Any = None,
        previous_response_id: str | None = None,
        max_rounds: int = 10,
        stream_inference: bool = False,
        send_response_format: bool = False,
        extended_tools: bool = True,
        options: dict[str, Any] | None = None,
        record_shape: str = "llama-stack-0.2.12",
        split_think: bool = False,
        file_search_citations: bool = False,
        history_items: int = 0,
        developer_role: str = "developer",
        compaction_trigger: bool = False,
    ) -> None: ...
    @property
    def response_id(self) -> str: ...
    @property
    def compacting(self) -> bool: ...
    @property
    def history_items(self) -> int: ...
    def next_action(self) -> Action: ...
    def provide_tool_def(self, tooldef: Any) -> None: ...
    def provide_mcp_tools(self, listing: Any) -> None: ...
    def feed(self, chunk: Any) -> BaseModel | list[BaseModel] | None: ...
    def feed_completion(self, completion: Any) -> None: ...
    def end_inference(self) -> None: ...
    def tool_result(self, result: Any) -> None: ...
    def tool_failed(self, message: str) -> None: ...
    def take_warnings(self) -> list[str]: ...
    def stored(self) -> None: ...
    def truncate_and_retry(self) -> bool | None: ...
    def fail(self, message: str, code: str = "server_error") -> None: ...
    def prepend_history(self, history: list[Any]) -> None: ...
    def apply_prompt(self, template: str, declared: list[str]) -> None: ...
    def insert_system(self, text: str, at: int | None = None) -> None: ...
    def echo_field(self, name: str, value: Any) -> None: ...
    def refuse(self, message: str) -> None: ...
    def chat_history(self) -> str: ...
    def drain(self) -> list[BaseModel]: ...
    def feed_sse(self, data: bytes, /) -> bytes:
        """Upstream SSE body bytes in (split anywhere), the client's SSE event bytes out. One body per inference
        call: `end_inference` starts the next round's body afresh. A UTF-16 surrogate pair split across two chunks
        (of text, or of one tool call's arguments) is joined; a lone surrogate becomes U+FFFD."""
    @property
    def sse_done(self) -> bool: ...
    def drain_sse(self) -> bytes: ...
    def snapshot_json(self, status: str) -> str:
        """The response so far (full shape) as `queued`, `in_progress` or `cancelled`."""
    def response_json(self) -> str: ...
    def stored_input_json(self) -> str:
        """The input the record stores (what the final `store` action carries), available from the start."""

def check_request(
    model: Any,
    tools: Any = None,
    *,
    temperature: Any = None,
    instructions: Any = None,
    text: Any = None,
    options: dict[str, Any] | None = None,
) -> None: ...

class Compaction:
    """One compaction (`POST /responses/compact`, `context_management`): the history's summarization call,
    then the compacted window (every user message, then one `compaction` item)."""

    def __init__(self, history: Any, prompt: str, instructions: str | None = None) -> None: ...
    def messages_json(self) -> str: ...
    def finish(self, completion: Any, summary_prefix: str) -> None: ...
    @property
    def id(self) -> str: ...
    def compacted_json(self) -> str: ...
    def record_json(self, model: str) -> str: ...
    def input_json(self) -> str: ...
    def window_messages_json(self) -> str: ...

def is_context_length_error(body: Any) -> bool: ...
def compaction_text_segments(input: Any) -> list[str]: ...

COMPACTION_PROMPT: str
COMPACTION_SUMMARY_PREFIX: str

def rejected_response(model: str, code: str, message: str, previous_response_id: str | None = None) -> str: ...
def _panic_for_tests(message: str) -> None: ...
def top_k_cosine(query: bytes, matrix: bytes, dim: int, k: int, min_score: float) -> list[tuple[int, float]]:
    """The `k` rows of `matrix` (rows of `dim` little-endian float32) nearest `query` by cosine similarity, scoring
    at least `min_score`, as (row, score) best first. ValueError when the shapes disagree."""
