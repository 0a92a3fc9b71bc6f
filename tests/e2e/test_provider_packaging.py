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


# ------------------------------------------------------------------------------------------------
# create_openai_response: request fields llama-stack's route does not declare


def _agents_with(responses_impl):
    """llama-stack's agents class, not initialised, holding ``responses_impl`` (enough for the
    route and the protocol check, which only look at methods)."""
    from llama_stack.providers.inline.agents.meta_reference.agents import MetaReferenceAgentsImpl

    agents = object.__new__(MetaReferenceAgentsImpl)
    agents.openai_responses_impl = responses_impl
    return agents


class _ResponsesTakingEverything:
    def __init__(self):
        self.calls = []

    async def create_openai_response(self, input, model, **kwargs):
        self.calls.append({"input": input, "model": model, **kwargs})
        return {"id": "resp_1", "object": "response"}


class _ResponsesTakingSome:
    async def create_openai_response(self, input, model, previous_response_id=None, top_p=None, metadata=None):
        raise AssertionError("not called")


def _declared():
    from llama_stack.apis.agents import Agents

    return [p for p in inspect.signature(Agents.create_openai_response).parameters if p != "self"]


def test_create_keeps_llama_stacks_signature_when_responses_rs_takes_no_extra_field():
    from responses_rs import OpenAIResponsesImpl

    impl = OpenAIResponsesImpl.__new__(
        OpenAIResponsesImpl, *([object()] if LLAMA_STACK_VERSION == "0.2.7" else [])
    )  # the contract class of this llama-stack, not initialised
    agents = _agents_with(impl)
    before = agents.create_openai_response
    extras = provider._accepted_extras(impl.create_openai_response, _declared())
    provider._widen_create(agents)
    if extras:  # responses-rs already takes some: the route names exactly those
        assert list(inspect.signature(agents.create_openai_response).parameters) == _declared() + extras
    else:
        assert agents.create_openai_response == before
        assert "create_openai_response" not in vars(agents)


def test_create_widened_to_what_responses_rs_takes():
    from llama_stack.apis.agents import Agents
    from llama_stack.distribution.resolver import check_protocol_compliance

    agents = _agents_with(_ResponsesTakingSome())
    provider._widen_create(agents)
    params = list(inspect.signature(agents.create_openai_response).parameters)
    assert params == _declared() + ["top_p", "metadata"]
    check_protocol_compliance(agents, Agents)  # raises when the signature misses a protocol parameter

    agents = _agents_with(_ResponsesTakingEverything())
    provider._widen_create(agents)
    params = list(inspect.signature(agents.create_openai_response).parameters)
    assert params == _declared() + [f for f in provider.EXTRA_REQUEST_FIELDS if f not in _declared()]
    check_protocol_compliance(agents, Agents)


def test_widened_route_carries_the_extra_fields():
    """Through llama-stack's own route factory (what ``llama stack run`` serves) and FastAPI."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from llama_stack.distribution.server.server import create_dynamic_typed_route

    responses = _ResponsesTakingEverything()
    agents = _agents_with(responses)
    provider._widen_create(agents)
    app = FastAPI()
    route = "/v1/openai/v1/responses"
    app.post(route, response_model=None)(create_dynamic_typed_route(agents.create_openai_response, "post", route))
    extras = {
        "max_output_tokens": 33,
        "top_p": 0.25,
        "tool_choice": {"type": "function", "name": "f"},
        "parallel_tool_calls": False,
        "max_tool_calls": 2,
        "metadata": {"k": "v"},
        "truncation": "disabled",
        "user": "u-1",
        "safety_identifier": "sid",
        "prompt_cache_key": "pck",
        "service_tier": "auto",
    }
    with TestClient(app) as http:
        r = http.post(route, json={"model": "m", "input": "hi", **extras})
        assert r.status_code == 200, r.text
        r = http.post(route, json={"model": "m", "input": "again"})
        assert r.status_code == 200, r.text
    with_extras, without = responses.calls
    assert {k: with_extras[k] for k in extras} == extras
    assert with_extras["store"] is True and with_extras["previous_response_id"] is None
    # fields not sent are not passed (responses-rs' own defaults apply); llama-stack's always are
    assert not set(extras) & set(without)
    assert set(_declared()) <= set(without)
