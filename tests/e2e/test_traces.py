"""One request is one trace across the gateway, the engine worker and the executor.

The session's stack exports every service's spans over OTLP/HTTP to an in-test receiver
(tests/otlp_receiver.py). A scripted request with a calculator call (run at once by the
executor) and an image stand-in (finished by a scheduled delivery task) comes in under a client
traceparent; its spans must arrive from all three services, each with its parent in the trace,
and carry the figures the response reports.
"""

from __future__ import annotations

import secrets
from collections import Counter

import httpx
import pytest

from engine_worker.settings import WorkerSettings
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

MODEL = "SmolLM2-135M-Instruct"
PLAN = {"segments": [
    {"generate_tokens": 6, "api": "calculator", "arguments": {"expression": "6*7"}, "return_tokens": 4},
    {"generate_tokens": 5, "api": "image", "duration_s": 0.3, "return_tokens": 3},
    {"generate_tokens": 4},
]}
SPANS_WAIT_S = 60
"""Services export in 5 s batches; the executor's pool processes and the engine on a busy machine."""


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {sorted(s.name for s in spans)}"
    return found[0]


EXPECTED = Counter({
    "POST /v1/chat/completions": 1,                                   # gateway (FastAPI)
    "queue wait": 1, f"text_completion {MODEL}": 1, "segment": 3,     # engine worker
    "interception calculator": 1, "interception image": 1,
    "run/api.calculator": 1, "run/api.image": 1,                      # executor (Celery's spans)
    "execute_tool calculator": 1, "execute_tool image": 1,            # executor (ours)
})
"""The spans the request makes whatever the policy chose, besides the stand-in's delivery task
(one hop, or more when its timer fires early: `apply_async/api.deliver` + `run/api.deliver` each).
Pool processes export on their own schedules, so the test waits for all of them."""
DELIVERY = ("apply_async/api.deliver", "run/api.deliver")


def _expected(body: dict) -> Counter:
    """EXPECTED plus, per interception whose KV the policy discarded, its discard and recompute, and
    per swapped one its swap, the two copies and the resume's prefill."""
    discarded = sum(r["strategy"] == "discard" for r in body["interceptions"])
    swapped = sum(r["strategy"] == "swap" for r in body["interceptions"])
    return EXPECTED + Counter({"kv discard": discarded, "kv swap": swapped, "kv swap-out": swapped,
                               "kv swap-in": swapped, "kv recompute": discarded + swapped})


def _names(spans: list[ReceivedSpan]) -> Counter:
    """Span names, the delivery hops left out."""
    return Counter(s.name for s in spans if s.name not in DELIVERY)


def _complete(body: dict, spans: list[ReceivedSpan]) -> bool:
    hops = Counter(s.name for s in spans if s.name in DELIVERY)
    return _names(spans) >= _expected(body) and hops[DELIVERY[0]] == hops[DELIVERY[1]] >= 1


def _ancestors(spans: list[ReceivedSpan], span: ReceivedSpan) -> list[str]:
    by_id = {s.span_id: s for s in spans}
    names = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


@pytest.fixture(scope="module")
def traced(gateway_url: str, otlp: OtlpReceiver) -> tuple[dict, str, list[ReceivedSpan]]:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    response = httpx.post(f"{gateway_url}/v1/chat/completions", timeout=120,
                          headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "Draw a cat."}],
                                "temperature": 0, "plan": PLAN})
    assert response.status_code == 200, response.text
    body = response.json()
    spans = otlp.wait_for(lambda got: _complete(body, got), SPANS_WAIT_S, "complete trace", trace_id=trace_id)
    return body, client_span, spans


def test_every_span_has_its_parent_in_the_trace(traced):
    body, client_span, spans = traced
    assert _names(spans) == _expected(body)
    assert {s.service for s in spans} == {"gateway", "engine-worker", "api-executor"}
    ids = {s.span_id for s in spans} | {client_span}
    orphans = [(s.service, s.name) for s in spans if s.parent_id not in ids]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"
    assert not [s for s in spans if s.parent_id == ""], "the client's traceparent makes no span a root"


