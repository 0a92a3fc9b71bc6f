"""`module: responses_rs.ogx` as OGX loads it: the spec through OGX's own module loader, the run config
from ``python -m responses_rs.ogx run-config``, and `get_provider_impl` with OGX's builtin config class."""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from unittest.mock import AsyncMock

import yaml
from ogx.core.datatypes import StackConfig
from ogx.core.distribution import get_external_providers_from_module
from ogx.core.stack import replace_env_vars
from ogx.core.storage.datatypes import PostgresSqlStoreConfig, SqliteKVStoreConfig, SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx.providers.registry.responses import available_providers
from ogx_api import Api, InlineProviderSpec

from responses_rs.ogx import OGXResponsesImpl
from responses_rs.ogx.__main__ import render_run_config
from responses_rs.ogx.provider import get_provider_impl, get_provider_spec


def builtin_spec() -> Any:
    return next(p for p in available_providers() if p.provider_type == "inline::builtin")


def test_spec_mirrors_the_builtin() -> None:
    spec = get_provider_spec()
    builtin = builtin_spec()
    assert isinstance(spec, InlineProviderSpec)
    assert spec.api == Api.responses and spec.provider_type == "inline::responses_rs"
    assert spec.config_class == builtin.config_class
    assert spec.api_dependencies == builtin.api_dependencies
    assert spec.optional_api_dependencies == builtin.optional_api_dependencies == [Api.skills]
    assert spec.module == "responses_rs.ogx.provider"


def stack_config(monkeypatch: Any, tmp_path: Any) -> StackConfig:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-model")
    monkeypatch.setenv("SQLITE_STORE_DIR", str(tmp_path))
    return StackConfig(**replace_env_vars(yaml.safe_load(render_run_config())))


def test_run_config_loads_our_provider_through_ogx(monkeypatch: Any, tmp_path: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "responses_rs.ogx", "run-config"], check=True, capture_output=True, text=True
    ).stdout
    assert out == render_run_config()
    config = stack_config(monkeypatch, tmp_path)
    (entry,) = config.providers["responses"]
    assert (entry.provider_id, entry.provider_type, entry.module) == (
        "responses-rs",
        "inline::responses_rs",
        "responses_rs.ogx",
    )
    registry = get_external_providers_from_module({Api.responses: {}}, config, listing=False)
    spec = registry[Api.responses]["inline::responses_rs"]
    assert spec.module == "responses_rs.ogx.provider"
    # the config block is the builtin's, unchanged
    assert BuiltinResponsesImplConfig(**entry.config).persistence.responses.table_name == "responses"


def test_run_config_postgres_puts_the_sql_backend_on_postgres(monkeypatch: Any, tmp_path: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "responses_rs.ogx", "run-config", "--postgres"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == render_run_config(postgres=True)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-model")
    monkeypatch.setenv("SQLITE_STORE_DIR", str(tmp_path))
    monkeypatch.setenv("POSTGRES_HOST", "127.0.0.1")
    monkeypatch.setenv("POSTGRES_PORT", "55432")
    monkeypatch.setenv("POSTGRES_DB", "d")
    monkeypatch.setenv("POSTGRES_USER", "u")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p")
    config = StackConfig(**replace_env_vars(yaml.safe_load(out)))
    sql = config.storage.backends["sql_default"]
    assert isinstance(sql, PostgresSqlStoreConfig)
    assert (sql.host, int(sql.port), sql.db, sql.user, sql.password.get_secret_value()) == (
        "127.0.0.1",
        55432,
        "d",
        "u",
        "p",
    )
    # the kv store (OGX's registry) stays sqlite, per server
    assert isinstance(config.storage.backends["kv_default"], SqliteKVStoreConfig)
    # and the default is unchanged
    assert isinstance(stack_config(monkeypatch, tmp_path).storage.backends["sql_default"], SqliteSqlStoreConfig)


async def test_get_provider_impl_builds_ogx_store(tmp_path: Any) -> None:
    register_sqlstore_backends({"sql_default": SqliteSqlStoreConfig(db_path=str(tmp_path / "s.db"))})
    config = BuiltinResponsesImplConfig(persistence={"responses": {"table_name": "rr", "backend": "sql_default"}})
    deps = {api: AsyncMock(name=api.value) for api in builtin_spec().api_dependencies}
    impl = await get_provider_impl(config, deps, [])
    assert isinstance(impl, OGXResponsesImpl)
    assert impl.inference_api is deps[Api.inference] and impl.tool_runtime_api is deps[Api.tool_runtime]
    assert impl.responses_store.reference.table_name == "rr"
    listed = await impl.responses_store.list_responses()
    assert listed.data == []
