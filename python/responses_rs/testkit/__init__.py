"""Test doubles for the world outside responses-rs.

Importable without the compiled extension (stdlib only), so tests, the README
demo and end-to-end ``llama stack run`` sessions can use it anywhere.

Names are resolved lazily so ``python -m responses_rs.testkit.chat_server``
does not import the module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from responses_rs.testkit.chat_server import ScriptedChatServer, Turn, TurnFn

__all__ = ["ScriptedChatServer", "Turn", "TurnFn"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from responses_rs.testkit import chat_server

        return getattr(chat_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
