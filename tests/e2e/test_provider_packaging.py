"""The llama-stack provider as packaged: spec file, example run configs, entry point (no server needed)."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from pathlib import Path

import yaml
from llama_stack.distribution.datatypes import Api, StackRunConfig
from llama_stack.distribution.distribution import get_provider_registry
from llama_stack.providers.registry.agents import available_providers
from llama_stack.providers.utils.kvstore.config import SqliteKVStoreConfig

from responses_rs import llama_stack as provider

LLAMA_STACK_VERSION = importlib.metadata.version("llama_stack")


def test_spec_file_is_where_llama_stack_looks():
    spec_path = Path(provider.providers_dir()) / "inline" / "agents" / "responses_rs.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["module"] == "responses_rs.llama_stack"
    module_name, _, class_name = spec["config_class"].rpartition(".")
    config_class = getattr(importlib.import_module(module_name), class_name)
    assert config_class.__name__ == "MetaReferenceAgentsImplConfig"
    stock = next(p for p in available_providers() if p.provider_type == "inline::meta-reference")
    assert sorted(spec["api_dependencies"]) == sorted(api.value for api in stock.api_dependencies)


def test_llama_stack_registry_loads_the_spec():
    config = StackRunConfig.model_validate(yaml.safe_load(provider.render_run_config()))
    assert str(config.external_providers_dir) == provider.providers_dir()
    registry = get_provider_registry(config)
    spec = registry[Api.agents][provider.PROVIDER_TYPE]
    assert spec.module == "responses_rs.llama_stack"
    (agents,) = config.providers["agents"]
    assert agents.provider_type == provider.PROVIDER_TYPE


def test_entry_point_signature_serves_both_resolvers():
    # 0.2.7 calls get_provider_impl(config, deps); 0.2.12 appends policy iff a parameter has that name
    params = inspect.signature(provider.get_provider_impl).parameters
    assert list(params)[:2] == ["config", "deps"]
    assert "policy" in params and params["policy"].default is None
    assert inspect.iscoroutinefunction(provider.get_provider_impl)


def test_example_config_for_installed_version():
    path = Path(provider.example_config())
    assert path.name == f"run-{LLAMA_STACK_VERSION}.yaml"
    text = path.read_text()
    assert provider.PROVIDERS_DIR_PLACEHOLDER in text
    rendered = yaml.safe_load(provider.render_run_config())
    agents_config = rendered["providers"]["agents"][0]["config"]
    assert SqliteKVStoreConfig(**agents_config["persistence_store"]).type == "sqlite"
    assert ("responses_store" in agents_config) == (LLAMA_STACK_VERSION != "0.2.7")
    assert rendered["providers"]["inference"][0]["provider_type"] == "remote::vllm"


def test_cli(capsys):
    assert provider.main(["providers-dir"]) == 0
    assert capsys.readouterr().out.strip() == provider.providers_dir()
    assert provider.main(["run-config"]) == 0
    assert f"external_providers_dir: {provider.providers_dir()}" in capsys.readouterr().out
