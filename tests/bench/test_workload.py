"""Trace requests -> plans (every conversion rule), sampling and the arrival process."""

from __future__ import annotations

import random
import statistics

import pytest

from bench.trace import DEFAULT_TRACE, TraceRequest, TraceSegment, load_trace
from bench.workload import (
    ConversionConfig,
    closed_loop,
    heavy_tailed_outputs,
    open_loop,
    poisson_arrivals,
    select,
    to_plan,
)
from common.schemas import Plan


def _req(type_: str, *segments: tuple) -> TraceRequest:
    return TraceRequest("k", type_, tuple(TraceSegment(*s) for s in segments))


def _plan(request: TraceRequest, **cfg) -> tuple[int, list[dict]]:
    prompt, plan = to_plan(request, ConversionConfig(**cfg), random.Random(0), episode="ep-1")
    Plan.model_validate(plan)  # every plan is one the gateway accepts
    return prompt, plan["segments"]


def test_stand_in_calls_wait_the_scaled_trace_time():
    prompt, segs = _plan(_req("image", (117, 40, 11.5, 25), (200, 30, 28.0, 42), (300, 20)), time_scale=0.1)
    assert prompt == 117
    assert segs == [
        {"generate_tokens": 40, "api": "image", "return_tokens": 25, "duration_s": 1.15},
        {"generate_tokens": 30, "api": "chatbot", "return_tokens": 42, "duration_s": 2.8},
        {"generate_tokens": 20},
    ]


@pytest.mark.parametrize(("type_", "api", "argument_keys"), [
    ("math", "calculator", {"expression"}), ("qa", "qa", {"query"}), ("ve", "ve", {"episode", "action"}),
])
def test_real_apis_get_arguments_and_no_duration(type_, api, argument_keys):
    _, segs = _plan(_req(type_, (400, 10, 0.5, 5), (415, 10)))
    assert segs[0]["api"] == api and "duration_s" not in segs[0]
    assert set(segs[0]["arguments"]) == argument_keys
    if api == "ve":
        assert segs[0]["arguments"] == {"episode": "ep-1", "action": "look"}
    if api == "calculator":
        from api_executor.kinds.calculator import evaluate

        evaluate(segs[0]["arguments"]["expression"])  # the real calculator accepts it


def test_a_trailing_call_is_dropped():
    _, segs = _plan(_req("tts", (117, 40, 5.0, 6), (160, 30, 3.0, 7)))
    assert segs == [{"generate_tokens": 40, "api": "tts", "return_tokens": 6, "duration_s": 5.0},
                    {"generate_tokens": 30}]


@pytest.mark.parametrize(("cap", "expected"), [
    (1000, [(100, 50), (100, 50), (100, None)]),  # fits: 300 + 300 + 100
    (500, [(100, 50), (50, None)]),               # the second segment reaches the cap
    (451, [(100, 50), (1, None)]),                # room for the result and exactly one more token
    (450, [(100, None)]),                         # no room for the call's result plus one token
    (350, [(50, None)]),
])
def test_context_cap_truncates_segments(cap, expected):
    prompt, segs = _plan(_req("qa", (300, 100, 0.7, 50), (450, 100, 0.7, 50), (600, 100)), context_cap=cap)
    assert [(s["generate_tokens"], s.get("return_tokens")) for s in segs] == expected
    assert prompt + sum(s["generate_tokens"] + s.get("return_tokens", 0) for s in segs) <= cap


def test_token_scale_and_minimum_prompt():
    prompt, segs = _plan(_req("chatbot", (117, 41, 20.0, 3), (200, 1)), token_scale=0.25, min_prompt_tokens=34)
    assert prompt == 34  # 117 x 0.25 = 29, under the template's own tokens
    assert segs == [{"generate_tokens": 10, "api": "chatbot", "return_tokens": 1, "duration_s": 20.0},
                    {"generate_tokens": 1}]


def test_an_empty_completion_still_generates_one_token():
    _, segs = _plan(_req("chatbot", (100, 0, 20.0, 3), (110, 0)))
    assert [s["generate_tokens"] for s in segs] == [1, 1]


