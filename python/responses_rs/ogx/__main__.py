"""Command line for the OGX provider::

python -m responses_rs.ogx run-config   # a complete OGX run config with responses-rs as the responses provider
python -m responses_rs.ogx run-config --postgres   # the same with the SQL store (responses, conversations, ...) on
                                                   # PostgreSQL: POSTGRES_HOST, _PORT, _DB, _USER, _PASSWORD
python -m responses_rs.ogx run-config --skills     # also OGX's (alpha) skills API and its inline::builtin provider,
                                                   # for the responses `skills` field
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

# --postgres: the sql_default backend (every SQL store: responses, inference, conversations, prompts, connectors,
# files metadata) on PostgreSQL, OGX's own env names and defaults (PostgresSqlStoreConfig.sample_run_config).
# The kv store (the registry) and the sqlite-vec / files data stay per server under SQLITE_STORE_DIR.
_SQLITE_SQL_BACKEND = (
    "    sql_default:\n"
    "      type: sql_sqlite\n"
    "      db_path: ${env.SQLITE_STORE_DIR:=~/.ogx/distributions/responses-rs}/sql_store.db\n"
)
_POSTGRES_SQL_BACKEND = (
    "    sql_default:\n"
    "      type: sql_postgres\n"
    "      host: ${env.POSTGRES_HOST:=localhost}\n"
    "      port: ${env.POSTGRES_PORT:=5432}\n"
    "      db: ${env.POSTGRES_DB:=ogx}\n"
    "      user: ${env.POSTGRES_USER:=ogx}\n"
    "      password: ${env.POSTGRES_PASSWORD:=ogx}\n"
)

# --skills: OGX's alpha skills API served (/v1alpha/skills) by its inline::builtin skills provider (metadata in the
# kv store, bundles through the files API), so responses can name `skills` (without it: HTTP 503, as the builtin).
_RESPONSES_API = "- responses      # also serves conversations and prompts\n"
_SKILLS_API = "- skills         # OGX's alpha skills API (--skills)\n"
_VECTOR_IO_PROVIDERS = "  vector_io:\n"
_SKILLS_PROVIDER = (
    "  skills:\n"
    "  - provider_id: builtin\n"
    "    provider_type: inline::builtin\n"
    "    config:\n"
    "      persistence:\n"
    "        namespace: skills\n"
    "        backend: kv_default\n"
)


def render_run_config(*, postgres: bool = False, skills: bool = False) -> str:
    """The packaged OGX example run config (``examples/ogx-builtin.yaml``) with responses-rs as the responses
    provider; the config block (OGX's ``BuiltinResponsesImplConfig``) is unchanged. ``postgres``: the SQL
    backend on PostgreSQL (``POSTGRES_*`` env), so servers sharing the database share responses. ``skills``: OGX's
    skills API and its builtin provider too."""
    text = EXAMPLE.read_text()
    if text.count(_BUILTIN_ENTRY) != 1:
        raise RuntimeError(f"{EXAMPLE.name}: expected one inline::builtin responses provider entry")
    text = text.replace(_BUILTIN_ENTRY, _OUR_ENTRY)
    header = (
        "# OGX 1.5 run config with responses-rs as the responses provider (python -m responses_rs.ogx run-config):\n"
        f"# the packaged {EXAMPLE.name} with its responses provider entry switched to {PROVIDER_TYPE}.\n"
    )
    if postgres:
        if text.count(_SQLITE_SQL_BACKEND) != 1:
            raise RuntimeError(f"{EXAMPLE.name}: expected one sql_sqlite sql_default backend")
        text = text.replace(_SQLITE_SQL_BACKEND, _POSTGRES_SQL_BACKEND)
        header += (
            "# --postgres: the sql_default backend (all SQL stores) on PostgreSQL: POSTGRES_HOST (default localhost),\n"
            "# POSTGRES_PORT (5432), POSTGRES_DB (ogx), POSTGRES_USER (ogx), POSTGRES_PASSWORD (ogx).\n"
        )
    if skills:
        if text.count(_RESPONSES_API) != 1 or text.count(_VECTOR_IO_PROVIDERS) != 1:
            raise RuntimeError(f"{EXAMPLE.name}: expected one responses api line and one vector_io providers entry")
        text = text.replace(_RESPONSES_API, _RESPONSES_API + _SKILLS_API)
        text = text.replace(_VECTOR_IO_PROVIDERS, _SKILLS_PROVIDER + _VECTOR_IO_PROVIDERS)
        header += "# --skills: OGX's (alpha) skills API, served by its inline::builtin skills provider.\n"
    return header + text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m responses_rs.ogx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_config = sub.add_parser(
        "run-config", help="print an OGX run config with responses-rs as the responses provider"
    )
    run_config.add_argument(
        "--postgres", action="store_true", help="SQL stores on PostgreSQL (POSTGRES_HOST, _PORT, _DB, _USER, _PASSWORD)"
    )
    run_config.add_argument(
        "--skills", action="store_true", help="also OGX's (alpha) skills API, for the responses `skills` field"
    )
    args = parser.parse_args(argv)
    if args.command == "run-config":
        sys.stdout.write(render_run_config(postgres=args.postgres, skills=args.skills))
    return 0


if __name__ == "__main__":
    sys.exit(main())
