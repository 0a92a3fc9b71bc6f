"""Vector store search: where the time of ``POST /v1/vector_stores/{id}/search`` goes, with a few thousand chunks.

1. In process (sqlite), per search: scoring every chunk with the Rust core's ``top_k_cosine`` against the same
   brute force in pure Python (a dot product per chunk over the unpacked floats); a search whose store matrix is
   cached (the chunk stamp query, the scoring, reading the k texts) and what a cache miss adds (reading every
   chunk's embedding from sqlite and joining them into one buffer), at 64, 768 and 1536 dimensions.
2. End to end: a real ``responses-rs serve`` with ``--embedding-model``, the scripted embedder (its dimension set
   with ``--dim``) in this process, one file ingested into ``--chunks`` chunks (static chunking, 100 tokens, no
   overlap), then ``--searches`` searches through the official openai client; p50/p95 latency.

    .venv-0.2.12/bin/python bench/bench_file_search.py [--chunks 3000] [--dim 1536] [--searches 30]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))

from responses_rs._core import top_k_cosine  # noqa: E402
from responses_rs.server._store import Store  # noqa: E402
from responses_rs.testkit import chat_server as scripted  # noqa: E402


def _unit(dim: int, rng: random.Random) -> bytes:
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = sum(x * x for x in v) ** 0.5
    return array.array("f", (x / n for x in v)).tobytes()


def python_top_k(query: bytes, matrix: bytes, dim: int, k: int) -> list[tuple[int, float]]:
    q = array.array("f", query)
    m = array.array("f", matrix)
    scores = []
    for i in range(len(m) // dim):
        row = m[i * dim : (i + 1) * dim]
        scores.append((i, sum(a * b for a, b in zip(row, q, strict=True))))
    scores.sort(key=lambda s: -s[1])
    return scores[:k]


async def _measure(store: Store, dim: int, chunks: int, repeat: int, rng: random.Random) -> dict[str, float]:
    await store.create_vector_store("vs_bench", "", 0, "bench", "{}")
    await store.put_file("file-bench", "", 0, "bench.txt", "assistants", b"x")
    rows = [("x" * 400, _unit(dim, rng)) for _ in range(chunks)]
    await store.put_vector_store_file("", ("vs_bench", "file-bench", 0, "completed", "{}", "{}", None, 0), rows)
    query = _unit(dim, rng)
    times: dict[str, list[float]] = {"stamp": [], "read": [], "join": [], "rust": [], "python": [], "texts": []}
    for n in range(repeat):
        t0 = time.perf_counter()
        await store.chunk_stamp("vs_bench", "")
        t1 = time.perf_counter()
        got = await store.chunks("vs_bench", "")
        t2 = time.perf_counter()
        matrix = b"".join(r[4] for r in got)
        t3 = time.perf_counter()
        fast = top_k_cosine(query, matrix, dim, 10, -1.0)
        t4 = time.perf_counter()
        await store.chunk_texts([got[i][0] for i, _ in fast])
        t5 = time.perf_counter()
        for key, value in zip(
            ("stamp", "read", "join", "rust", "texts"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
        ):
            times[key].append(value)
        if n < 3:  # slow: a few runs
            slow = python_top_k(query, matrix, dim, 10)
            times["python"].append(time.perf_counter() - t5)
            assert [i for i, _ in slow] == [i for i, _ in fast]
    return {key: statistics.median(values) * 1000 for key, values in times.items()}


def in_process(chunks: int, dims: list[int], repeat: int) -> None:
    rng = random.Random(7)
    print(f"in process (sqlite), {chunks} chunks of 400 characters, k=10, median ms of {repeat} runs:")
    print(
        "| dim | scoring: Rust top_k_cosine | scoring: pure Python | search, matrix cached (stamp + Rust + texts) |"
        " cache miss: reading the chunks + joining |"
    )
    print("|---|---|---|---|---|")
    for dim in dims:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "responses.db")
            store.open()
            m = asyncio.run(_measure(store, dim, chunks, repeat, rng))
            store.close()
        cached = m["stamp"] + m["rust"] + m["texts"]
        print(f"| {dim} | {m['rust']:.2f} | {m['python']:.1f} | {cached:.2f} | {m['read']:.1f} + {m['join']:.1f} |")


def end_to_end(chunks: int, dim: int, searches: int) -> None:
    import openai
    from serve_process import serve_process

    scripted.EMBEDDING_DIMENSION = dim  # the scripted embedder's default dimension (this process serves it)
    words = " ".join(f"w{i % 5000}" for i in range(chunks * 80))  # ~400 characters a chunk
    with scripted.ScriptedChatServer(models=["m", "e"]) as chat, tempfile.TemporaryDirectory() as tmp:
        with serve_process(chat.base_url, Path(tmp), "--embedding-model", "e", "--max-file-bytes", str(64 << 20)) as s:
            client = openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=600)
            file_id = client.files.create(file=("big.txt", words.encode()), purpose="assistants").id
            strategy = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
            t0 = time.perf_counter()
            store = client.vector_stores.create(file_ids=[file_id], chunking_strategy=strategy)  # type: ignore[arg-type]
            while client.vector_stores.retrieve(store.id).file_counts.in_progress:  # ingested in the background
                time.sleep(0.02)
            ingest = time.perf_counter() - t0
            made = sum(len(batch) for batch in chat.embedding_inputs)
            times = []
            for n in range(searches):
                t0 = time.perf_counter()
                page = client.vector_stores.search(vector_store_id=store.id, query=f"w{n} w{n + 1}", max_num_results=10)
                times.append(time.perf_counter() - t0)
                assert len(page.data) == 10
            times.sort()
            p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
            print(
                json.dumps(
                    {
                        "chunks": made,
                        "dim": dim,
                        "ingest_s": round(ingest, 2),
                        "search_p50_ms": round(p50 * 1000, 1),
                        "search_p95_ms": round(p95 * 1000, 1),
                    }
                )
            )
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=3000)
    parser.add_argument("--dims", default="64,768,1536")
    parser.add_argument("--dim", type=int, default=1536, help="the end-to-end run's embedding dimension")
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    in_process(args.chunks, [int(d) for d in args.dims.split(",")], args.repeat)
    end_to_end(args.chunks, args.dim, args.searches)


if __name__ == "__main__":
    main()