def test_a_prompt_over_the_cap_is_refused():
    with pytest.raises(ValueError, match="no room"):
        _plan(_req("ve", (1973, 4)), context_cap=1973)


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.5])
def test_poisson_arrivals_start_with_a_burst_and_stay_in_the_window(rate):
    times = poisson_arrivals(rate, 2000.0, random.Random(7))
    burst = int(rate) + 1
    assert times[:burst] == [0.0] * burst and times[burst] > 0
    assert times == sorted(times) and times[-1] < 2000.0
    gaps = [b - a for a, b in zip(times[burst - 1:], times[burst:])]
    assert statistics.mean(gaps) == pytest.approx(1 / rate, rel=0.1)
    assert statistics.stdev(gaps) == pytest.approx(1 / rate, rel=0.15)  # exponential: sd = mean


class TestOnTheRealTrace:
    trace = load_trace(DEFAULT_TRACE)

    @pytest.mark.parametrize(("cap", "scale"), [(2048, 1.0), (512, 0.25), (256, 0.1)])
    def test_every_request_converts_within_the_cap(self, cap, scale):
        cfg = ConversionConfig(time_scale=0.05, token_scale=scale, context_cap=cap, min_prompt_tokens=34)
        for request in self.trace:
            prompt, plan = to_plan(request, cfg, random.Random(0), episode="e")
            parsed = Plan.model_validate(plan)
            assert prompt + parsed.generated_tokens + parsed.returned_tokens <= cap

    def test_same_seed_same_workload_and_type_selection(self):
        cfg = ConversionConfig(time_scale=0.05, token_scale=0.25, context_cap=512, min_prompt_tokens=34)
        a = open_loop(select(self.trace, None), rate=2.0, window_s=30, seed=3, cfg=cfg)
        b = open_loop(select(self.trace, None), rate=2.0, window_s=30, seed=3, cfg=cfg)
        assert a == b and [r.plan for r in a] == [r.plan for r in b]
        c = open_loop(select(self.trace, None), rate=2.0, window_s=30, seed=4, cfg=cfg)
        assert [r.arrival_s for r in a] != [r.arrival_s for r in c]
        only = closed_loop(select(self.trace, ["math", "ve"]), count=50, seed=3, cfg=cfg)
        assert {r.type for r in only} == {"math", "ve"} and all(r.arrival_s == 0 for r in only)

    def test_unknown_types_are_refused(self):
        with pytest.raises(ValueError, match="unknown request types"):
            select(self.trace, ["poetry"])


def test_heavy_tailed_outputs_drop_the_calls_and_draw_a_heavy_tail_within_the_context():
    requests = open_loop(load_trace(DEFAULT_TRACE), rate=5.0, window_s=100.0, seed=0,
                         cfg=ConversionConfig(token_scale=0.1, context_cap=512, min_prompt_tokens=20))
    heavy = heavy_tailed_outputs(requests, alpha=1.2, min_tokens=8, context_cap=512, seed=0)
    assert [r.prompt_tokens for r in heavy] == [r.prompt_tokens for r in requests]
    assert all(len(r.plan["segments"]) == 1 and "api" not in r.plan["segments"][0] for r in heavy)
    Plan.model_validate(heavy[0].plan)
    lengths = sorted(r.generate_tokens for r in heavy)
    assert all(1 <= n and r.prompt_tokens + n <= 512 for r, n in zip(heavy, (r.generate_tokens for r in heavy)))
    median, mean = lengths[len(lengths) // 2], statistics.mean(lengths)
    assert 12 <= median <= 18  # ceil(8 * 2^(1/1.2)) = 15, give or take the sample
    assert mean > 2 * median and statistics.pstdev(lengths) > mean  # heavy tail: CV above 1
    assert heavy_tailed_outputs(requests, alpha=1.2, min_tokens=8, context_cap=512, seed=0) == heavy  # seeded


def test_heavy_tailed_outputs_refuse_nonsense():
    with pytest.raises(ValueError, match="alpha"):
        heavy_tailed_outputs([], alpha=0.0, min_tokens=8, context_cap=512, seed=0)
