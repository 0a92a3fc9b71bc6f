"""The package's command lines when something they need is missing: one clear message, a non-zero exit.

``python -m responses_rs.llama_stack run-config`` without llama-stack, and ``python -m responses_rs.demo``
without the openai client (or llama-stack). Installing into a fresh venv without them is heavy, so
llama-stack's metadata and import are patched out here; the demo's missing openai is simulated in a
child interpreter (``sys.modules["openai"] = None`` makes ``import openai`` fail like an absent package).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from responses_rs import demo
from responses_rs import llama_stack as provider


def _no_metadata(name: str) -> str:
    raise importlib.metadata.PackageNotFoundError(name)


@pytest.fixture
def no_llama_stack(monkeypatch):
    monkeypatch.setattr(provider, "_dist_version", _no_metadata)
    monkeypatch.setattr(provider, "_find_spec", lambda name: None)


@pytest.mark.parametrize("command", ["run-config", "example"])
def test_without_llama_stack_exits_non_zero_with_a_clear_message(no_llama_stack, capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        provider.main([command])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "llama-stack is not installed in this Python environment" in err
    assert "pip install 'llama-stack==0.2.12'" in err
    assert "None" not in err


def test_without_llama_stack_an_explicit_version_still_renders(no_llama_stack, capsys):
    assert provider.main(["run-config", "0.2.12"]) == 0
    assert f"external_providers_dir: {provider.providers_dir()}" in capsys.readouterr().out


def test_llama_stack_without_metadata_asks_for_the_version(monkeypatch, capsys):
    monkeypatch.setattr(provider, "_dist_version", _no_metadata)
    monkeypatch.setattr(provider, "_find_spec", lambda name: object())  # importable, e.g. vendored
    with pytest.raises(SystemExit) as exit_info:
        provider.main(["run-config"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "has no package metadata, so its version is unknown" in err
    assert "None" not in err


def test_unsupported_llama_stack_version_named(monkeypatch, capsys):
    monkeypatch.setattr(provider, "_dist_version", lambda name: "0.2.20")
    with pytest.raises(SystemExit) as exit_info:
        provider.main(["run-config"])
    assert exit_info.value.code == 2
    assert "no example run config for llama-stack '0.2.20'; have 0.2.7, 0.2.12" in capsys.readouterr().err


def test_demo_without_openai_prints_one_line_and_exits_2():
    code = "import sys; sys.modules['openai'] = None; from responses_rs import demo; sys.exit(demo.main())"
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "the demo needs openai" in lines[0] and "pip install openai" in lines[0]
    assert done.stdout == ""


def test_demo_without_llama_stack_says_so(monkeypatch, capsys):
    monkeypatch.setattr(provider, "_dist_version", _no_metadata)
    monkeypatch.setattr(demo, "run", lambda: pytest.fail("the demo must not start without llama-stack"))
    assert demo.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'llama-stack==0.2.12'" in err[0]


def test_demo_with_everything_installed_runs(monkeypatch):
    monkeypatch.setattr(demo, "run", lambda: 0)
    assert demo.missing_requirements() == []
    assert demo.main() == 0
