#!/usr/bin/env python3
"""Server-level benchmark: `ogx run` with OGX's builtin responses provider and with responses-rs, against the
project's scripted Chat Completions server (zero latency) on loopback, side by side in one run.

Three targets, each driven by N concurrent streamed clients (asyncio + httpx, closed loop) for a fixed number of
requests per phase:

- model:   the scripted chat server alone (streamed chat completions, what both OGX servers call);
- builtin: `ogx run` with python/responses_rs/examples/ogx-builtin.yaml (inline::builtin);
- ours:    `ogx run` with `python -m responses_rs.ogx run-config` (responses-rs).

For every (concurrency, target) it prints requests/s, p50/p99 time to first event and to completion, and the CPU
ms per request of the server process tree (utime + stime from /proc/<pid>/stat) and of the model server, then the
ratios. Each stream is checked (ends with [DONE] / response.completed); a failed one counts as an error.

    .venv-ogx-1.5.0/bin/python bench/bench_ogx_server.py [--quick] [--clients 1,10,50]

A benchmark, not a test: a missed target is reported, never raised. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from responses_rs.testkit.ogx_run import ogx_run

MODEL = "bench-model"
TARGETS = ("model", "builtin", "ours", "serve")
# `responses-rs serve` (issue 8's standalone server) runs from the venv with its server extra (httptools, uvloop):
# scripts/venv.sh installs that in the 0.2.12 venv, not in the OGX one.
SERVE_PYTHON = Path(__file__).resolve().parent.parent / ".venv-0.2.12" / "bin" / "python"
TARGET_RPS = 0.9  # ours: requests/s within 10% of the model server alone
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXAMPLE = Path(__file__).resolve().parent.parent / "python" / "responses_rs" / "examples" / "ogx-builtin.yaml"


# --------------------------------------------------------------------------- processes


def tree_cpu_s(root: int) -> float:
    """utime + stime (seconds) of `root` and every live descendant, from /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # after the comm: state(0) ppid(1) ... utime(11) stime(12)
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += [p for p, pp in parents.items() if pp == pid]
    return total


