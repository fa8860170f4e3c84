"""API calls run by the client, for the stock-vLLM tool loop: the same kinds our executor runs.

- stand-ins (chatbot, image, tts): the plan's `duration_s` (trace api_time x time_scale) waited
  exactly, as our executor's stand-ins wait it; the text says what stood in.
- calculator, qa, ve: the executor's own plain functions (api_executor.kinds), in a thread so the
  event loop keeps serving other requests; ve keeps its episode state in the client (our
  executor keeps it in Redis) with the same first-call rule (a first `look` is the intro).
The result is then cut or padded to the plan's `return_tokens` exactly as our worker does
(engine_worker.tokens.TokenCodec.exact_length), so both systems append the same number of tokens.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api_executor.errors import ToolError
from api_executor.kinds import calculator, qa, ve_world
from bench.workload import STAND_INS


def _ve(arguments: dict[str, Any], episodes: dict[str, dict]) -> str:
    episode, action = str(arguments["episode"]), str(arguments["action"])
    state = episodes.get(episode)
    if state is None:
        state = ve_world.new_episode(episode)
        if action.strip().lower() in ("", "look"):
            episodes[episode] = state
            return ve_world.intro(state)
        state, obs = ve_world.step(state, action)
        episodes[episode] = state
        return f"{ve_world.intro(state)}\n\n{obs}"
    episodes[episode], obs = ve_world.step(state, action)
    return obs


def warm() -> None:
    """Builds the qa corpus index now (it is built once per process, ~1 s): the executor's worker
    processes pay that once too, and it must not land inside a measured call."""
    qa.corpus_index()


def run_sync(api: str, arguments: dict[str, Any], episodes: dict[str, dict]) -> str:
    """A real kind's result text; its errors become the text the model reads, as in the executor."""
    try:
        if api == "calculator":
            return calculator.run(arguments)
        if api == "qa":
            return qa.run(arguments)
        if api == "ve":
            return _ve(arguments, episodes)
    except ToolError as exc:
        return f"error: {exc}"
    raise ValueError(f"API kind {api!r} cannot run in the client")


async def run_call(segment: dict[str, Any], episodes: dict[str, dict]) -> str:
    """Runs the call that ends a plan segment; returns its result text."""
    api = segment["api"]
    if api in STAND_INS:
        await asyncio.sleep(float(segment.get("duration_s") or 0.0))  # the stand-in's stated duration
        return f"[{api} result]"
    return await asyncio.to_thread(run_sync, api, dict(segment.get("arguments") or {}), episodes)
