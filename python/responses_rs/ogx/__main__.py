"""Command line for the OGX provider::

python -m responses_rs.ogx run-config   # a complete OGX run config with responses-rs as the responses provider
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import MODULE, PROVIDER_TYPE

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ogx-builtin.yaml"

# The one edit from OGX's builtin to responses-rs: the provider entry's id, type and module.
_BUILTIN_ENTRY = "  - provider_id: builtin\n    provider_type: inline::builtin\n"
_OUR_ENTRY = f"  - provider_id: responses-rs\n    provider_type: {PROVIDER_TYPE}\n    module: {MODULE}\n"


def render_run_config() -> str:
    """The packaged OGX example run config (``examples/ogx-builtin.yaml``) with responses-rs as the responses
    provider; the config block (OGX's ``BuiltinResponsesImplConfig``) is unchanged."""
    text = EXAMPLE.read_text()
    if text.count(_BUILTIN_ENTRY) != 1:
        raise RuntimeError(f"{EXAMPLE.name}: expected one inline::builtin responses provider entry")
    text = text.replace(_BUILTIN_ENTRY, _OUR_ENTRY)
    header = (
        "# OGX 1.5 run config with responses-rs as the responses provider (python -m responses_rs.ogx run-config):\n"
        f"# the packaged {EXAMPLE.name} with its responses provider entry switched to {PROVIDER_TYPE}.\n"
    )
    return header + text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m responses_rs.ogx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run-config", help="print an OGX run config with responses-rs as the responses provider")
    args = parser.parse_args(argv)
    if args.command == "run-config":
        sys.stdout.write(render_run_config())
    return 0


if __name__ == "__main__":
    sys.exit(main())
