"""``responses-rs serve``: a standalone Open Responses server in front of one or more OpenAI-compatible Chat
Completions servers, on the same Rust core as the llama-stack and OGX providers.

    responses-rs serve --upstream http://127.0.0.1:8000/v1 [--upstream URL2 ...] [--port 8080] [--data-dir DIR]
    python -m responses_rs.server --upstream ...
    responses-rs serve          # no upstream: the project's scripted model answers (for trying the server out)

Every flag has an environment variable (``RESPONSES_RS_<FLAG>``; lists comma-separated). The endpoint is
``http://HOST:PORT/v1/responses`` (the ``openai`` client's ``base_url`` is ``http://HOST:PORT/v1``).
HTTP: uvicorn (httptools and uvloop when installed) with a raw ASGI app (``_app.py``, its background responses
in ``_background.py``); the upstream client is a small HTTP/1.1 client (``_upstream.py``); responses are stored in
sqlite (``_store.py``) or, with ``--database-url postgresql://...``, in PostgreSQL (``_store_pg.py``), which several
servers can share (both made of ``_store_*.py`` parts, one per concept).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

READY_PREFIX = "RESPONSES_RS_SERVE"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"RESPONSES_RS_{name}")
    return value if value not in (None, "") else default


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _positional(value: str | None) -> list[str]:
    """A comma-separated list whose empty entries count (``RESPONSES_RS_UPSTREAM_KEY=sk-a,,sk-c``)."""
    return [v.strip() for v in value.split(",")] if value else []


class _Repeat(argparse.Action):
    """A repeatable flag whose first use replaces its environment variable's list (not appends to it)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        items = getattr(namespace, self.dest, None)
        if items is None or items is self.default:
            items = []
        setattr(namespace, self.dest, [*items, values])


def upstream_pairs(urls: list[str], keys: list[str]) -> list[tuple[str, str | None]]:
    """Pair ``--upstream`` URLs with ``--upstream-key`` keys by position: no key at all, or one per upstream
    (an empty one for an upstream without a key). ValueError naming the flag otherwise (a single key is not
    sent to several servers)."""
    if not urls:
        raise ValueError("--upstream (or RESPONSES_RS_UPSTREAM) is required")
    if keys and len(keys) != len(urls):
        raise ValueError(
            f"--upstream-key: {len(keys)} keys for {len(urls)} upstreams; give one per --upstream, in the same "
            "order (an empty one, --upstream-key '', for an upstream without a key), or none"
        )
    return [(url, (keys[i] or None) if keys else None) for i, url in enumerate(urls)]


def per_upstream_limits(timeouts: list[str], caps: list[str], count: int) -> tuple[list[float], list[int | None]]:
    """``--upstream-timeout`` and ``--upstream-max`` checked: one value for every upstream, or one per upstream
    (an empty cap: none of its own). ValueError naming the flag otherwise."""

    from ._upstream import per_upstream

    def values(flag: str, given: list[str], convert: Any, lowest: float) -> list[Any]:
        out = []
        for raw in given:
            if raw == "" and convert is int:
                out.append(None)
                continue
            try:
                value = convert(raw)
            except ValueError:
                raise ValueError(f"{flag}: not a number: {raw!r}") from None
            if not value >= lowest:
                raise ValueError(f"{flag}: must be at least {lowest:g}, got {raw!r}")
            out.append(value)
        return per_upstream(flag, out, count) if out else []

    found_timeouts = values("--upstream-timeout", timeouts, float, 0.001) or [300.0] * count
    found_caps = values("--upstream-max", caps, int, 1) or [None] * count
    return found_timeouts, found_caps


TRIAL_WARNING = (
    "no --upstream given: answering with the project's scripted model at %s, for trying the server out (any model "
    "name; it calls the first function tool offered, then answers in text after the tool's output). Give --upstream "
    "URL (or RESPONSES_RS_UPSTREAM) for a real Chat Completions server"
)


