"""Server-level benchmark: the model server alone vs ``responses-rs serve`` in front of it.

Side by side in one run, at 1, 10 and 50 concurrent streamed clients: requests/s, p50/p99 time to the first
event, to the first text delta and to the terminal event, and **server CPU ms per request** read from
``/proc/<pid>/stat`` (utime + stime of every thread) before and after each level.

- The model server is a plain Python ASGI app on uvicorn (httptools, uvloop) with zero latency: each streamed
  chat completion is a role chunk, ``--chunks`` text chunks, a finish chunk and a usage chunk, then
  ``[DONE]`` (52 chunks by default), each chunk its own ASGI send, as a real server streams.
- ``responses-rs serve`` runs with its sqlite store in a temporary directory (``store`` as the request says:
  stored by default; ``--no-store`` sends ``store: false``).
- The clients are one asyncio process (this one, uvloop), a keep-alive connection each, reading raw bytes.

    .venv-0.2.12/bin/python bench/bench_serve.py [--levels 1,10,50] [--seconds 5] [--chunks 50] [--no-store]

The machine's other load lands in every figure: on a shared machine run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from responses_rs._core import ChunkedBody

TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# The model server (run in its own process: `bench_serve.py model-server PORTFILE CHUNKS`)


def model_app(chunks: int) -> Any:
    words = [f"w{n} " for n in range(chunks)]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path.endswith("/models"):
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            data = {"object": "list", "data": [{"id": "bench", "object": "model", "created": 0, "owned_by": "bench"}]}
            await send({"type": "http.response.body", "body": json.dumps(data).encode()})
            return
        request = json.loads(body)
        created = int(time.time())
        head = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": request["model"],
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        out = send
        await out(
            {"type": "http.response.body", "body": chunk({"role": "assistant", "content": ""}), "more_body": True}
        )
        for word in words:
            await out({"type": "http.response.body", "body": chunk({"content": word}), "more_body": True})
        await out({"type": "http.response.body", "body": chunk({}, "stop"), "more_body": True})
        usage = {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks}
        tail = b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n"
        await out({"type": "http.response.body", "body": tail, "more_body": False})

    return app


def run_model_server(port_file: str, chunks: int) -> None:
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        model_app(chunks), http="httptools", loop="none", lifespan="off", access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        Path(port_file).write_text(str(sock.getsockname()[1]))
        await task

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())


# --------------------------------------------------------------------------------------------------
# Clients


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK  # utime, stime (fields 14, 15 of the line)


class Result:
    def __init__(self) -> None:
        self.first: list[float] = []
        self.text: list[float] = []
        self.end: list[float] = []
        self.failed = 0


async def one_connection(
    port: int, path: str, body: bytes, deadline: float, result: Result, delta_marker: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode() + body
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                result.failed += 1
                return
            chunked = ChunkedBody()
            first = text = None
            window = b""
            ended = failed = False
            while not chunked.done:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("closed")
                piece = chunked.feed(data)
                now = time.perf_counter()
                if first is None and b"data:" in piece:
                    first = now
                window = window[-64:] + piece
                if text is None and delta_marker in window:
                    text = now
                failed = failed or b"response.failed" in window
                ended = ended or b"[DONE]" in window or b"event: response.completed" in window
            if failed or not ended:
                result.failed += 1
            end = time.perf_counter()
            result.first.append((first or end) - start)
            result.text.append((text or end) - start)
            result.end.append(end - start)
    finally:
        writer.close()


async def level(port: int, path: str, body: bytes, clients: int, seconds: float, delta_marker: bytes) -> Result:
    result = Result()
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(one_connection(port, path, body, deadline, result, delta_marker) for _ in range(clients)))
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start(command: list[str], ready: Path, timeout: float = 30) -> subprocess.Popen:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready.exists() and ready.read_text():
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"{command} exited: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.05)
    raise RuntimeError(f"{command} did not start")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "model-server":
        run_model_server(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,10,50")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--no-store", action="store_true")
    ap.add_argument("--serve-args", default="", help="extra flags for responses-rs serve, e.g. '--http h11'")
    args = ap.parse_args()
    levels = [int(n) for n in args.levels.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    procs: list[subprocess.Popen] = []
    try:
        port_file = tmp / "model.port"
        procs.append(start([sys.executable, __file__, "model-server", str(port_file), str(args.chunks)], port_file))
        model_pid, model_port = procs[0].pid, int(port_file.read_text())
        serve_out = tmp / "serve.out"
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "responses_rs.server",
                "--upstream",
                f"http://127.0.0.1:{model_port}/v1",
                "--port",
                "0",
                "--data-dir",
                str(tmp / "data"),
                "--log-level",
                "warning",
                *args.serve_args.split(),
            ],
            stdout=open(serve_out, "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        procs.append(serve)
        deadline = time.time() + 30
        while "RESPONSES_RS_SERVE" not in serve_out.read_text():
            if time.time() > deadline or serve.poll() is not None:
                raise RuntimeError(serve_out.read_text())
            time.sleep(0.05)
        serve_port = int(serve_out.read_text().split("RESPONSES_RS_SERVE http://127.0.0.1:")[1].split("/")[0])

        chat_body = json.dumps(
            {
                "model": "bench",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        resp_body = json.dumps({"model": "bench", "input": "Hi", "stream": True, "store": not args.no_store}).encode()
        targets = [
            ("model server alone", model_port, "/v1/chat/completions", chat_body, b'"content": "w'),
            ("responses-rs serve", serve_port, "/v1/responses", resp_body, b"output_text.delta"),
        ]
        print(
            f"{args.chunks + 3} chunks per answer (role, text, finish, usage; then [DONE]); "
            f"serve {args.serve_args or 'defaults'}; {args.seconds:g} s per level, store={not args.no_store}, "
            f"{os.cpu_count()} CPUs; times in ms"
        )
        header = (
            f"{'server':<20} {'clients':>7} {'req/s':>8} {'first p50':>9} {'p99':>7} {'text p50':>9} {'p99':>7} "
            f"{'end p50':>8} {'p99':>7} {'CPU ms/req':>10} {'model CPU':>9} {'failed':>6}"
        )
        print(header)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for name, port, path, body, marker in targets:
                runner.run(level(port, path, body, 1, 0.5, marker))  # warm up
                for clients in levels:
                    before = (cpu_ms(model_pid), cpu_ms(serve.pid))
                    t0 = time.perf_counter()
                    r = runner.run(level(port, path, body, clients, args.seconds, marker))
                    elapsed = time.perf_counter() - t0
                    after = (cpu_ms(model_pid), cpu_ms(serve.pid))
                    n = max(1, len(r.end))
                    model_cpu = (after[0] - before[0]) / n
                    serve_cpu = (after[1] - before[1]) / n
                    own = model_cpu if port == model_port else serve_cpu
                    print(
                        f"{name:<20} {clients:>7} {len(r.end) / elapsed:>8.0f} {pct(r.first, 0.5):>9.2f} "
                        f"{pct(r.first, 0.99):>7.2f} {pct(r.text, 0.5):>9.2f} {pct(r.text, 0.99):>7.2f} "
                        f"{pct(r.end, 0.5):>8.2f} {pct(r.end, 0.99):>7.2f} {own:>10.2f} {model_cpu:>9.2f} "
                        f"{r.failed:>6}",
                        flush=True,
                    )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
