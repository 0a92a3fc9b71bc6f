"""Which suites apply to the installed host.

Each virtual environment has one host installed: llama-stack (0.2.7, 0.2.12) or OGX (``tests/host_ogx/``, its own
conftest). The llama-stack fixtures (``llama_stack_conftest.py``) are loaded only where llama-stack is
installed; elsewhere the llama-stack suites are not collected, and ``tests/host_ogx/`` is not collected where OGX is
not installed. The suites that need no host (the test kit's chat server) run everywhere.
``tests/server/`` (``responses-rs serve``) is collected where the server extra's HTTP parser (httptools) is installed:
scripts/venv.sh installs it in the 0.2.12 venv only, so the suite runs once.
"""

from __future__ import annotations

import importlib.util

import pytest

pytest.register_assert_rewrite("stream_validator", "llama_stack_conftest")

HAVE_LLAMA_STACK = importlib.util.find_spec("llama_stack") is not None
HAVE_OGX = importlib.util.find_spec("ogx") is not None and importlib.util.find_spec("ogx_api") is not None

# The suites built on llama-stack's classes and collaborators.
LLAMA_STACK_SUITES = [
    "conftest_0212.py",
    "test_command_line.py",
    "test_construct.py",
    "test_glue.py",
    "test_glue_call_surrogates.py",
    "test_mcp_0212.py",
    "test_open_responses_schema.py",
    "test_responses_0212.py",
    "test_responses_027.py",
    "test_store_compat_0212.py",
    "test_store_compat_027.py",
    "test_stream_validator.py",
    "e2e/test_llama_stack_e2e.py",
    "e2e/test_provider_packaging.py",
]

collect_ignore: list[str] = []
if HAVE_LLAMA_STACK:
    from llama_stack_conftest import *  # noqa: F403  (fixtures, hooks and the names the suites import)
    from llama_stack_conftest import _bind, _split  # noqa: F401
else:
    collect_ignore += LLAMA_STACK_SUITES
if not HAVE_OGX:
    collect_ignore.append("host_ogx")
if importlib.util.find_spec("httptools") is None or importlib.util.find_spec("uvicorn") is None:
    collect_ignore.append("server")
