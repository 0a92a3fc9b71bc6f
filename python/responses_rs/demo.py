"""Demo: llama-stack serving the OpenAI Responses API through responses-rs, driven by the openai client.

    python -m responses_rs.demo

1. Model server: ``OPENAI_BASE_URL`` (an OpenAI-compatible Chat Completions endpoint, including ``/v1``)
   with ``OPENAI_MODEL`` (default: the first model it lists) and ``OPENAI_API_KEY`` (if it needs one).
   When ``OPENAI_BASE_URL`` is not set, a scripted stand-in model server is started on 127.0.0.1 and
   scripted to call the demo's function tool, then to answer in text.
2. ``llama stack run`` with the agents provider ``inline::responses_rs`` (the packaged example run
   config, sqlite stores in a temporary directory) on 127.0.0.1 and a free port.
3. One streamed ``client.responses.create`` with a function tool (``get_weather``); every event is
   printed as it arrives. If the model called the tool, the demo runs it locally and sends the result
   back (``function_call_output`` + ``previous_response_id``), streamed as well.
4. The final output is printed; everything started is stopped. Exit status 0 on success, 1 on failure,
   2 when a package the demo needs (``openai``, ``llama-stack``) is not installed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from typing import Any

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        # `examples`: what the scripted model of `responses-rs serve` (no --upstream) passes
        "properties": {"city": {"type": "string", "description": "City name, e.g. Paris", "examples": ["Paris"]}},
        "required": ["city"],
    },
}
QUESTION = "What's the weather like in Paris right now? Use the get_weather tool."
SCRIPTED_MODEL = "scripted-demo-model"


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def get_weather(city: str = "?", **_: Any) -> dict[str, Any]:
    """The demo's local implementation of the function tool."""
    return {"city": city, "sky": "sunny", "temperature_c": 21}


def _scripted_turns() -> list[dict[str, Any]]:
    return [
        {"tool_calls": [{"id": "call_demo_1", "name": "get_weather", "arguments": {"city": "Paris"}}], "chunk_size": 6},
        {"text": "It is sunny in Paris, about 21 °C.", "chunk_size": 6},
    ]


def _describe(event: Any) -> str:
    kind = event.type
    if kind.endswith(".delta"):
        return f"{kind}  {event.delta!r}"
    if kind in ("response.output_item.added", "response.output_item.done"):
        item = event.item
        name = getattr(item, "name", None)
        return f"{kind}  {item.type}" + (f" {name}" if name else "")
    if kind == "response.function_call_arguments.done":
        return f"{kind}  {event.arguments!r}"
    if kind == "response.output_text.done":
        return f"{kind}  {event.text!r}"
    if kind in ("response.created", "response.in_progress", "response.completed", "response.failed"):
        error = getattr(event.response, "error", None)
        return f"{kind}  {event.response.id}" + (f"  error: {error.message}" if error else "")
    return kind


def stream(client: Any, model: str, **kwargs: Any) -> Any:
    """One streamed request; prints each event as it arrives; returns the terminal response."""
    final = None
    for event in client.responses.create(model=model, stream=True, tools=[TOOL], **kwargs):
        print(f"    {_describe(event)}", flush=True)
        if event.type in ("response.completed", "response.failed", "response.incomplete"):
            final = event.response
    if final is None:
        raise RuntimeError("the stream ended without a terminal event")
    if final.status != "completed":
        raise RuntimeError(f"response {final.id} ended {final.status}: {final.error}")
    return final


def print_output(response: Any) -> None:
    for item in response.output:
        if item.type == "function_call":
            say(f"output: function_call {item.name}({item.arguments})  call_id={item.call_id}")
        elif item.type == "message":
            say(f"output: message: {response.output_text!r}")
        else:
            say(f"output: {item.type}")


def run() -> int:
    import openai

    from responses_rs.llama_stack import PROVIDER_TYPE, installed_llama_stack_version
    from responses_rs.testkit import ScriptedChatServer
    from responses_rs.testkit.stack import start_llama_stack

    base_url = os.environ.get("OPENAI_BASE_URL", "").strip()
    api_key = os.environ.get("OPENAI_API_KEY") or None
    model = os.environ.get("OPENAI_MODEL", "").strip()
    stand_in = None
    stack = None
    try:
        if base_url:
            if not model:
                listed = openai.OpenAI(base_url=base_url, api_key=api_key or "none").models.list()
                model = next(iter(listed)).id
                say(f"OPENAI_MODEL is not set: using {model!r}, the first model {base_url} lists")
            say(f"model server: {base_url} (OPENAI_BASE_URL), model {model!r}")
        else:
            model = model or SCRIPTED_MODEL
            stand_in = ScriptedChatServer(models=[model]).start()
            stand_in.script(_scripted_turns())
            base_url = stand_in.base_url
            say(
                "OPENAI_BASE_URL is not set, so there is no real model: started the scripted stand-in model "
                f"server (responses_rs.testkit.ScriptedChatServer) at {base_url}, model {model!r}. "
                "It is scripted to call get_weather, then to answer in text."
            )

        say(f"starting `llama stack run` (llama-stack {installed_llama_stack_version()}, agents {PROVIDER_TYPE})")
        started = time.monotonic()
        stack = start_llama_stack(base_url, model, api_key=api_key)
        say(f"llama stack is up at {stack.base_url} after {time.monotonic() - started:.1f} s")
        client = openai.OpenAI(base_url=stack.openai_base_url, api_key="none", max_retries=0, timeout=120)

        say(f"request 1 (streamed, tools=[get_weather]): {QUESTION!r}")
        first = stream(client, model, input=QUESTION)
        print_output(first)
        calls = [item for item in first.output if item.type == "function_call"]
        final = first
        if calls:
            outputs = []
            for call in calls:
                result = get_weather(**json.loads(call.arguments or "{}"))
                say(f"ran {call.name} locally -> {json.dumps(result)}")
                outputs.append({"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(result)})
            say(f"request 2 (streamed): the tool result, previous_response_id={first.id}")
            final = stream(client, model, input=outputs, previous_response_id=first.id)
            print_output(final)
        else:
            say("the model answered without calling the tool")
        say(f"final output: {final.output_text!r}")
        return 0
    except Exception as exc:
        say(f"FAILED: {type(exc).__name__}: {exc}")
        if stack is not None and stack.running:
            say(f"llama stack log (tail):\n{stack.log_tail(40)}")
        return 1
    finally:
        if stack is not None:
            stack.stop()
        if stand_in is not None:
            stand_in.stop()
        say("stopped llama stack" + (" and the stand-in model server" if stand_in is not None else ""))


def missing_requirements() -> list[str]:
    """What to pip install for the demo to run: the openai client it drives the stack with, and
    llama-stack (the server it starts). Empty when both are there."""
    from responses_rs.llama_stack import installed_llama_stack_version

    missing = []
    try:
        import openai  # noqa: F401
    except ImportError:
        missing.append("openai")
    if installed_llama_stack_version() is None:
        missing.append("'llama-stack==0.2.12'")
    return missing


def main() -> int:
    # llama-stack 0.2.x trips a harmless pydantic UserWarning when it is imported.
    warnings.simplefilter("ignore", UserWarning)
    missing = missing_requirements()
    if missing:
        print(
            f"[demo] the demo needs {' and '.join(missing)}, not installed in this environment "
            f"({sys.executable}): pip install {' '.join(missing)}  (or use the venv scripts/venv.sh 0.2.12 makes)",
            file=sys.stderr,
            flush=True,
        )
        return 2
    return run()


if __name__ == "__main__":
    sys.exit(main())
