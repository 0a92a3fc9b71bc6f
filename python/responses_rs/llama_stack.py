"""responses-rs as a llama-stack agents provider (`inline::responses_rs`).

llama-stack finds the provider through the spec file packaged next to this module
(`providers.d/inline/agents/responses_rs.yaml`): point a run config's ``external_providers_dir`` at
:func:`providers_dir` and set the agents provider's ``provider_type`` to ``inline::responses_rs``.
The provider's config block is unchanged: its config class is llama-stack's own
``MetaReferenceAgentsImplConfig``.

The provider *is* llama-stack's meta-reference agents implementation, with one collaborator swapped:
its ``openai_responses_impl`` becomes :class:`responses_rs.OpenAIResponsesImpl`, built from the same
objects llama-stack would have used. Every other Agents method (agents, sessions, turns, ...) stays
llama-stack's, so the server's protocol check passes and nothing else changes.

Serves llama-stack 0.2.7 (which calls ``get_provider_impl(config, deps)``) and 0.2.12 (which also
passes ``policy`` because this function has a parameter of that name).

Request fields llama-stack does not declare
-------------------------------------------
llama-stack (0.2.7 and 0.2.12 alike) builds the body of ``POST /v1/openai/v1/responses`` from the
signature of the agents *instance's* bound ``create_openai_response``
(``llama_stack/distribution/server/server.py``: ``main`` passes ``getattr(impl, route.name)`` to
``create_dynamic_typed_route``, which reads ``inspect.signature(func)`` and makes every parameter an
embedded ``Body`` field); FastAPI drops body fields the signature does not name, silently. So
``max_output_tokens``, ``top_p``, ``tool_choice``, ``metadata``, ... never reach a provider that keeps
llama-stack's signature. :func:`get_provider_impl` therefore gives the agents instance its own
``create_openai_response`` whose signature adds each field of :data:`EXTRA_REQUEST_FIELDS` that
responses-rs' ``create_openai_response`` accepts (by name, or all of them when it takes
``**kwargs``), and forwards everything by keyword. llama-stack's protocol check only needs the
protocol's parameters to be a subset, so the wider signature passes it.

Command line::

    python -m responses_rs.llama_stack providers-dir        # the directory for external_providers_dir
    python -m responses_rs.llama_stack example [VERSION]    # path of the packaged example run config
    python -m responses_rs.llama_stack run-config [VERSION] # that example with the directory filled in
"""

from __future__ import annotations

import argparse
import inspect
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from importlib.util import find_spec as _find_spec
from pathlib import Path
from typing import Any

PROVIDER_TYPE = "inline::responses_rs"
PROVIDERS_DIR_PLACEHOLDER = "${env.RESPONSES_RS_PROVIDERS_DIR}"

_PACKAGE_DIR = Path(__file__).resolve().parent
_EXAMPLE_VERSIONS = ("0.2.7", "0.2.12")

__all__ = [
    "EXTRA_REQUEST_FIELDS",
    "PROVIDER_TYPE",
    "example_config",
    "get_provider_impl",
    "installed_llama_stack_version",
    "providers_dir",
    "render_run_config",
]


# Responses request fields that llama-stack's create_openai_response does not declare (neither 0.2.7
# nor 0.2.12), with the annotation the widened route gives each; 0.2.7 lacks `instructions` and `text`.
EXTRA_REQUEST_FIELDS: dict[str, Any] = {
    "instructions": str | None,
    "text": dict[str, Any] | None,
    "max_output_tokens": int | None,
    "top_p": float | None,
    "tool_choice": str | dict[str, Any] | None,
    "parallel_tool_calls": bool | None,
    "max_tool_calls": int | None,
    "metadata": dict[str, str] | None,
    "truncation": str | None,
    "user": str | None,
    "safety_identifier": str | None,
    "prompt_cache_key": str | None,
    "service_tier": str | None,
}


def providers_dir() -> str:
    """Absolute path of the packaged ``providers.d`` directory, for ``external_providers_dir``."""
    return str(_PACKAGE_DIR / "providers.d")


def installed_llama_stack_version() -> str | None:
    try:
        return _dist_version("llama_stack")
    except PackageNotFoundError:
        return None


def _version_or_installed(llama_stack_version: str | None) -> str:
    """The version asked for, else the installed llama-stack's; a ValueError that says what to do when
    there is none."""
    if llama_stack_version:
        return llama_stack_version
    version = installed_llama_stack_version()
    if version is not None:
        return version
    latest = _EXAMPLE_VERSIONS[-1]
    choices = " or ".join(_EXAMPLE_VERSIONS)
    if _find_spec("llama_stack") is None:
        raise ValueError(
            f"llama-stack is not installed in this Python environment ({sys.executable}): "
            f"pip install 'llama-stack=={latest}' (or {choices}), or pass the version as an argument "
            f"(e.g. run-config {latest})"
        )
    raise ValueError(
        "llama-stack is importable here but has no package metadata, so its version is unknown: "
        f"pass the version as an argument ({choices}, e.g. run-config {latest})"
    )


