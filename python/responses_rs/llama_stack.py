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
    "PROVIDER_TYPE",
    "example_config",
    "get_provider_impl",
    "installed_llama_stack_version",
    "providers_dir",
    "render_run_config",
]


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
    return impl


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