def start_trial_model() -> Any:
    """The project's scripted Chat Completions model (``testkit.chat_server.trial_turn``) on a loopback ephemeral
    port, in this process: the upstream of ``responses-rs serve`` when none is given."""
    from responses_rs.testkit.chat_server import ScriptedChatServer, trial_turn

    return ScriptedChatServer("127.0.0.1", 0, default_turn=trial_turn).start()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="responses-rs serve",
        description="An Open Responses server (POST /v1/responses, streamed or not; stored responses in sqlite) "
        "in front of an OpenAI-compatible Chat Completions server. Each flag's environment variable is shown.",
    )
    p.add_argument(
        "--upstream",
        action=_Repeat,
        default=_list(_env("UPSTREAM")),
        metavar="URL",
        help="base URL of a Chat Completions server, e.g. http://127.0.0.1:8000/v1; repeatable: each model goes to "
        "the first upstream whose GET /models lists it (RESPONSES_RS_UPSTREAM, comma-separated). None: the project's "
        "scripted model answers, for trying the server out",
    )
    p.add_argument(
        "--upstream-key",
        action=_Repeat,
        default=_positional(_env("UPSTREAM_KEY")),
        metavar="KEY",
        help="the API key of the --upstream in the same position; none, or one per --upstream ('' for no key) "
        "(RESPONSES_RS_UPSTREAM_KEY, comma-separated, empty entries kept)",
    )
    p.add_argument(
        "--model-alias",
        action="append",
        default=_list(_env("MODEL_ALIASES")),
        metavar="ALIAS=MODEL",
        help="a model name clients may use for a model of any upstream; repeatable "
        "(RESPONSES_RS_MODEL_ALIASES, a=b,c=d)",
    )
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="listen address (RESPONSES_RS_HOST)")
    p.add_argument(
        "--port", type=int, default=int(_env("PORT", "8080") or 8080), help="0: any free port (RESPONSES_RS_PORT)"
    )
    p.add_argument(
        "--data-dir",
        default=_env("DATA_DIR", str(Path.home() / ".local/share/responses-rs")),
        help="where the sqlite store lives (RESPONSES_RS_DATA_DIR)",
    )
    p.add_argument("--db", default=_env("DB"), help="sqlite file (default DATA_DIR/responses.db) (RESPONSES_RS_DB)")
    p.add_argument(
        "--database-url",
        default=_env("DATABASE_URL"),
        metavar="postgresql://USER:PASSWORD@HOST:PORT/DB",
        help="store in PostgreSQL instead of sqlite: several servers on one database serve the same responses "
        "(needs asyncpg: pip install 'responses-rs[postgres]') (RESPONSES_RS_DATABASE_URL)",
    )
    p.add_argument(
        "--api-key",
        action="append",
        default=_list(_env("API_KEYS")),
        help="accept only requests with this bearer key; each key sees only what it stored; repeatable "
        "(RESPONSES_RS_API_KEYS, comma-separated). None: no authentication",
    )
    p.add_argument(
        "--upstream-timeout",
        action=_Repeat,
        default=_list(_env("UPSTREAM_TIMEOUT", "300")),
        metavar="SECONDS",
        help="seconds for a connect or any read from an upstream: one value for every upstream, or one per "
        "--upstream in the same order (RESPONSES_RS_UPSTREAM_TIMEOUT, comma-separated); default 300",
    )
    p.add_argument(
        "--upstream-max",
        action=_Repeat,
        default=_positional(_env("UPSTREAM_MAX")),
        metavar="N",
        help="concurrent calls to an upstream at most: one value for every upstream, or one per --upstream in the "
        "same order ('' for no cap of its own) (RESPONSES_RS_UPSTREAM_MAX, comma-separated); default: only "
        "--max-upstream applies",
    )
    p.add_argument(
        "--mcp-timeout",
        type=float,
        default=float(_env("MCP_TIMEOUT", "60") or 60),
        help="seconds for one listing or tool call of a remote MCP server (`mcp` tools); past it, only that "
        "listing or call fails (RESPONSES_RS_MCP_TIMEOUT)",
    )
    p.add_argument(
        "--search-url",
        default=_env("SEARCH_URL"),
        help="a search backend speaking SearXNG's JSON API (GET URL/search?q=...&format=json); with it, `web_search` "
        "tools are served, without it they are left out of what the model is offered (RESPONSES_RS_SEARCH_URL)",
    )
    p.add_argument(
        "--search-key",
        default=_env("SEARCH_KEY"),
        help="sent to the search backend as a bearer token (RESPONSES_RS_SEARCH_KEY)",
    )
    p.add_argument(
        "--search-timeout",
        type=float,
        default=float(_env("SEARCH_TIMEOUT", "15") or 15),
        help="seconds for one search; past it, only that web_search call fails (RESPONSES_RS_SEARCH_TIMEOUT)",
    )
    p.add_argument(
        "--embedding-model",
        default=_env("EMBEDDING_MODEL"),
        help="the model whose POST /embeddings (on the upstream serving it, routed as chat models are) embeds vector "
        "store chunks and file_search queries; without it, file_search and the vector store calls that need "
        "embeddings are refused (RESPONSES_RS_EMBEDDING_MODEL)",
    )
    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=int(_env("MAX_FILE_BYTES", str(32 << 20)) or 32 << 20),
        help="largest file POST /v1/files accepts (RESPONSES_RS_MAX_FILE_BYTES)",
    )
    p.add_argument(
        "--max-upstream",
        type=int,
        default=int(_env("MAX_UPSTREAM", "256") or 256),
        help="concurrent upstream calls at most, all upstreams together (RESPONSES_RS_MAX_UPSTREAM); see also "
        "--upstream-max",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(_env("MAX_BODY_BYTES", str(32 << 20)) or 32 << 20),
        help="largest request body (RESPONSES_RS_MAX_BODY_BYTES)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=float(_env("SHUTDOWN_TIMEOUT", "30") or 30),
        help="on SIGTERM/SIGINT, seconds in-flight requests may still run; then streams end with response.failed "
        "(RESPONSES_RS_SHUTDOWN_TIMEOUT)",
    )
    p.add_argument(
        "--log-requests",
        action="store_true",
        default=_env("LOG_REQUESTS", "") not in ("", "0", "false"),
        help="log one JSON line per response when it ends (id, status, model, ms, tokens, error) on the "
        "responses_rs.server.requests logger (RESPONSES_RS_LOG_REQUESTS=1)",
    )
    p.add_argument(
        "--developer-role",
        choices=("developer", "system"),
        default=_env("DEVELOPER_ROLE", "developer"),
        help="the chat role developer messages (Codex CLI's instructions) are sent to the upstream as: system for "
        "chat servers that do not accept the developer role (RESPONSES_RS_DEVELOPER_ROLE)",
    )
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "info"), help="(RESPONSES_RS_LOG_LEVEL)")
    p.add_argument(
        "--http",
        choices=("auto", "httptools", "h11"),
        default=_env("HTTP", "auto"),
        help="uvicorn's HTTP parser; auto: httptools when installed (RESPONSES_RS_HTTP)",
    )
    p.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default=_env("LOOP", "auto"),
        help="event loop; auto: uvloop when installed (RESPONSES_RS_LOOP)",
    )
    return p