def example_config(llama_stack_version: str | None = None) -> str:
    """Path of the packaged example run config for a llama-stack version (default: the installed one)."""
    version = _version_or_installed(llama_stack_version)
    if version not in _EXAMPLE_VERSIONS:
        raise ValueError(f"no example run config for llama-stack {version!r}; have {', '.join(_EXAMPLE_VERSIONS)}")
    return str(_PACKAGE_DIR / "examples" / f"run-{version}.yaml")


def render_run_config(llama_stack_version: str | None = None) -> str:
    """The example run config with ``external_providers_dir`` written out as a literal path.

    llama-stack's ``llama stack run`` creates ``external_providers_dir`` *before* substituting
    ``${env.*}`` in it, so a literal path is the clean form for a run config.
    """
    text = Path(example_config(llama_stack_version)).read_text(encoding="utf-8")
    if PROVIDERS_DIR_PLACEHOLDER not in text:  # pragma: no cover - guards the packaged files
        raise RuntimeError("example run config lacks the providers dir placeholder")
    return text.replace(PROVIDERS_DIR_PLACEHOLDER, providers_dir())


async def get_provider_impl(config: Any, deps: dict[Any, Any], policy: list[Any] | None = None) -> Any:
    """Build llama-stack's meta-reference agents impl, then serve its Responses API with responses-rs.

    llama-stack's resolver calls this with ``(config, deps)`` in 0.2.7 and ``(config, deps, policy)``
    in 0.2.12, where ``config`` is a ``MetaReferenceAgentsImplConfig`` and ``deps`` maps ``Api``
    members to the implementations named in the provider spec's ``api_dependencies``.
    """
    from llama_stack.distribution.datatypes import Api
    from llama_stack.providers.inline.agents.meta_reference.agents import MetaReferenceAgentsImpl

    args = [
        config,
        deps[Api.inference],
        deps[Api.vector_io],
        deps[Api.safety],
        deps[Api.tool_runtime],
        deps[Api.tool_groups],
    ]
    if "policy" in inspect.signature(MetaReferenceAgentsImpl.__init__).parameters:  # 0.2.12
        args.append(policy if policy is not None else [])
    impl = MetaReferenceAgentsImpl(*args)
    await impl.initialize()
    impl.openai_responses_impl = _responses_impl(impl)
    _widen_create(impl)
    return impl


def _accepted_extras(responses_create: Any, declared: Any) -> list[str]:
    """The fields of EXTRA_REQUEST_FIELDS that ``responses_create`` takes and ``declared`` lacks."""
    params = inspect.signature(responses_create).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return [name for name in EXTRA_REQUEST_FIELDS if name not in declared and (takes_all or name in params)]


def _widen_create(agents: Any) -> None:
    """Give ``agents`` a ``create_openai_response`` whose signature also names the extra request
    fields responses-rs accepts (see the module docstring); no change when it accepts none."""
    original = agents.create_openai_response  # llama-stack's, bound
    signature = inspect.signature(original)
    declared = signature.parameters
    extras = _accepted_extras(agents.openai_responses_impl.create_openai_response, declared)
    if not extras:
        return
    params = list(declared.values())
    params += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=EXTRA_REQUEST_FIELDS[name],
        )
        for name in extras
    ]
    responses = agents.openai_responses_impl

    async def create_openai_response(**kwargs: Any) -> Any:
        # llama-stack's own parameters always (its defaults included), the extra ones when sent
        call = {name: kwargs.get(name, declared[name].default) for name in declared}
        call.update({name: kwargs[name] for name in extras if kwargs.get(name) is not None})
        return await responses.create_openai_response(**call)

    create_openai_response.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    create_openai_response.__doc__ = original.__doc__
    create_openai_response.__name__ = "create_openai_response"
    create_openai_response.__qualname__ = f"{type(agents).__qualname__}.create_openai_response"
    # an instance attribute: what getattr(impl, "create_openai_response") finds, for the protocol check
    # and the route alike
    agents.create_openai_response = create_openai_response


def _responses_impl(agents: Any) -> Any:
    """responses-rs' OpenAIResponsesImpl from the collaborators the agents impl gave its own."""
    from . import OpenAIResponsesImpl

    if hasattr(agents, "responses_store"):  # 0.2.12: responses live in a SQL responses store
        return OpenAIResponsesImpl(
            inference_api=agents.inference_api,
            tool_groups_api=agents.tool_groups_api,
            tool_runtime_api=agents.tool_runtime_api,
            responses_store=agents.responses_store,
            vector_io_api=agents.vector_io_api,
        )
    # 0.2.7: responses live in the agents' kvstore
    return OpenAIResponsesImpl(
        agents.persistence_store,
        inference_api=agents.inference_api,
        tool_groups_api=agents.tool_groups_api,
        tool_runtime_api=agents.tool_runtime_api,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m responses_rs.llama_stack", description="responses-rs as a llama-stack agents provider"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("providers-dir", help="print the directory to use as external_providers_dir")
    for name, help_ in (
        ("example", "print the path of the packaged example run config"),
        ("run-config", "print the example run config with external_providers_dir filled in"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("version", nargs="?", help="llama-stack version (default: the installed one)")
    args = parser.parse_args(argv)
    try:
        if args.command == "providers-dir":
            print(providers_dir())
        elif args.command == "example":
            print(example_config(args.version))
        else:
            sys.stdout.write(render_run_config(args.version))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
