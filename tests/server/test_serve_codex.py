"""Codex CLI (npm ``@openai/codex``, installed by ``scripts/codex.sh`` into a cache outside the checkout) on its
default settings, configured with ``responses-rs serve`` as a custom Responses provider, completes a task with one
shell-tool round trip against the scripted Chat Completions model. Everything stays on 127.0.0.1: Codex's outbound
HTTP(S) goes to a dead proxy port, only loopback bypasses it.

One Codex run (``codex exec``); skipped with the reason when npm (or the install) is not available."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_process import serve_process

from responses_rs.testkit import ScriptedChatServer

REPO = Path(__file__).resolve().parents[2]
MODEL = "scripted-model"
MARKER = "codex-round-trip-7f3a"


def _codex() -> str:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: Codex CLI (npm @openai/codex) cannot be installed")
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "codex.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"scripts/codex.sh could not install Codex CLI: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def codex() -> str:
    return _codex()


@pytest.fixture
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


def _sandbox() -> str:
    """Codex's workspace-write sandbox (bubblewrap) needs unprivileged user namespaces; where the machine forbids
    them (some CI runners) the command runs unsandboxed, the test being confined to its temporary directory."""
    unshare = shutil.which("unshare")
    if unshare is not None:
        probe = subprocess.run([unshare, "--user", "--map-root-user", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return "workspace-write"
    return "danger-full-access"


def _shell_tool(body: dict[str, Any]) -> tuple[str, str]:
    """The shell tool Codex offers (its chat function name, and the argument that holds the command)."""
    names = [t["function"]["name"] for t in body.get("tools", [])]
    for name, argument in (("exec_command", "cmd"), ("shell", "command"), ("local_shell", "command")):
        if name in names:
            return name, argument
    raise AssertionError(f"Codex offered no shell tool: {names}")


def _codex_exec(
    codex: str, chat_server: ScriptedChatServer, tmp_path: Path, work: Path, prompt: str, config: str = ""
) -> tuple[subprocess.CompletedProcess[str], str]:
    """One `codex exec` (its last message to tmp_path/last-message.txt) against a `responses-rs serve` in front of
    the scripted model, configured as a custom Responses provider (`config`: more top-level config.toml keys).
    Returns the finished process and a report for assertion messages (Codex's output and serve's log)."""
    home = tmp_path / "codex-home"
    home.mkdir()
    with serve_process(chat_server.base_url, tmp_path / "data", "--api-key", "sk-codex-test") as serve:
        (home / "config.toml").write_text(
            f'model = "{MODEL}"\n'
            'model_provider = "responses-rs"\n'
            f"{config}"
            "[model_providers.responses-rs]\n"
            'name = "responses-rs serve"\n'
            f'base_url = "{serve.base_url}"\n'
            'wire_api = "responses"\n'
            'env_key = "RESPONSES_RS_TEST_KEY"\n'
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CODEX_HOME": str(home),
            "RESPONSES_RS_TEST_KEY": "sk-codex-test",
            # Loopback only: anything else Codex would reach goes to a closed port.
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "ALL_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
            "RUST_LOG": "warn",
        }
        done = subprocess.run(
            [
                codex,
                "exec",
                "--skip-git-repo-check",
                "--ephemeral",
                "--sandbox",
                _sandbox(),
                "--color",
                "never",
                "--json",
                "-o",
                str(tmp_path / "last-message.txt"),
                "-C",
                str(work),
                prompt,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
            check=False,
        )
        log = "\n".join(serve.log)
    report = (
        f"codex exit {done.returncode}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}\nserve:\n{log}"
    )
    return done, report


def test_codex_exec_runs_a_shell_command_through_serve(
    codex: str, chat_server: ScriptedChatServer, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    seen: dict[str, Any] = {}

    def call_the_shell(body: dict[str, Any]) -> dict[str, Any]:
        name, argument = _shell_tool(body)
        seen["tool"] = name
        command = f"echo {MARKER} > proof.txt && cat proof.txt"
        value: Any = command if argument == "cmd" else ["bash", "-lc", command]
        # Reasoning first: the output Codex replays (store: false) then starts with a reasoning item.
        return {
            "reasoning": "Run the command, then report.",
            "tool_calls": [{"name": name, "arguments": {argument: value}, "id": "call_shell_1"}],
        }

    def answer_with_the_output(body: dict[str, Any]) -> dict[str, Any]:
        outputs = [m for m in body["messages"] if m.get("role") == "tool"]
        seen["tool_output"] = outputs[-1]["content"] if outputs else None
        return {"text": f"The command printed: {MARKER}. Done."}

    chat_server.script([call_the_shell, answer_with_the_output])
    done, report = _codex_exec(
        codex,
        chat_server,
        tmp_path,
        work,
        "Write the marker into proof.txt with the shell and tell me what it printed.",
    )
    last = tmp_path / "last-message.txt"
    assert done.returncode == 0, report
    # Codex ran the command in its working directory ...
    assert (work / "proof.txt").read_text().strip() == MARKER, report
    # ... sent its output back through serve to the model ...
    assert seen.get("tool_output") and MARKER in seen["tool_output"], (seen, report)
    # ... and finished with the model's final answer.
    assert MARKER in last.read_text(), report
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    kinds = [e.get("type") for e in events]
    assert "turn.completed" in kinds, kinds
    commands = [
        e["item"]
        for e in events
        if e.get("type") == "item.completed" and e.get("item", {}).get("type") == "command_execution"
    ]
    assert commands and MARKER in commands[0].get("aggregated_output", ""), events
    # Two upstream requests: the first offered Codex's tools as chat functions (web_search left out), the
    # second carried the shell call and its output.
    requests = chat_server.requests
    assert len(requests) == 2, [r["messages"][-1] for r in requests]
    first = requests[0]
    names = [t["function"]["name"] for t in first["tools"]]
    assert seen["tool"] in names and "web_search" not in names, names
    assert all(t["type"] == "function" for t in first["tools"])
    roles = [m["role"] for m in first["messages"]]
    assert roles[0] in ("system", "developer"), roles
    second = requests[1]
    calls = [c for m in second["messages"] if m.get("tool_calls") for c in m["tool_calls"]]
    assert calls and calls[-1]["id"] == "call_shell_1" and calls[-1]["function"]["name"] == seen["tool"]
    assert second["messages"][: len(first["messages"])] == first["messages"]
    print(f"codex tools offered upstream: {len(names)}; shell tool: {seen['tool']}", file=sys.stderr)


def test_codex_compacts_its_context_through_serve(codex: str, chat_server: ScriptedChatServer, tmp_path: Path) -> None:
    """Codex's automatic compaction, forced by a small `model_auto_compact_token_limit`: for a custom provider Codex
    0.171 compacts with an ordinary /responses turn (its checkpoint prompt; the `compaction_trigger` item and
    /responses/compact are for OpenAI's own provider), then resumes the task from the summary."""
    work = tmp_path / "work"
    work.mkdir()
    summary = "Checkpoint: the shell printed a long line of x; the task is done but for the final answer."

    def call_the_shell(body: dict[str, Any]) -> dict[str, Any]:
        name, argument = _shell_tool(body)
        command = "printf 'x%.0s' $(seq 1 3000)"
        value: Any = command if argument == "cmd" else ["bash", "-lc", command]
        return {"tool_calls": [{"name": name, "arguments": {argument: value}, "id": "call_shell_1"}]}

    chat_server.script([call_the_shell, {"text": summary}, {"text": "Done after compaction."}])
    done, report = _codex_exec(
        codex,
        chat_server,
        tmp_path,
        work,
        "Print a long line of x with the shell.",
        config="model_auto_compact_token_limit = 300\nmodel_context_window = 4000\n",
    )
    assert done.returncode == 0, report
    assert (tmp_path / "last-message.txt").read_text().strip() == "Done after compaction.", report
    texts = [
        json.dumps([m.get("content") for m in r["messages"]]) for r in chat_server.requests
    ]  # every upstream request's message contents
    assert len(texts) == 3, report
    # The second request is Codex's compaction turn; the third resumes from its summary, without the long output.
    assert "COMPACTION" in texts[1] and "x" * 3000 in texts[1], texts[1][-500:]
    assert summary in texts[2] and "x" * 3000 not in texts[2], texts[2][-2000:]
