"""responses-rs as an OGX (1.5) responses provider, in place of OGX's `inline::builtin`.

The provider entry of a run config changes in one place (``provider_type`` and ``module``); its config
block stays OGX's ``BuiltinResponsesImplConfig``::

    responses:
    - provider_id: responses-rs
      provider_type: inline::responses_rs
      module: responses_rs.ogx
      config:
        persistence:
          responses: {table_name: responses, backend: sql_default}

OGX imports ``responses_rs.ogx.provider`` (``get_provider_spec``, ``get_provider_impl``). The
implementation is :class:`OGXResponsesImpl`: the host-neutral driver (``responses_rs._engine``) with OGX's
collaborators, OGX's own classes (``ogx_api``) for responses and events, and OGX's own ``ResponsesStore``,
so rows written by either provider are read and chained by the other.

``python -m responses_rs.ogx run-config`` prints a complete run config with this provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._impl import OGXResponsesImpl

PROVIDER_TYPE = "inline::responses_rs"
MODULE = "responses_rs.ogx"

__all__ = ["MODULE", "PROVIDER_TYPE", "OGXResponsesImpl"]


def __getattr__(name: str) -> Any:
    if name == "OGXResponsesImpl":
        from ._impl import OGXResponsesImpl

        return OGXResponsesImpl
    raise AttributeError(f"module 'responses_rs.ogx' has no attribute {name!r}")