def test_parentage_gateway_to_engine_to_executor(traced):
    body, client_span, spans = traced
    gateway = _one(spans, "POST /v1/chat/completions")
    assert gateway.service == "gateway" and gateway.parent_id == client_span
    assert gateway.attributes["gen_ai.operation.name"] == "chat"
    assert gateway.attributes["gen_ai.request.model"] == MODEL
    assert gateway.attributes["augserve.request_id"] == body["id"]

    request = _one(spans, f"text_completion {MODEL}")
    queue = _one(spans, "queue wait")
    assert request.service == queue.service == "engine-worker"
    assert request.parent_id == queue.parent_id == gateway.span_id
    assert queue.end_ns <= request.start_ns + 1_000_000

    segments = sorted((s for s in spans if s.name == "segment"), key=lambda s: s.attributes["augserve.segment.index"])
    assert [s.parent_id for s in segments] == [request.span_id] * 3
    assert [s.attributes["gen_ai.usage.output_tokens"] for s in segments] == [6, 5, 4]

    for record in body["interceptions"]:
        interception = _one(spans, f"interception {record['api']}")
        tool = _one(spans, f"execute_tool {record['api']}")
        assert interception.service == "engine-worker" and interception.parent_id == request.span_id
        assert tool.service == "api-executor" and tool.parent_id == interception.span_id
        assert (tool.attributes["gen_ai.tool.call.id"] == interception.attributes["gen_ai.tool.call.id"]
                == record["call_id"])
        # Celery's own span of the task message, from the headers, also hangs off the interception.
        run = _one(spans, f"run/api.{record['api']}")
        assert run.service == "api-executor" and run.parent_id == interception.span_id
    # The stand-in's delivery task was sent from inside the image task: Celery's spans chain it.
    first_hop = min((s for s in spans if s.name == "run/api.deliver"), key=lambda s: s.start_ns)
    assert _ancestors(spans, first_hop)[:2] == ["apply_async/api.deliver", "run/api.image"]


def test_engine_spans_carry_the_genai_and_policy_attributes(traced):
    body, _client_span, spans = traced
    request = _one(spans, f"text_completion {MODEL}").attributes
    assert request["gen_ai.operation.name"] == "text_completion" and request["gen_ai.request.model"] == MODEL
    assert request["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"] == 15
    assert request["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    assert request["gen_ai.response.finish_reasons"] == ["stop"]
    # The shared stack runs the defaults; the attribute names the policy and, unless FCFS, the scheduler.
    defaults = WorkerSettings.model_fields
    default_system = f"{defaults['policy'].default}+{defaults['scheduler'].default}"
    assert request["augserve.policy"] == default_system and request["augserve.worker"] == "engine-0"
    assert request["augserve.interceptions"] == 2
    for record in body["interceptions"]:
        attributes = _one(spans, f"interception {record['api']}").attributes
        assert attributes["gen_ai.tool.name"] == record["api"]
        assert attributes["augserve.strategy"] == record["strategy"]
        for figure in ("waste_preserve", "waste_discard", "waste_swap"):
            assert attributes[f"augserve.waste.{figure.removeprefix('waste_')}"] == record[figure]
        assert attributes["augserve.predicted_duration_s"] == record["predicted_duration_s"]
        assert attributes["augserve.duration_s"] == record["duration_s"]
        assert attributes["augserve.held_kv_byte_seconds"] == record["held_kv_byte_seconds"]
        assert attributes["augserve.context_tokens"] == record["context_tokens"]
    # Each interception's KV spans follow the strategy its record reports (the policy's choice
    # depends on the machine's cost model): none for preserve; the release and the recompute for
    # discard; for swap the release, the connector's copies when it reported them, the recompute.
    interceptions = {s.span_id: s for s in spans if s.name.startswith("interception ")}
    kv_spans = [s for s in spans if s.name.startswith("kv ")]
    assert all(s.parent_id in interceptions for s in kv_spans), [s.name for s in kv_spans]
    for record in body["interceptions"]:
        span_id = next(i for i, s in interceptions.items()
                       if s.attributes["gen_ai.tool.call.id"] == record["call_id"])
        children = sorted(s.name for s in kv_spans if s.parent_id == span_id)
        if record["strategy"] == "preserve":
            assert children == [], record
        elif record["strategy"] == "discard":
            assert children == ["kv discard", "kv recompute"], record
        else:
            assert children in (["kv recompute", "kv swap"],
                                ["kv recompute", "kv swap", "kv swap-in", "kv swap-out"]), record
    for span in (s for s in spans if s.name == "kv recompute"):
        record = next(r for r in body["interceptions"]
                      if r["call_id"] == interceptions[span.parent_id].attributes["gen_ai.tool.call.id"])
        assert span.attributes["augserve.recomputed_tokens"] == record["recomputed_tokens"]
        assert interceptions[span.parent_id].attributes["augserve.recompute_s"] == record["recompute_s"]


def test_tool_span_follows_the_genai_execute_tool_convention(traced):
    body, _client_span, spans = traced
    by_api = {r["api"]: r for r in body["interceptions"]}
    calculator = _one(spans, "execute_tool calculator")
    assert calculator.attributes["gen_ai.operation.name"] == "execute_tool"
    assert calculator.attributes["gen_ai.tool.name"] == "calculator"
    assert calculator.attributes["augserve.outcome"] == "ok" and calculator.status != 2
    image = _one(spans, "execute_tool image")
    # The stand-in's span covers its whole wait, across the task that planned it and the
    # delivery task that ended it; the engine saw the same call from outside, a little longer.
    assert image.attributes["augserve.duration_s"] >= 0.3 * 0.9
    assert (image.end_ns - image.start_ns) / 1e9 <= by_api["image"]["duration_s"] + 0.05
