"""responses-rs: the OpenAI Responses API in Rust, as a drop-in `OpenAIResponsesImpl` for llama-stack."""

from ._core import DriverProtocolError, InternalError, __version__
from ._driver import OpenAIResponsesImpl

__all__ = ["OpenAIResponsesImpl", "DriverProtocolError", "InternalError", "__version__"]
