"""What the simulator replays: scripted requests with arrival times, from the bench or a user's file.

From the bench: `bench.workload` builds exactly the requests the bench sends (same trace, seed,
Poisson arrivals, conversion to plans); here each plan segment becomes a SimSegment. The plan
gives stand-in calls (chatbot, image, tts) their durations; calculator, qa and ve run for real
in the bench, so their duration comes from `real_call_s` (what they take on this stack, measured
in the bench's interception records) or, for a paper's setting, the trace's own api_time.

A user's trace (`load_requests`), JSON:

    {"requests": [
      {"id": "r1", "arrival_s": 0.0, "prompt_tokens": 512, "program_id": "agent-7",
       "segments": [{"generate_tokens": 40, "api": "search", "duration_s": 1.2, "return_tokens": 60},
                    {"generate_tokens": 100}]}]}

`id` and `program_id` are optional; every segment but the last has `api`, `duration_s` and
`return_tokens`. A file in the InferCept trace's own format (request key -> segment list,
bench/trace.py) is sampled with Poisson arrivals as the bench does (`from_trace`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from bench.trace import DEFAULT_TRACE, load_trace
from bench.workload import BenchRequest, ConversionConfig, heavy_tailed_outputs, open_loop, select

RealCallDurations = Literal["measured-here", "trace"]

MEASURED_CALL_S = {"calculator": 0.0001, "qa": 0.0001, "ve": 0.0005}
"""Run time (api_s) of the real API kinds on this stack: medians over the 850 interceptions of
bench-results/full2. The pause is longer by the stack's dispatch and delivery (about 11 ms,
hardware.Deployment.call_overhead_s). The trace's own api_time is the calls' run time on the
paper's testbed."""


@dataclass(frozen=True)
class SimSegment:
    generate_tokens: int
    api: str | None = None
    duration_s: float = 0.0
    return_tokens: int = 0


@dataclass(frozen=True)
class SimRequest:
    request_id: str
    arrival_s: float
    prompt_tokens: int
    segments: tuple[SimSegment, ...]
    program_id: str | None = None
    type: str = "user"

    @property
    def generate_tokens(self) -> int:
        return sum(s.generate_tokens for s in self.segments)

    @property
    def api_time_s(self) -> float:
        return sum(s.duration_s for s in self.segments if s.api is not None)


def from_bench(requests: Sequence[BenchRequest], real_call_s: RealCallDurations = "measured-here",
               trace_path: Path | str = DEFAULT_TRACE) -> list[SimRequest]:
    """The bench's requests as the simulator replays them (see the module docstring)."""
    by_key = {r.key: r for r in load_trace(trace_path)} if real_call_s == "trace" else {}
    out = []
    for r in requests:
        segments = []
        for i, seg in enumerate(r.plan["segments"]):
            api = seg.get("api")
            if api is None:
                segments.append(SimSegment(seg["generate_tokens"]))
                continue
            if "duration_s" in seg:
                duration = float(seg["duration_s"])
            elif real_call_s == "trace":
                duration = by_key[r.key].segments[i].api_time_s or 0.0
            else:
                duration = MEASURED_CALL_S.get(api, 0.01)
            segments.append(SimSegment(seg["generate_tokens"], api, duration, seg.get("return_tokens", 0)))
        out.append(SimRequest(f"{r.run_key or 'run'}:{r.index}", r.arrival_s, r.prompt_tokens, tuple(segments),
                              type=r.type))
    return out


def from_trace(rate: float, window_s: float, seed: int, conversion: ConversionConfig, *,
               trace_path: Path | str = DEFAULT_TRACE, types: Sequence[str] | None = None,
               real_call_s: RealCallDurations = "measured-here",
               pareto: Mapping[str, float] | None = None) -> list[SimRequest]:
    """One rate's workload, built by bench.workload exactly as the bench builds it; `pareto`
    ({"alpha": .., "min_tokens": ..}) swaps in FastServe's heavy-tailed outputs without calls."""
    pool = select(load_trace(trace_path), types)
    requests = open_loop(pool, rate=rate, window_s=window_s, seed=seed, cfg=conversion)
    if pareto is not None:
        requests = heavy_tailed_outputs(requests, alpha=pareto["alpha"], min_tokens=int(pareto["min_tokens"]),
                                        context_cap=conversion.context_cap, seed=seed)
    return from_bench(requests, real_call_s, trace_path)


class _Segment(BaseModel):
    generate_tokens: int = Field(ge=1)
    api: str | None = None
    duration_s: float = Field(default=0.0, ge=0)
    return_tokens: int = Field(default=0, ge=0)


class _Request(BaseModel):
    id: str | None = None
    arrival_s: float = Field(ge=0)
    prompt_tokens: int = Field(ge=1)
    program_id: str | None = None
    segments: list[_Segment] = Field(min_length=1)

    @model_validator(mode="after")
    def _calls_between(self) -> _Request:
        if any(s.api is None for s in self.segments[:-1]):
            raise ValueError("every segment but the last needs an api")
        if self.segments[-1].api is not None:
            raise ValueError("the last segment ends the request: no api")
        return self


class _UserTrace(BaseModel):
    requests: list[_Request] = Field(min_length=1)


def load_requests(path: Path | str) -> list[SimRequest]:
    """A user's timed trace (the module docstring's format); a ValueError names what is wrong."""
    trace = _UserTrace.model_validate(json.loads(Path(path).read_text()))
    return [SimRequest(r.id or f"req-{i}", r.arrival_s, r.prompt_tokens,
                       tuple(SimSegment(s.generate_tokens, s.api, s.duration_s, s.return_tokens) for s in r.segments),
                       program_id=r.program_id)
            for i, r in enumerate(trace.requests)]


def is_user_trace(path: Path | str) -> bool:
    """The timed format ({"requests": [...]}) rather than the InferCept format (key -> segments)."""
    data = json.loads(Path(path).read_text())
    return isinstance(data, dict) and isinstance(data.get("requests"), list)


def scaled(requests: Sequence[SimRequest], rate_factor: float) -> list[SimRequest]:
    """A user's trace replayed `rate_factor` times faster (arrival times divided by it)."""
    return [SimRequest(r.request_id, r.arrival_s / rate_factor, r.prompt_tokens, r.segments, r.program_id, r.type)
            for r in requests]
