"""Integration: a real Celery worker process (prefork, concurrency 1) on the test Redis server.

Calls are sent by name from a plain Celery client app (this test never imports the worker's
tasks) and results are read off the reply stream with XREAD BLOCK, as the engine worker does.
Everything waits on conditions with deadlines; nothing sleeps in place of one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from common.names import CELERY_QUEUE, duration_history, task_name
from common.schemas import ToolCallTask, ToolResult
from stack.processes import Service, free_port, python_module
from tests.otlp_receiver import OtlpReceiver

SOFT_LIMIT_S = 1.0
TIME_SCALE = 0.05
MAX_RETRIES = 2


class Executor:
    """The worker under test and a client for it."""

    def __init__(self, url: str, service: Service, metrics_port: int, otlp: OtlpReceiver) -> None:
        self.otlp = otlp
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.celery = Celery("test-client", broker=url, set_as_current=False)
        self.celery.conf.update(task_serializer="json", accept_content=["json"],
                                broker_connection_retry_on_startup=True)
        self.service = service
        self.metrics_port = metrics_port

    def send(self, api: str, arguments: dict[str, Any] | None = None, reply_to: str = "",
             **fields: Any) -> ToolCallTask:
        call = ToolCallTask(call_id=fields.pop("call_id", f"call-{uuid.uuid4().hex[:12]}"), request_id="req-1",
                            api=api, arguments=arguments or {}, reply_to=reply_to, **fields)
        self.send_kwargs(api, call.model_dump(mode="json"))
        return call

    def send_kwargs(self, api: str, kwargs: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.celery.send_task(task_name(api), kwargs=kwargs, queue=CELERY_QUEUE, headers=headers)

    def results(self, stream: str, n: int, timeout_s: float = 15.0) -> list[ToolResult]:
        """The first n results on `stream`, waiting with XREAD BLOCK up to a deadline."""
        out: list[ToolResult] = []
        last = "0-0"
        deadline = time.monotonic() + timeout_s
        while len(out) < n:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not self.service.alive():
                raise AssertionError(f"{len(out)}/{n} results on {stream}; worker log:\n{self.service.log_tail()}")
            for _, entries in self.redis.xread({stream: last}, block=min(left_ms, 500)) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    out.append(ToolResult.model_validate_json(fields["result"]))
        return out

    def result(self, stream: str, timeout_s: float = 15.0) -> ToolResult:
        return self.results(stream, 1, timeout_s)[0]

    def metrics_text(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout_s}s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def executor(redis_server: str, local_http, tmp_path_factory) -> Iterator[Executor]:
    # A database of its own: other tests flush db 0, which would drop the broker's queues.
    url = redis_server.rsplit("/", 1)[0] + "/3"
    redis.Redis.from_url(url).flushdb()
    metrics_port = free_port()
    otlp = OtlpReceiver().start()
    apis = {
        "echo": {"url": f"{local_http.base}/echo"},
        "slow": {"url": f"{local_http.base}/slow", "timeout_s": 30},
        "down": {"url": f"http://127.0.0.1:{free_port()}/", "timeout_s": 2},
    }
    env = {
        "AUGSERVE_REDIS_URL": url, "AUGSERVE_TIME_SCALE": str(TIME_SCALE),
        "AUGSERVE_EXECUTOR_SOFT_TIME_LIMIT_S": str(SOFT_LIMIT_S), "AUGSERVE_EXECUTOR_TIME_LIMIT_S": "5",
        "AUGSERVE_EXECUTOR_HTTP_MAX_RETRIES": str(MAX_RETRIES), "AUGSERVE_EXECUTOR_HTTP_RETRY_BACKOFF_S": "0.05",
        "AUGSERVE_EXECUTOR_METRICS_PORT": str(metrics_port), "AUGSERVE_HTTP_APIS": json.dumps(apis),
        # Traces to the in-test receiver, exported every 100 ms (the SDK's own setting) not every 5 s.
        "AUGSERVE_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    service = python_module(
        "executor", "celery", "-A", "api_executor.celery_app", "worker", "-Q", CELERY_QUEUE,
        "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "-n", f"test-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", env=env,
    ).start(Path(tmp_path_factory.mktemp("executor-logs")))
    ex = Executor(url, service, metrics_port, otlp)
    try:
        ex.send("calculator", {"expression": "1+1"}, reply_to="warmup")
        ex.result("warmup", timeout_s=60)
        yield ex
    finally:
        service.stop()
        ex.redis.close()
        otlp.stop()


@pytest.fixture
def stream() -> str:
    return f"test-replies-{uuid.uuid4().hex[:8]}"


def test_calculator_ok(executor: Executor, stream: str) -> None:
    call = executor.send("calculator", {"expression": "2 + 3 * 4"}, reply_to=stream)
    result = executor.result(stream)
    assert ((result.call_id, result.api, result.ok, result.content, result.error)
            == (call.call_id, "calculator", True, "14", None))
    assert result.started_at <= result.ended_at <= time.time()


def test_calculator_error(executor: Executor, stream: str) -> None:
    executor.send("calculator", {"expression": "1/0"}, reply_to=stream)
    result = executor.result(stream)
    assert (result.ok, result.content, result.error) == (False, "error: division by zero", "division by zero")


def test_invalid_call_still_answered(executor: Executor, stream: str) -> None:
    """Kwargs that are not a ToolCallTask still get an error result if they say where to reply."""
    executor.send_kwargs("qa", {"call_id": "bad-1", "reply_to": stream, "api": "qa"})
    result = executor.result(stream)
    assert (result.call_id, result.ok) == ("bad-1", False)
    assert result.content.startswith("error: invalid call (fields: request_id, arguments)")


def test_qa_and_ve(executor: Executor, stream: str) -> None:
    executor.send("qa", {"query": "Who discovered penicillin?", "k": 1}, reply_to=stream)
    executor.send("ve", {"episode": "w-1", "action": "look"}, reply_to=stream)
    executor.send("ve", {"episode": "w-1", "action": "go to fridge 1"}, reply_to=stream)
    qa_result, first, second = executor.results(stream, 3)
    assert qa_result.content.startswith("[1] Penicillin:")
    assert "Your task is to:" in first.content
    assert second.content.startswith("You arrive at the fridge 1.")


def test_http_ok(executor: Executor, stream: str) -> None:
    executor.send("http", {"endpoint": "echo", "params": {"q": "fox"}}, reply_to=stream)
    result = executor.result(stream)
    assert result.ok, result.content
    assert json.loads(result.content)["query"] == {"q": "fox"}


def test_http_not_registered(executor: Executor, stream: str) -> None:
    executor.send("http", {"endpoint": "http://example.com/"}, reply_to=stream)
    result = executor.result(stream)
    assert not result.ok and "is not registered (registered: down, echo, slow)" in result.content


def test_http_transient_errors_retried_then_reported(executor: Executor, stream: str) -> None:
    executor.send("http", {"endpoint": "down"}, reply_to=stream)
    result = executor.result(stream)
    assert not result.ok
    assert result.content == ("error: http endpoint 'down' unreachable (ConnectError) "
                              f"(after {MAX_RETRIES + 1} attempts)")
    assert f'augserve_executor_retries_total{{api="http"}} {float(MAX_RETRIES)}' in executor.metrics_text()


def test_soft_time_limit_gives_timeout_result(executor: Executor, local_http, stream: str) -> None:
    """The 'slow' endpoint never answers within the limit: the call ends with a timeout error."""
    executor.send("http", {"endpoint": "slow"}, reply_to=stream)
    result = executor.result(stream)
    assert (result.ok, result.content) == (False, f"error: timed out after {SOFT_LIMIT_S:g}s")
    # The limit's timer starts when the pool process takes the job, a few ms before the task body
    # records started_at (task_prerun handlers run in between: Celery's tracing spans among them).
    assert SOFT_LIMIT_S - 0.05 <= result.ended_at - result.started_at < 5


def test_standin_waits_and_returns_exact_words(executor: Executor, stream: str) -> None:
    executor.send("image", {"prompt": "a red fox"}, reply_to=stream, duration_s=0.5, return_tokens=17)
    result = executor.result(stream)
    assert result.ok and result.ended_at - result.started_at >= 0.5
    assert len(result.content.split()) == 17 and result.content.startswith("[image generated: a red fox]")


def test_standin_drawn_duration_is_scaled(executor: Executor, stream: str) -> None:
    """No duration_s: tts draws from its trace distribution (>= 0.5 s) times the time scale."""
    executor.send("tts", {"text": "hello"}, reply_to=stream)
    result = executor.result(stream)
    assert result.ok and len(result.content.split()) == 25
    assert result.ended_at - result.started_at >= 0.5 * TIME_SCALE


def test_standins_do_not_block_the_worker(executor: Executor, stream: str) -> None:
    """Ten 0.5 s waits on one worker process finish in about one wait, not ten."""
    n, wait = 10, 0.5
    start = time.time()
    for _ in range(n):
        executor.send("chatbot", reply_to=stream, duration_s=wait, return_tokens=5)
    results = executor.results(stream, n)
    elapsed = max(r.ended_at for r in results) - start
    assert all(r.ok and r.ended_at - r.started_at >= wait for r in results)
    assert elapsed < 3 * wait, f"{n} waits of {wait}s took {elapsed:.2f}s"


def test_duration_recorded(executor: Executor, stream: str) -> None:
    executor.send("qa", {"query": "Saturn rings"}, reply_to=stream)
    result = executor.result(stream)
    expected = result.ended_at - result.started_at
    # Recorded just after the result is delivered (the paused request comes first): poll for it.
    wait_for(lambda: executor.redis.lrange(duration_history("qa"), 0, 0) == [repr(expected)], "duration recorded")
    wait_for(lambda: 'augserve_executor_calls_total{api="qa",outcome="ok"}' in executor.metrics_text(), "qa ok metric")


def test_redelivered_call_is_delivered_once(executor: Executor, stream: str) -> None:
    """The same call_id twice (as acks_late re-runs it): one result. The sentinel, sent last to
    the single worker process, proves the copy was consumed before we count."""
    executor.send("calculator", {"expression": "6*7"}, reply_to=stream, call_id="dup-sync")
    executor.send("calculator", {"expression": "6*7"}, reply_to=stream, call_id="dup-sync")
    executor.send("calculator", {"expression": "1"}, reply_to=stream, call_id="sentinel-sync")
    first, sentinel = executor.results(stream, 2)
    assert (first.call_id, first.content, sentinel.call_id) == ("dup-sync", "42", "sentinel-sync")
    assert executor.redis.xlen(stream) == 2
    assert 'augserve_executor_duplicate_deliveries_total{api="calculator"}' in executor.metrics_text()


def test_redelivered_standin_is_delivered_once(executor: Executor, stream: str) -> None:
    """Both copies schedule a delivery; the second finds the call answered. The sentinel's
    delivery is due after both, and one worker process runs them in due order."""
    for call_id in ("dup-wait", "dup-wait", "sentinel-wait"):
        executor.send("image", reply_to=stream, call_id=call_id, duration_s=0.3, return_tokens=3)
    first, sentinel = executor.results(stream, 2)
    assert (first.call_id, sentinel.call_id) == ("dup-wait", "sentinel-wait")
    assert executor.redis.xlen(stream) == 2


def test_unexpected_exception_becomes_error_result(executor: Executor, stream: str) -> None:
    """A kind failing in a way nobody planned for (corrupt episode state) still answers the call."""
    executor.redis.set("augserve:executor:ve:req-1:broken", "{not json")
    executor.send("ve", {"episode": "broken", "action": "look"}, reply_to=stream)
    result = executor.result(stream)
    assert (result.ok, result.content) == (False, "error: internal error (JSONDecodeError)")


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def test_tool_span_is_a_child_of_the_callers_span(executor: Executor, stream: str) -> None:
    traceparent, trace_id, caller = _traceparent()
    call = executor.send("calculator", {"expression": "6*7"}, reply_to=stream, traceparent=traceparent)
    assert executor.result(stream).ok
    spans = executor.otlp.wait_for(lambda got: any(s.name == "execute_tool calculator" for s in got), 15,
                                   "execute_tool span", trace_id=trace_id)
    tool = next(s for s in spans if s.name == "execute_tool calculator")
    assert tool.service == "api-executor" and tool.parent_id == caller
    assert tool.attributes == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calculator", "gen_ai.tool.call.id": call.call_id,
        "gen_ai.tool.type": "extension", "augserve.api": "calculator", "augserve.request_id": "req-1",
        "augserve.outcome": "ok", "augserve.duration_s": tool.attributes["augserve.duration_s"],
    }
    assert tool.status == 0 and tool.end_ns >= tool.start_ns


def test_tool_span_covers_every_retry_and_reports_the_error(executor: Executor, stream: str) -> None:
    traceparent, trace_id, caller = _traceparent()
    executor.send("http", {"endpoint": "down"}, reply_to=stream, traceparent=traceparent)
    result = executor.result(stream)
    spans = executor.otlp.wait_for(lambda got: any(s.name == "execute_tool down" for s in got), 15,
                                   "execute_tool span", trace_id=trace_id)
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    assert len(tools) == 1, "one span per call, not per attempt"
    tool = tools[0]
    assert tool.parent_id == caller and tool.status == 2  # ERROR
    assert tool.attributes["gen_ai.tool.name"] == "down" and tool.attributes["augserve.api"] == "http"
    assert tool.attributes["error.type"] == tool.attributes["augserve.outcome"] == "error"
    assert abs((tool.end_ns - tool.start_ns) / 1e9 - (result.ended_at - result.started_at)) < 0.001


def test_celery_task_span_continues_the_trace_of_the_message_headers(executor: Executor, stream: str) -> None:
    traceparent, trace_id, caller = _traceparent()
    call = ToolCallTask(call_id=f"call-{uuid.uuid4().hex[:12]}", request_id="req-1", api="calculator",
                        arguments={"expression": "2+2"}, reply_to=stream)
    executor.send_kwargs("calculator", call.model_dump(mode="json"), headers={"traceparent": traceparent})
    assert executor.result(stream).ok
    spans = executor.otlp.wait_for(lambda got: any(s.name == "run/api.calculator" for s in got), 15,
                                   "Celery run span", trace_id=trace_id)
    run = next(s for s in spans if s.name == "run/api.calculator")
    assert run.service == "api-executor" and run.parent_id == caller
