"""The soak's pure parts: its fault schedule, the reconciliation of its requests, the memory
reading of a real process group, and how the client classifies what a gateway answered (against
httpx.MockTransport, as tests/bench/test_client.py: the real gateway is tests/e2e/test_soak.py's)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest

from bench.faults import FaultRecord, schedule
from bench.process_memory import group_rss_bytes
from bench.soak_client import SoakRecord, send
from bench.soak_report import percentile, reconcile

ENGINES = ("engine-0", "engine-1")


def test_schedule_cycles_the_kinds_and_takes_the_engine_workers_in_turn():
    plan = schedule(("redis", "executor", "engine"), ENGINES, first_s=10, every_s=20, until_s=130)
    assert [(p.at_s, p.service) for p in plan] == [
        (10, "redis"), (30, "api-executor"), (50, "engine-0"), (70, "redis"), (90, "api-executor"),
        (110, "engine-1")]
    assert schedule((), ENGINES, first_s=0, every_s=1, until_s=10) == []


def test_schedule_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="two engine workers"):
        schedule(("engine",), ("engine-0",), first_s=0, every_s=10, until_s=100)
    with pytest.raises(ValueError, match="unknown"):
        schedule(("gateway",), ENGINES, first_s=0, every_s=10, until_s=100)


def _rec(index: int, outcome: str, sent_s: float, end_s: float | None, problems=(), call_ids=()) -> SoakRecord:
    return SoakRecord(index=index, client=0, kind="short", stream=False, planned_tokens=4, planned_calls=len(call_ids),
                      sent_s=sent_s, end_s=end_s, outcome=outcome, problems=list(problems), call_ids=list(call_ids))


def test_reconcile_counts_every_request_and_splits_latency_by_fault_overlap():
    fault = FaultRecord("engine-0", planned_s=50, killed_s=50.0, ready_s=60.0)
    records = [_rec(0, "ok", 0, 2), _rec(1, "ok", 48, 70), _rec(2, "error", 55, 56), _rec(3, "ok", 100, 101)]
    summary = reconcile(records, [fault], end_s=120)
    assert summary["sent"] == 4 and summary["ok"] == 3 and summary["error"] == 1
    assert summary["reconciled"] and summary["faults_survived"] == 1
    assert summary["latency"]["during_faults"]["n"] == 1 and summary["latency"]["during_faults"]["p99_s"] == 22
    assert summary["latency"]["outside_faults"]["n"] == 2
    assert summary["per_fault"][0]["outcomes"] == {"ok": 1, "error": 1}


def test_a_hung_or_duplicated_request_fails_the_reconciliation():
    hung = reconcile([_rec(0, "ok", 0, 1), _rec(1, "hung", 0, None)], [], end_s=10)
    assert not hung["reconciled"] and hung["hung"] == 1
    dup = reconcile([_rec(0, "wrong", 0, 1, problems=["duplicated tool results: 2 results for 1 calls"])], [], 10)
    assert not dup["reconciled"] and dup["duplicated_tool_results"] == 1


def test_percentile_is_nearest_rank():
    assert percentile([], 99) is None
    assert percentile(list(range(1, 101)), 99) == 99 and percentile([3.0], 50) == 3.0


def test_group_rss_counts_a_real_process_group():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50 << 20); time.sleep(30)"],
                             start_new_session=True, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10  # until the child has touched its 50 MB
        while group_rss_bytes(child.pid) < 40 << 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_rss_bytes(child.pid) >= 40 << 20
    finally:
        child.kill()
        child.wait()
    assert group_rss_bytes(child.pid) == 0


def _answer(handler) -> SoakRecord:
    async def go() -> SoakRecord:
        rec = SoakRecord(index=0, client=0, kind="calc", stream=handler.stream, planned_tokens=3, planned_calls=1,
                         sent_s=0.0)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await send(client, "http://gw/v1/chat/completions", {}, rec, lambda: 1.0, hang_after_s=5)
    return asyncio.run(go())


def _final(call_ids=("c1",), tokens=3) -> dict:
    return {"choices": [{"finish_reason": "length", "token_ids": list(range(tokens)), "message": {"content": "x"}}],
            "interceptions": [{"call_id": c, "ok": True, "result": "42"} for c in call_ids],
            "usage": {"completion_tokens": tokens}, "system_fingerprint": "engine-1"}


class _Json:
    stream = False

    def __init__(self, status: int, body) -> None:
        self.status, self.body = status, body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return httpx.Response(self.status, text=text)


class _Sse:
    stream = True

    def __init__(self, *chunks) -> None:
        self.chunks = chunks

    def __call__(self, request: httpx.Request) -> httpx.Response:
        lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in self.chunks]
        return httpx.Response(200, text="".join(lines), headers={"content-type": "text/event-stream"})


def test_whole_answers_are_ok_and_a_duplicated_result_is_wrong():
    assert _answer(_Json(200, _final())).outcome == "ok"
    dup = _answer(_Json(200, _final(call_ids=("c1", "c1"))))
    assert dup.outcome == "wrong" and dup.problems[0].startswith("duplicated")
    short = _answer(_Json(200, _final(tokens=2)))
    assert short.outcome == "wrong"


def test_errors_are_clear_only_in_openais_shape():
    clear = _answer(_Json(503, {"error": {"message": "no engine worker", "code": "no_engine_worker"}}))
    assert (clear.outcome, clear.error_code) == ("error", "no_engine_worker")
    assert _answer(_Json(502, "Bad Gateway")).outcome == "unclear"


def test_streams_need_one_finish_usage_and_done():
    finish = {**_final(), "choices": [{"finish_reason": "length", "token_ids": [1, 2, 3], "delta": {}}]}
    delta = {"choices": [{"delta": {"content": "hi"}, "finish_reason": None}]}
    usage = {"choices": [], "usage": {"completion_tokens": 3}}
    ok = _answer(_Sse(delta, finish, usage, "[DONE]"))
    assert ok.outcome == "ok" and ok.first_token_s == 1.0 and ok.worker == "engine-1"
    assert _answer(_Sse(delta, finish, usage)).outcome == "unclear"  # cut without [DONE]
    assert _answer(_Sse(delta, finish, finish, usage, "[DONE]")).outcome == "wrong"
    error = _answer(_Sse(delta, {"error": {"message": "the engine worker died", "code": "x"}}))
    assert error.outcome == "error"
