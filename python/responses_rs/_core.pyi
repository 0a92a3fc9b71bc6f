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

class EventFactory:
    """Builds stream event objects: `classes` maps each event `type` to its pydantic class."""

    def __init__(self, classes: dict[str, type[BaseModel]]) -> None: ...
    @property
    def fast_types(self) -> frozenset[str]: ...

# Actions returned by Turn.next_action(), by their first element:
#   ("get_tool", name)
#   ("list_mcp_tools", server_label, server_url, headers | None)
#   ("infer", messages_json, tools_json | None, stream, response_format | None, chat_params)
#   ("invoke_tool", name, arguments)
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
        history_items: int = 0,
    ) -> None: ...
    @property
    def response_id(self) -> str: ...
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
    def fail(self, message: str, code: str = "server_error") -> None: ...
    def drain(self) -> list[BaseModel]: ...
    def response_json(self) -> str: ...

def check_request(
    model: Any,
    tools: Any = None,
    *,
    temperature: Any = None,
    instructions: Any = None,
    text: Any = None,
    options: dict[str, Any] | None = None,
) -> None: ...
def rejected_response(model: str, code: str, message: str, previous_response_id: str | None = None) -> str: ...
def _panic_for_tests(message: str) -> None: ...
