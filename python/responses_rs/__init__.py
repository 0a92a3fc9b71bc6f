"""responses-rs: the OpenAI Responses API in Rust, as a drop-in `OpenAIResponsesImpl` for llama-stack.

`OpenAIResponsesImpl` is imported on first use: it is built on the installed llama-stack's classes,
while the test kit (`responses_rs.testkit`) and the extension itself work without llama-stack.
"""

from typing import TYPE_CHECKING, Any

from ._core import DriverProtocolError, InternalError, __version__

if TYPE_CHECKING:
    from ._driver import OpenAIResponsesImpl

__all__ = ["OpenAIResponsesImpl", "DriverProtocolError", "InternalError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "OpenAIResponsesImpl":
        try:
            from ._driver import OpenAIResponsesImpl
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "llama_stack":
                raise ImportError(
                    "responses_rs.OpenAIResponsesImpl serves llama-stack's contract: install llama-stack "
                    "(0.2.7 or 0.2.12) in this environment"
                ) from exc
            raise
        return OpenAIResponsesImpl
    raise AttributeError(f"module 'responses_rs' has no attribute {name!r}")