class _StoreUnavailable(Exception):
    """The PostgreSQL store could not be opened (unreachable, refused, a newer schema)."""


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    upstreams: list[tuple[str, str | None]] = []
    if args.upstream:
        try:
            upstreams = upstream_pairs(args.upstream, args.upstream_key)
        except ValueError as exc:
            parser().error(str(exc))
    elif args.upstream_key:
        parser().error(
            "--upstream-key (or RESPONSES_RS_UPSTREAM_KEY) is given without --upstream: give the --upstream URL it "
            "is the key of (without any, the project's scripted model answers)"
        )
    try:
        timeouts, caps = per_upstream_limits(args.upstream_timeout, args.upstream_max, max(len(upstreams), 1))
    except ValueError as exc:
        parser().error(str(exc))
    aliases: dict[str, str] = {}
    for entry in args.model_alias:
        alias, sep, model = entry.partition("=")
        if not sep or not alias or not model:
            parser().error(f"--model-alias: expected ALIAS=MODEL, got {entry!r}")
        aliases[alias] = model
    try:
        import uvicorn
    except ImportError:
        print("responses-rs serve needs uvicorn: pip install 'responses-rs[server]'", file=sys.stderr)
        return 2

    from ._app import App, Config
    from ._store import Store

    if TYPE_CHECKING:
        from ._store_pg import PostgresStore

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_requests:
        logging.getLogger("responses_rs.server.requests").setLevel(logging.INFO)
    postgres: PostgresStore | None = None
    if args.database_url:
        from ._store_pg import PostgresStore, is_postgres_url

        if not is_postgres_url(args.database_url):
            parser().error("--database-url: expected postgresql://USER:PASSWORD@HOST:PORT/DB")
        if importlib.util.find_spec("asyncpg") is None:
            print("a PostgreSQL store needs asyncpg: pip install 'responses-rs[postgres]'", file=sys.stderr)
            return 2
        postgres = PostgresStore(args.database_url)
        store: Store | PostgresStore = postgres
        where = "postgresql://" + args.database_url.rpartition("@")[2]  # not the password
    else:
        db = Path(args.db) if args.db else Path(args.data_dir) / "responses.db"
        sqlite = Store(db)
        sqlite.open()
        store = sqlite
        where = str(db)
    trial = None
    if not upstreams:
        trial = start_trial_model()
        upstreams = [(trial.base_url, None)]
        logging.getLogger("responses_rs.server").warning(TRIAL_WARNING, trial.base_url)
    try:
        app = App(
            Config(
                upstream=[url for url, _ in upstreams],
                upstream_key=[key for _, key in upstreams],
                aliases=aliases,
                api_keys=args.api_key,
                upstream_timeout=timeouts,
                max_upstream=args.max_upstream,
                upstream_max=caps,
                max_body_bytes=args.max_body_bytes,
                log_requests=args.log_requests,
                developer_role=args.developer_role,
                mcp_timeout=args.mcp_timeout,
                search_url=args.search_url,
                search_key=args.search_key,
                search_timeout=args.search_timeout,
                embedding_model=args.embedding_model,
                max_file_bytes=args.max_file_bytes,
            ),
            store,
        )
    except ValueError as exc:
        if postgres is None:
            sqlite.close()
        if trial is not None:
            trial.stop()
        parser().error(str(exc))
    have = importlib.util.find_spec
    config = uvicorn.Config(
        app,
        http=args.http if args.http != "auto" else "httptools" if have("httptools") else "h11",
        loop="none",
        lifespan="off",
        access_log=False,
        log_level=args.log_level.lower(),
        timeout_graceful_shutdown=args.shutdown_timeout,
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # Past the grace period uvicorn cancels the requests still running and returns at once (then
            # re-raises the signal): let them end their streams with response.failed first.
            running = [task for task in self.server_state.tasks if not task.done()]
            if running:
                await asyncio.wait(running, timeout=2)
            # Here, not after `serve()` returns: uvicorn re-raises SIGTERM/SIGINT as it returns, which ends the
            # process before any code after it runs. Background runs end (their events stored) and are stored failed.
            await app.abandon_background()

    server = Server(config)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (else Nagle and
    # delayed ACKs add 40 ms to a streamed answer on the asyncio loop).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        app.router.close()
        if postgres is None:
            sqlite.close()
        if trial is not None:
            trial.stop()
        print(
            f"responses-rs serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(another program on that port? choose one with --port)",
            file=sys.stderr,
        )
        return 2
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host

    async def serve() -> None:
        if postgres is not None:  # its pool lives on this loop
            try:
                await postgres.open()
            except Exception as exc:
                raise _StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
        try:
            await serve_until_stopped()
        finally:
            await app.abandon_background()
            if postgres is not None:
                await postgres.close()

    async def serve_until_stopped() -> None:
        # The model listings (one failing is logged; a miss reads them again), not waiting past 10 s to serve.
        try:
            async with asyncio.timeout(min(10.0, *timeouts)):
                await app.router.refresh()
        except TimeoutError:
            logging.getLogger("responses_rs.server").warning("the upstreams' model listings are not read yet")
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            logging.getLogger("responses_rs.server").info(
                "serving Open Responses at http://%s:%d/v1/responses (upstreams %s, store %s)",
                host,
                port,
                ", ".join(url for url, _ in upstreams) + (" (the scripted model)" if trial is not None else ""),
                where,
            )
            print(f"{READY_PREFIX} http://{host}:{port}/v1", flush=True)
        await task

    factory = None
    if args.loop == "uvloop" or (args.loop == "auto" and have("uvloop")):
        import uvloop

        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve())
    except _StoreUnavailable as exc:
        print(f"responses-rs serve: the store cannot be opened: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: uvicorn has shut down gracefully and re-raised SIGINT; exit as interrupted, without a traceback.
        return 130
    finally:
        app.router.close()
        if postgres is None:
            sqlite.close()
        if trial is not None:
            trial.stop()
    return 0


def console_main() -> None:
    """The ``responses-rs`` console script: ``responses-rs serve [flags]``."""
    argv = sys.argv[1:]
    if not argv or argv[0] != "serve":
        print("usage: responses-rs serve [--upstream URL] [flags]   (responses-rs serve --help)", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(argv[1:]))
