"""Workloads: the bench's own requests replayed exactly, and a user's trace validated."""

import json

import pytest

from bench.trace import DEFAULT_TRACE, load_trace
from bench.workload import ConversionConfig, open_loop, select
from sim.workload import from_trace, is_user_trace, load_requests, scaled

CONV = ConversionConfig(time_scale=0.05, token_scale=1.0, context_cap=2048)


def test_the_bench_workload_is_replayed_request_for_request():
    bench = open_loop(select(load_trace(DEFAULT_TRACE), None), rate=0.25, window_s=120, seed=1, cfg=CONV)
    sim = from_trace(0.25, 120, 1, CONV)
    assert [r.arrival_s for r in sim] == [r.arrival_s for r in bench]
    assert [r.prompt_tokens for r in sim] == [r.prompt_tokens for r in bench]
    assert [r.generate_tokens for r in sim] == [r.generate_tokens for r in bench]
    for s, b in zip(sim, bench):
        stand_ins = [seg.get("duration_s") for seg in b.plan["segments"] if "duration_s" in seg]
        assert [seg.duration_s for seg in s.segments if seg.api in ("chatbot", "image", "tts")] == stand_ins


def test_the_trace_durations_replace_the_measured_ones_for_real_calls():
    measured = from_trace(1.0, 60, 0, CONV)
    trace = from_trace(1.0, 60, 0, CONV, real_call_s="trace")
    qa = [(a, b) for m, t in zip(measured, trace) for a, b in zip(m.segments, t.segments) if a.api == "qa"]
    assert qa and all(a.duration_s < 0.01 for a, _ in qa) and any(b.duration_s > 0.1 for _, b in qa)


def test_a_user_trace_loads_and_scales(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"requests": [
        {"arrival_s": 0, "prompt_tokens": 10, "segments": [
            {"generate_tokens": 5, "api": "search", "duration_s": 1.0, "return_tokens": 3}, {"generate_tokens": 4}]},
        {"id": "b", "arrival_s": 2.0, "prompt_tokens": 20, "program_id": "p", "segments": [{"generate_tokens": 7}]}]}))
    assert is_user_trace(path) and not is_user_trace(DEFAULT_TRACE)
    reqs = load_requests(path)
    assert [r.request_id for r in reqs] == ["req-0", "b"] and reqs[0].generate_tokens == 9
    assert scaled(reqs, 2.0)[1].arrival_s == 1.0


@pytest.mark.parametrize("bad", [
    {"requests": []},
    {"requests": [{"arrival_s": 0, "prompt_tokens": 10, "segments": [{"generate_tokens": 5, "api": "x"}]}]},
    {"requests": [{"arrival_s": 0, "prompt_tokens": 0, "segments": [{"generate_tokens": 5}]}]},
    {"requests": [{"arrival_s": 0, "prompt_tokens": 5, "segments": [{"generate_tokens": 5}, {"generate_tokens": 1}]}]},
])
def test_a_bad_user_trace_is_refused_naming_the_problem(tmp_path, bad):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError):
        load_requests(path)