@contextlib.contextmanager
def chat_server() -> Iterator[tuple[str, int]]:
    """`python -m responses_rs.testkit.chat_server` in its own process; yields (base URL, pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "responses_rs.testkit.chat_server", "--port", "0", "--model", MODEL],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2:
            raise RuntimeError(f"chat server did not start: {line}")
        yield line[1], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def ogx_server(config_text: str, state: Path, model_url: str) -> Iterator[tuple[str, int]]:
    """`ogx run CONFIG` with its sqlite stores and log in `state`; yields (base URL, pid)."""
    state.mkdir(parents=True, exist_ok=True)
    config = state / "run.yaml"
    config.write_text(config_text)
    with ogx_run(config, state, base_url=model_url, model=MODEL, start_timeout=120) as (base, proc):
        yield base, proc.pid


@contextlib.contextmanager
def serve_server(python: Path, state: Path, model_url: str) -> Iterator[tuple[str, int]]:
    """`responses-rs serve` (run by `python`) on a free port in front of the chat server, its sqlite store in
    `state`; yields (base URL, pid) once it prints its ready line."""
    state.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(python), "-m", "responses_rs.server", "--upstream", model_url, "--port", "0", "--data-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=(state / "serve.log").open("w"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("RESPONSES_RS_SERVE "):
                yield line.split()[1], proc.pid
                break
        else:
            raise RuntimeError(f"responses-rs serve did not start:\n{(state / 'serve.log').read_text()[-4000:]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- load


@dataclass
class Target:
    name: str
    url: str  # the streamed POST endpoint
    body: dict[str, Any]
    done_marker: bytes  # the last data line must contain it
    pid: int  # whose process tree's CPU is counted


@dataclass
class Phase:
    target: str
    clients: int
    requests: int = 0
    errors: int = 0
    wall_s: float = 0.0
    first: list[float] = field(default_factory=list)  # seconds to the first event
    done: list[float] = field(default_factory=list)  # seconds to the end of the stream
    server_cpu_s: float = 0.0
    model_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    error_sample: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1e3


async def one_request(client: httpx.AsyncClient, target: Target, phase: Phase) -> None:
    t0 = time.perf_counter()
    first = None
    last = b""
    try:
        async with client.stream("POST", target.url, json=target.body) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}")
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    if first is None:
                        first = time.perf_counter()
                    last = line.encode()
        if first is None or target.done_marker not in last:
            raise RuntimeError(f"stream ended without {target.done_marker!r}: {last[:200]!r}")
    except Exception as exc:  # noqa: BLE001 - counted and sampled, the run goes on
        phase.errors += 1
        phase.error_sample = phase.error_sample or f"{type(exc).__name__}: {exc}"
        return
    end = time.perf_counter()
    phase.requests += 1
    phase.first.append(first - t0)
    phase.done.append(end - t0)


async def run_phase(target: Target, clients: int, total: int, model_pid: int, timeout_s: float) -> Phase:
    """`clients` workers each send one streamed request after another until `total` have been sent."""
    phase = Phase(target.name, clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
        remaining = clients  # warm-up, untimed: one request per connection

        async def worker(into: Phase) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one_request(client, target, into)

        await asyncio.gather(*(worker(Phase(target.name, clients)) for _ in range(clients)))
        remaining = total
        server0, model0, client0 = tree_cpu_s(target.pid), tree_cpu_s(model_pid), time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(phase) for _ in range(clients)))
        phase.wall_s = time.perf_counter() - t0
        phase.client_cpu_s = time.process_time() - client0
        phase.server_cpu_s = tree_cpu_s(target.pid) - server0
        phase.model_cpu_s = tree_cpu_s(model_pid) - model0
    return phase


def reset_model(model_url: str) -> None:
    """Forget the requests the scripted server recorded (it keeps every body)."""
    req = urllib.request.Request(f"{model_url}/__scripted__/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


# --------------------------------------------------------------------------- main


def fmt(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,10,50", help="concurrency levels, comma separated (default 1,10,50)")
    ap.add_argument("--requests", type=int, help="requests per phase: max(this, 4 x clients) (default 100, quick 30)")
    ap.add_argument(
        "--rounds", type=int, help="rounds of every phase; the round with the best req/s is kept (default 2, quick 1)"
    )
    ap.add_argument("--chunks", type=int, default=50, help="text chunks the model streams per answer (default 50)")
    ap.add_argument("--no-store", action="store_true", help="Responses requests with store=false (default: stored)")
    ap.add_argument("--targets", default=",".join(TARGETS), help="which targets (default model,builtin,ours,serve)")
    ap.add_argument(
        "--serve-python",
        default=str(SERVE_PYTHON),
        help="the Python that runs `responses-rs serve` (default .venv-0.2.12/bin/python; missing: no serve target)",
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take")
    ap.add_argument("--quick", action="store_true", help="30 requests per phase (at least 4 x clients), 1 round")
    ap.add_argument("--json", metavar="FILE", help="write every phase's numbers as JSON")
    ap.add_argument("--state", metavar="DIR", help="keep the servers' stores and logs (ogx.log) in DIR/<target>")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",") if c]
    names = [t for t in args.targets.split(",") if t]
    per_phase = args.requests or (30 if args.quick else 100)
    rounds = args.rounds or (1 if args.quick else 2)
    # The scripted server answers "ok: <last user message>" in 4-character chunks (its default turn).
    prompt = ("lorem ipsum dolor sit amet " * (args.chunks * 4 // 27 + 1))[: args.chunks * 4 - 4]
    store = not args.no_store

    from responses_rs.ogx.__main__ import render_run_config

    results: dict[tuple[str, int], Phase] = {}
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.state:
            tmp = Path(args.state)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ogx-server-")))
        model_url, model_pid = stack.enter_context(chat_server())
        targets: dict[str, Target] = {
            "model": Target(
                "model",
                f"{model_url}/chat/completions",
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": prompt}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
                b"[DONE]",
                model_pid,
            )
        }
        configs = {"builtin": EXAMPLE.read_text(), "ours": render_run_config()}
        for name in ("builtin", "ours"):
            if name in names:
                base, pid = stack.enter_context(ogx_server(configs[name], tmp / name, model_url))
                body = {"model": MODEL, "input": prompt, "stream": True, "store": store}
                targets[name] = Target(name, f"{base}/responses", body, b"response.completed", pid)
        if "serve" in names:
            if Path(args.serve_python).exists():
                base, pid = stack.enter_context(serve_server(Path(args.serve_python), tmp / "serve", model_url))
                body = {"model": MODEL, "input": prompt, "stream": True, "store": store}
                targets["serve"] = Target("serve", f"{base}/responses", body, b"response.completed", pid)
            else:
                print(f"no {args.serve_python}: the serve target is left out", file=sys.stderr)
                names.remove("serve")
        for r in range(rounds):
            for clients in levels:
                for name in names:
                    total = max(per_phase, 4 * clients)
                    phase = asyncio.run(run_phase(targets[name], clients, total, model_pid, args.timeout))
                    reset_model(model_url)
                    print(
                        f"  round {r + 1}/{rounds} {name:<8} {clients:>3} clients: {phase.rps:7.1f} req/s"
                        f"{f', {phase.errors} errors' if phase.errors else ''}",
                        file=sys.stderr,
                    )
                    best = results.get((name, clients))
                    if best is None or phase.rps > best.rps:
                        results[(name, clients)] = phase
    elapsed = time.perf_counter() - t_start

    print()
    print(
        f"Server level: ogx run ({importlib.metadata.version('ogx')}) inline::builtin vs responses-rs "
        f"({importlib.metadata.version('responses-rs')}), Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        f"streamed requests, {args.chunks} text chunks per answer from the scripted chat server (zero latency, own "
        f"process), store={str(store).lower()}; closed loop, max({per_phase}, 4 x clients) requests per phase, "
        f"best req/s of {rounds} round(s); everything on loopback, on this machine's cores"
    )
    print()
    hdr = (
        f"{'target':<8} {'clients':>7} {'req/s':>8} {'first p50':>10} {'first p99':>10} {'done p50':>9} "
        f"{'done p99':>9} {'srv CPU':>8} {'model CPU':>9} {'client CPU':>10} {'errors':>6}"
    )
    print(hdr)
    units = zip(("ms", "ms", "ms", "ms", "ms/req", "ms/req", "ms/req"), (10, 10, 9, 9, 8, 9, 10), strict=True)
    print(f"{'':<8} {'':>7} {'':>8} " + " ".join(f"{u:>{w}}" for u, w in units))
    print("-" * len(hdr))
    for clients in levels:
        for name in names:
            p = results[(name, clients)]
            n = p.requests or 1
            srv = "" if name == "model" else fmt(p.server_cpu_s * 1e3 / n, 2)
            print(
                f"{name:<8} {clients:>7} {p.rps:>8.1f} "
                f"{fmt(p.pct(p.first, 0.5), 2):>10} {fmt(p.pct(p.first, 0.99), 2):>10} "
                f"{fmt(p.pct(p.done, 0.5), 2):>9} {fmt(p.pct(p.done, 0.99), 2):>9} {srv:>8} "
                f"{fmt(p.model_cpu_s * 1e3 / n, 2):>9} {fmt(p.client_cpu_s * 1e3 / n, 2):>10} {p.errors:>6}"
            )
    print("-" * len(hdr))
    for clients in levels:
        got = {n: results[(n, clients)] for n in names}
        parts = []
        if "ours" in got and "builtin" in got and got["builtin"].rps:
            o, b = got["ours"], got["builtin"]
            cpu = (o.server_cpu_s / max(o.requests, 1)) / (b.server_cpu_s / max(b.requests, 1) or float("nan"))
            parts.append(f"ours/builtin req/s {o.rps / b.rps:.2f}, server CPU/req {cpu:.2f}")
        if "serve" in got and "model" in got and got["model"].rps and got["model"].model_cpu_s:
            sv, m = got["serve"], got["model"]
            serve_cpu = sv.server_cpu_s / max(sv.requests, 1)
            model_cpu = m.model_cpu_s / max(m.requests, 1)
            parts.append(f"serve CPU/req {serve_cpu / model_cpu:.2f}x the model server's (target <= 2x)")
        if "model" in got and got["model"].rps:
            for name in ("ours", "builtin", "serve"):
                if name in got:
                    parts.append(f"{name}/model req/s {got[name].rps / got['model'].rps:.2f}")
        if "ours" in got and "model" in got and got["model"].rps:
            ok = got["ours"].rps >= TARGET_RPS * got["model"].rps
            parts.append(f"target ours >= {TARGET_RPS:g}x model: {'met' if ok else 'MISSED'}")
        print(f"{clients:>3} clients: " + "; ".join(parts))
    print(
        "srv CPU = the server's process tree's (ogx run, responses-rs serve) utime+stime per request (10 ms ticks, "
        "summed over the phase); model CPU = the scripted chat server's; client CPU = this process's (the load "
        "generator)"
    )
    for p in results.values():
        if p.errors:
            print(f"  - {p.target} {p.clients} clients: {p.errors} errors, e.g. {p.error_sample}")
    print(f"total {elapsed:.1f} s")
    if args.json:
        data = [
            {
                "target": p.target,
                "clients": p.clients,
                "requests": p.requests,
                "errors": p.errors,
                "rps": p.rps,
                "first_ms": {
                    "p50": p.pct(p.first, 0.5),
                    "p99": p.pct(p.first, 0.99),
                    "mean": statistics.fmean(p.first) * 1e3 if p.first else None,
                },
                "done_ms": {"p50": p.pct(p.done, 0.5), "p99": p.pct(p.done, 0.99)},
                "server_cpu_ms_per_req": p.server_cpu_s * 1e3 / max(p.requests, 1),
                "model_cpu_ms_per_req": p.model_cpu_s * 1e3 / max(p.requests, 1),
                "client_cpu_ms_per_req": p.client_cpu_s * 1e3 / max(p.requests, 1),
            }
            for p in results.values()
        ]
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
