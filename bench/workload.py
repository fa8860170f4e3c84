"""Trace requests -> scripted requests (the `plan` extension, common.schemas.Plan), sampled with
replacement and given Poisson arrival times, as the InferCept replay does.

Conversion of one trace request, segment by segment:
- generate_tokens = the segment's completion tokens; the first segment's prompt tokens become the
  client's prompt length (filler text of that many tokens, chat template included: bench.prompts).
- api by request type (bench.trace.call_kind). Stand-ins (chatbot, image, tts) get
  duration_s = api_time x time_scale and wait exactly that. calculator, qa and ve run their real
  implementations with generated arguments, so their durations are the real ones (milliseconds
  here; the trace's are 0.00008 s, 0.7 s and 0.085 s), not the trace's.
- return_tokens = the call's returned tokens (the executor cuts or pads the result to that).
- A trailing call (the last segment of every TTS, Image and VE request carries one in the file)
  is dropped: nothing is generated after it, and a plan ends with generation.
- token_scale multiplies every token count (the quick profile shrinks them to run on 2 cores).
- Context cap: prompt + generated + returned tokens <= context_cap, by truncating (the original
  caps at 2048): the segment that reaches the cap is cut short and ends the request.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.trace import REQUEST_TYPES, TraceRequest, call_kind

STAND_INS = frozenset({"chatbot", "image", "tts"})
QA_QUERIES = (
    "highest mountain above sea level", "longest river in the world", "who invented the telephone",
    "speed of light in a vacuum", "largest ocean on Earth", "when did the Berlin Wall fall",
    "how does photosynthesis work", "what is DNA made of", "the deepest lake", "planets of the solar system",
    "who painted the Mona Lisa", "when did the French Revolution start", "how fast is a cheetah",
    "the largest animal ever", "how do vaccines work",
)
_OPS = ("+", "-", "*")


@dataclass(frozen=True)
class ConversionConfig:
    time_scale: float = 1.0
    """Stand-in call durations = trace api_time x this."""
    token_scale: float = 1.0
    context_cap: int = 2048
    min_prompt_tokens: int = 1
    """The shortest prompt the client can build (the chat template's own tokens plus a few)."""


@dataclass(frozen=True)
class BenchRequest:
    index: int
    """Position in the sampled workload; seeds its prompt text and call arguments."""
    key: str
    type: str
    arrival_s: float
    """Offset from the run's start (open loop); 0 in closed loop."""
    prompt_tokens: int
    """The templated prompt's length the client builds."""
    plan: dict[str, Any] = field(hash=False)
    """The request's `plan` field, as sent."""
    run_key: str = ""
    """The run it belongs to (repeat and rate): seeds its prompt text with the index, so two runs
    never send the same prompts (a system's prefix cache would otherwise serve the later run
    from the earlier one's blocks), while every system gets the same texts in the same run."""

    @property
    def generate_tokens(self) -> int:
        return sum(s["generate_tokens"] for s in self.plan["segments"])


def _scaled(tokens: int, factor: float, minimum: int) -> int:
    return max(minimum, round(tokens * factor)) if tokens > 0 else 0


def call_arguments(api: str, rng: random.Random, episode: str) -> dict[str, Any]:
    """Arguments for the real API kinds; stand-ins take none."""
    if api == "calculator":
        terms = [str(rng.randint(1, 999)) for _ in range(rng.randint(2, 4))]
        expression = terms[0]
        for term in terms[1:]:
            expression += f" {rng.choice(_OPS)} {term}"
        return {"expression": expression}
    if api == "qa":
        return {"query": rng.choice(QA_QUERIES)}
    if api == "ve":
        return {"episode": episode, "action": "look"}
    return {}


def to_plan(request: TraceRequest, cfg: ConversionConfig, rng: random.Random,
            episode: str) -> tuple[int, dict[str, Any]]:
    """(prompt tokens, plan) for one trace request; see the module docstring for the rules."""
    prompt = max(cfg.min_prompt_tokens, _scaled(request.segments[0].prompt_tokens, cfg.token_scale, 1))
    if prompt >= cfg.context_cap:
        raise ValueError(f"context_cap {cfg.context_cap} leaves no room after the {prompt}-token prompt")
    budget = cfg.context_cap - prompt
    segments: list[dict[str, Any]] = []
    for i, seg in enumerate(request.segments):
        # Every segment generates at least one token (a trace segment may have an empty completion);
        # the check below leaves at least one token of budget after each call.
        generate = min(max(1, _scaled(seg.completion_tokens, cfg.token_scale, 1)), budget)
        budget -= generate
        out: dict[str, Any] = {"generate_tokens": generate}
        segments.append(out)
        is_last = i == len(request.segments) - 1
        if seg.api_time_s is None or is_last:
            break
        returned = _scaled(seg.api_tokens or 0, cfg.token_scale, 1)
        if budget - returned < 1:  # no room for the call's result and one more generated token
            break
        budget -= returned
        api = call_kind(request.type, i)
        out["api"] = api
        out["return_tokens"] = returned
        if api in STAND_INS:
            out["duration_s"] = round(seg.api_time_s * cfg.time_scale, 6)
        else:
            out["arguments"] = call_arguments(api, rng, episode)
    return prompt, {"segments": segments}


def poisson_arrivals(rate: float, window_s: float, rng: random.Random) -> list[float]:
    """Arrival offsets in [0, window_s): floor(rate)+1 requests at t=0, then exponential gaps
    of mean 1/rate (the InferCept replay's process)."""
    if rate <= 0 or window_s <= 0:
        raise ValueError("rate and window_s must be positive")
    times = [0.0] * (math.floor(rate) + 1)
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= window_s:
            return times
        times.append(t)


def select(trace: Sequence[TraceRequest], types: Sequence[str] | None) -> list[TraceRequest]:
    """The requests of the chosen types (all when None), in file order."""
    wanted = set(types or REQUEST_TYPES)
    unknown = wanted - set(REQUEST_TYPES)
    if unknown:
        raise ValueError(f"unknown request types {sorted(unknown)}: choose from {list(REQUEST_TYPES)}")
    chosen = [r for r in trace if r.type in wanted]
    if not chosen:
        raise ValueError(f"the trace has no requests of types {sorted(wanted)}")
    return chosen


def materialize(pool: Sequence[TraceRequest], arrivals: Sequence[float], seed: int,
                cfg: ConversionConfig) -> list[BenchRequest]:
    """One sampled request (with replacement, seeded) per arrival time."""
    picks = random.Random(f"{seed}:picks")
    out = []
    for index, arrival in enumerate(arrivals):
        request = picks.choice(pool)
        prompt, plan = to_plan(request, cfg, random.Random(f"{seed}:{index}"), episode=f"bench-{seed}-{index}")
        out.append(BenchRequest(index, request.key, request.type, arrival, prompt, plan))
    return out


def open_loop(pool: Sequence[TraceRequest], *, rate: float, window_s: float, seed: int,
              cfg: ConversionConfig) -> list[BenchRequest]:
    """The workload of one rate: the same seed gives every system the same requests and times."""
    return materialize(pool, poisson_arrivals(rate, window_s, random.Random(f"{seed}:arrivals:{rate}")), seed, cfg)


def closed_loop(pool: Sequence[TraceRequest], *, count: int, seed: int, cfg: ConversionConfig) -> list[BenchRequest]:
    """Enough requests for a closed loop (sent back to back, arrival = send time)."""
    return materialize(pool, [0.0] * count, seed, cfg)


def without_calls(requests: Sequence[BenchRequest]) -> list[BenchRequest]:
    """The zero-interception workload: each request's calls removed, its segments' generated
    tokens joined into one (same prompt, same total generated tokens, no pauses). On it the two
    systems do the same work, so throughput compares the serving paths' raw overhead."""
    return [replace(r, plan={"segments": [{"generate_tokens": r.generate_tokens}]}) for r in requests]


def heavy_tailed_outputs(requests: Sequence[BenchRequest], *, alpha: float, min_tokens: int, context_cap: int,
                         seed: int) -> list[BenchRequest]:
    """FastServe's setting: no calls, and each request generates a Pareto(alpha)-distributed number
    of tokens (scale min_tokens; alpha near 1 is a heavy tail: median min_tokens * 2^(1/alpha),
    a few requests hundreds of tokens), capped by what its context leaves (same prompts as the
    trace's). The same seed gives every system the same lengths."""
    if alpha <= 0 or min_tokens < 1:
        raise ValueError("alpha must be positive and min_tokens at least 1")
    out = []
    for r in requests:
        rng = random.Random(f"{seed}:pareto:{r.index}")
        tokens = max(1, min(context_cap - r.prompt_tokens, math.ceil(min_tokens * rng.paretovariate(alpha))))
        out.append(replace(r, plan={"segments": [{"generate_tokens": tokens}]}))
    return out

