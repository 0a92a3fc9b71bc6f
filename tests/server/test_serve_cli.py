"""`responses-rs serve`'s flags and their environment variables (the parser, in process)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from responses_rs.server import parser


def test_every_flag_has_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "RESPONSES_RS_UPSTREAM": "http://upstream:8000/v1",
        "RESPONSES_RS_UPSTREAM_KEY": "sk-up",
        "RESPONSES_RS_MODEL_ALIASES": "a=b, c=d",
        "RESPONSES_RS_HOST": "0.0.0.0",
        "RESPONSES_RS_PORT": "9000",
        "RESPONSES_RS_DATA_DIR": "/data",
        "RESPONSES_RS_DB": "/data/x.db",
        "RESPONSES_RS_API_KEYS": "k1,k2",
        "RESPONSES_RS_UPSTREAM_TIMEOUT": "12.5",
        "RESPONSES_RS_MAX_UPSTREAM": "7",
        "RESPONSES_RS_MAX_BODY_BYTES": "1024",
        "RESPONSES_RS_SHUTDOWN_TIMEOUT": "3",
        "RESPONSES_RS_LOG_LEVEL": "debug",
        "RESPONSES_RS_HTTP": "h11",
        "RESPONSES_RS_LOOP": "asyncio",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parser().parse_args([])
    assert (args.upstream, args.upstream_key, args.model_alias) == (
        ["http://upstream:8000/v1"],
        ["sk-up"],
        ["a=b", "c=d"],
    )
    assert (args.host, args.port, args.data_dir, args.db) == ("0.0.0.0", 9000, "/data", "/data/x.db")
    assert (args.api_key, args.upstream_timeout, args.max_upstream) == (["k1", "k2"], ["12.5"], 7)
    assert (args.max_body_bytes, args.shutdown_timeout, args.log_level) == (1024, 3.0, "debug")
    assert (args.http, args.loop) == ("h11", "asyncio")
    # A flag wins over its variable.
    assert parser().parse_args(["--port", "1234", "--upstream", "http://x/v1"]).port == 1234


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UPSTREAM", "PORT", "HOST", "DATA_DIR", "API_KEYS", "MODEL_ALIASES"):
        monkeypatch.delenv(f"RESPONSES_RS_{name}", raising=False)
    args = parser().parse_args(["--upstream", "http://x/v1"])
    assert (args.host, args.port, args.api_key, args.model_alias) == ("127.0.0.1", 8080, [], [])
    assert args.data_dir.endswith("responses-rs") and args.db is None


def test_a_key_without_upstream_and_bad_alias_are_refused(tmp_path: Path) -> None:
    # (No --upstream at all is not refused: the scripted model answers, tests/server/test_serve_trial.py.)
    script = Path(sys.executable).parent / "responses-rs"
    env = {"PATH": str(script.parent), "HOME": str(tmp_path)}
    for flags, extra in ((["--upstream-key", "sk-x"], {}), ([], {"RESPONSES_RS_UPSTREAM_KEY": "sk-x"})):
        keyed = subprocess.run(
            [str(script), "serve", *flags], capture_output=True, text=True, env={**env, **extra}, timeout=60
        )
        assert keyed.returncode == 2 and "--upstream-key" in keyed.stderr and "without --upstream" in keyed.stderr
        assert "sk-x" not in keyed.stderr
    alias = subprocess.run(
        [str(script), "serve", "--upstream", "http://x/v1", "--model-alias", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert alias.returncode == 2 and "ALIAS=MODEL" in alias.stderr
    usage = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert usage.returncode == 2 and "responses-rs serve" in usage.stderr


def test_a_busy_port_is_said_so(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "responses-rs"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                str(script),
                "serve",
                "--upstream",
                "http://127.0.0.1:9/v1",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
