"""Command line for the OGX provider::

python -m responses_rs.ogx run-config   # a complete OGX run config with responses-rs as the responses provider
python -m responses_rs.ogx run-config --postgres   # the same with the SQL store (responses, conversations, ...) on
                                                   # PostgreSQL: POSTGRES_HOST, _PORT, _DB, _USER, _PASSWORD
python -m responses_rs.ogx run-config --skills     # also OGX's (alpha) skills API and its inline::builtin provider,
                                                   # for the responses `skills` field
python -m responses_rs.ogx run-config --file-search  # also an embedding model (OPENAI_EMBEDDING_MODEL, _DIMENSION) as
                                                     # the vector stores' default, so vector_stores.create and the
                                                     # Responses file_search tool work
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

# --file-search: an embedding model served by the same OpenAI-compatible server, registered and made the vector
# stores' default (the stack-level `vector_stores:` block), and a file processor (OGX's pypdf one: PDF and text
# files) that turns an attached file into chunks, so files can be indexed and searched.
_SERVER_ENTRY = "server:\n"
_TOOL_RUNTIME_ENTRY = "  tool_runtime:\n"
_FILE_PROCESSOR = "  file_processors:\n  - provider_id: pypdf\n    provider_type: inline::pypdf\n    config: {}\n"
_LLM_MODEL_END = "    model_type: llm\n    metadata: {}\n"
_EMBEDDING_MODEL = (
    "  - model_id: ${env.OPENAI_EMBEDDING_MODEL}\n"
    "    provider_id: openai-compatible\n"
    "    provider_model_id: ${env.OPENAI_EMBEDDING_MODEL}\n"
    "    model_type: embedding\n"
    "    metadata:\n"
    "      embedding_dimension: ${env.OPENAI_EMBEDDING_DIMENSION:=768}\n"
)
_VECTOR_STORES = (
    "vector_stores:\n"
    "  default_provider_id: sqlite-vec\n"
    "  default_embedding_model:\n"
    "    provider_id: openai-compatible\n"
    "    model_id: ${env.OPENAI_EMBEDDING_MODEL}\n"
)


def render_run_config(*, postgres: bool = False, skills: bool = False, file_search: bool = False) -> str:
    """The packaged OGX example run config (``examples/ogx-builtin.yaml``) with responses-rs as the responses
    provider; the config block (OGX's ``BuiltinResponsesImplConfig``) is unchanged. ``postgres``: the SQL
    backend on PostgreSQL (``POSTGRES_*`` env), so servers sharing the database share responses. ``skills``: OGX's
    skills API and its builtin provider too. ``file_search``: an embedding model (``OPENAI_EMBEDDING_MODEL``,
    ``OPENAI_EMBEDDING_DIMENSION``, default 768) on the same server, the vector stores' default, so vector stores
    can be created and searched."""
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
    if file_search:
        if any(text.count(entry) != 1 for entry in (_LLM_MODEL_END, _SERVER_ENTRY, _TOOL_RUNTIME_ENTRY)):
            raise RuntimeError(f"{EXAMPLE.name}: expected one llm model entry, one tool_runtime and one server block")
        text = text.replace(_LLM_MODEL_END, _LLM_MODEL_END + _EMBEDDING_MODEL)
        text = text.replace(_TOOL_RUNTIME_ENTRY, _FILE_PROCESSOR + _TOOL_RUNTIME_ENTRY)
        text = text.replace(_SERVER_ENTRY, _VECTOR_STORES + _SERVER_ENTRY)
        header += (
            "# --file-search: the embedding model OPENAI_EMBEDDING_MODEL (required; OPENAI_EMBEDDING_DIMENSION,\n"
            "# default 768) on the same server, registered and made the default embedding model of vector stores;\n"
            "# OGX's pypdf file processor (PDF and text files) chunks the files attached to a vector store.\n"
        )
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
    run_config.add_argument(
        "--file-search",
        action="store_true",
        help="an embedding model (OPENAI_EMBEDDING_MODEL, OPENAI_EMBEDDING_DIMENSION) as the vector stores' default",
    )
    args = parser.parse_args(argv)
    if args.command == "run-config":
        sys.stdout.write(render_run_config(postgres=args.postgres, skills=args.skills, file_search=args.file_search))
    return 0


if __name__ == "__main__":
    sys.exit(main())
