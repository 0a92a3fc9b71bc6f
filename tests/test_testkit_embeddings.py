"""The scripted server's ``POST /v1/embeddings``, through the official ``openai`` client: deterministic, unit
length, texts sharing words nearer than texts that do not, ``float`` and ``base64`` alike."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.chat_server import EMBEDDING_DIMENSION, EMBEDDING_MODEL, embed


@pytest.fixture
def server() -> Iterator[ScriptedChatServer]:
    with ScriptedChatServer() as srv:
        yield srv


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors_near_for_shared_words(server: ScriptedChatServer) -> None:
    texts = ["Llamas eat grass", "what do llamas eat", "Quantum chromodynamics"]
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
        as_float = client.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
        as_base64 = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)  # the client asks for base64
        short = client.embeddings.create(model="other", input="llamas", dimensions=8, encoding_format="float")
    vectors = [d.embedding for d in as_float.data]
    assert [d.index for d in as_float.data] == [0, 1, 2] and as_float.model == EMBEDDING_MODEL
    assert all(len(v) == EMBEDDING_DIMENSION for v in vectors)
    assert all(abs(dot(v, v) - 1.0) < 1e-9 for v in vectors)
    assert vectors == [embed(t) for t in texts]
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    decoded = [d.embedding for d in as_base64.data]
    assert all(abs(x - y) < 1e-6 for a, b in zip(decoded, vectors, strict=True) for x, y in zip(a, b, strict=True))
    assert short.model == "other" and len(short.data[0].embedding) == 8
    assert as_float.usage.prompt_tokens > 0
    # Chat requests are what `requests` records; embeddings are not scripted turns.
    assert server.requests == []


def test_bad_embedding_input_is_a_400_naming_the_field(server: ScriptedChatServer) -> None:
    answer = httpx.post(f"{server.base_url}/embeddings", json={"model": "m", "input": [1, 2]})
    assert answer.status_code == 400 and "input" in answer.json()["error"]["message"]


def test_scripted_embedding_errors_are_answered_in_order_and_inputs_recorded(server: ScriptedChatServer) -> None:
    server.embedding_errors.append({"status": 503, "message": "embedder is busy"})
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.embeddings.create(model=EMBEDDING_MODEL, input=["a b"])
        assert caught.value.status_code == 503 and "embedder is busy" in str(caught.value)
        after = client.embeddings.create(model=EMBEDDING_MODEL, input="c", encoding_format="float")
    assert after.data[0].embedding == embed("c")
    assert server.embedding_inputs == [["a b"], ["c"]]
    server.reset()
    assert server.embedding_inputs == [] and server.embedding_errors == []
