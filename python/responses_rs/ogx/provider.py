"""What OGX imports for a provider entry with ``module: responses_rs.ogx`` (``<module>.provider``)."""

from __future__ import annotations

from typing import Any

from ogx_api import Api, InlineProviderSpec

from . import MODULE, PROVIDER_TYPE

# OGX's builtin's config class: an operator's config block for inline::builtin works unchanged.
CONFIG_CLASS = "ogx.providers.inline.responses.builtin.BuiltinResponsesImplConfig"

# The builtin's dependencies (ogx/providers/registry/responses.py), so the stack resolves the same graph.
API_DEPENDENCIES = [
    Api.inference,
    Api.vector_io,
    Api.tool_runtime,
    Api.tool_groups,
    Api.conversations,
    Api.prompts,
    Api.files,
    Api.connectors,
]


def get_provider_spec() -> InlineProviderSpec:
    return InlineProviderSpec(
        api=Api.responses,
        provider_type=PROVIDER_TYPE,
        module=MODULE + ".provider",
        config_class=CONFIG_CLASS,
        api_dependencies=API_DEPENDENCIES,
        optional_api_dependencies=[Api.skills],
        pip_packages=["responses-rs"],
        description="The OpenAI Responses API in Rust (responses-rs), in place of inline::builtin.",
    )


async def get_provider_impl(config: Any, deps: dict[Api, Any], policy: list[Any] | None = None) -> Any:
    """OGX's own ``ResponsesStore`` from ``config.persistence.responses``, as the builtin makes it, and
    the implementation built on it and on the builtin's collaborators."""
    from ogx.providers.utils.responses.responses_store import ResponsesStore

    from ._impl import OGXResponsesImpl

    store = ResponsesStore(config.persistence.responses, policy or [])
    await store.initialize()
    if not store.sql_store:
        raise RuntimeError("Responses store is not initialized")
    return OGXResponsesImpl(
        config=config,
        inference_api=deps[Api.inference],
        tool_groups_api=deps[Api.tool_groups],
        tool_runtime_api=deps[Api.tool_runtime],
        vector_io_api=deps[Api.vector_io],
        conversations_api=deps.get(Api.conversations),
        prompts_api=deps.get(Api.prompts),
        files_api=deps.get(Api.files),
        connectors_api=deps.get(Api.connectors),
        skills_api=deps.get(Api.skills),
        responses_store=store,
    )
