"""Integration: a call outlives its executor. Real Celery worker processes (prefork) on the test
Redis server; the worker holding stand-in deliveries (chatbot calls waiting for their due time)
is SIGKILLed with its whole process group, and every call's result still arrives, exactly once,
soon after: from a worker that was running all along, or from one started after the kill.

Calls are sent by name from a plain Celery client (as the engine worker does) and results read
off the reply stream; every wait polls a condition against a deadline."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from celery import Celery

from api_executor import reclaim
from common.names import CELERY_QUEUE, task_name
from common.schemas import ToolCallTask, ToolResult
from stack.processes import Service, python_module

DB = 7
"""A database of its own: other tests flush db 0, which would drop the broker's queues."""
HEARTBEAT_S, LIVENESS_TTL_S = 0.5, 2.0
"""Shorter than the defaults (1 s, 5 s) so that the test is quick; the mechanism is the same."""
N_CALLS = 4
CALL_S = 3.0
RESTART_AFTER_S = 3.0
"""The scenario: the dead executor is started again this long after the kill (not a wait for a
condition)."""
START_BOUND_S = 30.0
"""A worker process answers within this long of its start, on a loaded 2-core machine."""
RECOVERY_SLACK_S = 6.0
"""Beyond the mechanism's own bound (ttl + heartbeat, after the replacement is up): a loaded CPU."""


class Cluster:
    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.celery = Celery("test-client", broker=url, set_as_current=False)
        self.celery.conf.update(task_serializer="json", accept_content=["json"],
                                broker_connection_retry_on_startup=True)
        self.workers: list[Service] = []

    def start_worker(self, name: str, **extra_env: str) -> Service:
        """Starts a worker and returns once its liveness key is there (it is consuming)."""
        before = self.incarnations()
        env = {"AUGSERVE_REDIS_URL": self.url, "AUGSERVE_TIME_SCALE": "1",
               "AUGSERVE_EXECUTOR_HEARTBEAT_S": str(HEARTBEAT_S),
               "AUGSERVE_EXECUTOR_LIVENESS_TTL_S": str(LIVENESS_TTL_S), **extra_env}
        service = python_module(
            name, "celery", "-A", "api_executor.celery_app", "worker", "-Q", CELERY_QUEUE, "--pool", "prefork",
            "--concurrency", "2", "--loglevel", "INFO", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", env=env,
        ).start(self.log_dir)
        self.workers.append(service)
        service.wait_until(lambda: self.incarnations() - before, START_BOUND_S, "liveness key")
        return service

    def incarnations(self) -> set[str]:
        prefix = reclaim.alive_key("")
        return {key.removeprefix(prefix) for key in self.redis.scan_iter(f"{prefix}*")}

    def send_chatbot(self, reply_to: str) -> ToolCallTask:
        call = ToolCallTask(call_id=f"call-{uuid.uuid4().hex[:12]}", request_id="req-1", api="chatbot",
                            arguments={}, duration_s=CALL_S, return_tokens=3, reply_to=reply_to)
        self.celery.send_task(task_name("chatbot"), kwargs=call.model_dump(mode="json"), queue=CELERY_QUEUE)
        return call

    def held_deliveries(self) -> dict[str, str]:
        """delivery tag -> holder incarnation, of the held `api.deliver` messages."""
        holds = self.redis.hgetall(reclaim.HOLDERS_KEY)
        out = {}
        for tag, raw in self.redis.hgetall("unacked").items():
            payload = json.loads(raw)[0]
            if payload["headers"]["task"] == "api.deliver" and tag in holds:
                out[tag] = holds[tag]
        return out

    def broker_empty(self) -> bool:
        """Nothing left that could run a call again: no queued, unacked or held message."""
        return (self.redis.llen(CELERY_QUEUE) == 0 and self.redis.hlen("unacked") == 0
                and self.redis.hlen(reclaim.HOLDERS_KEY) == 0)

    def results_with_arrival(self, stream: str, n: int, timeout_s: float) -> list[tuple[float, ToolResult]]:
        out: list[tuple[float, ToolResult]] = []
        last = "0-0"
        deadline = time.monotonic() + timeout_s
        while len(out) < n:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                logs = "\n".join(f"--- {w.name}\n{w.log_tail(30)}" for w in self.workers)
                raise AssertionError(f"{len(out)}/{n} results on {stream} after {timeout_s:.0f}s\n{logs}")
            for _, entries in self.redis.xread({stream: last}, block=min(left_ms, 200)) or []:
                arrived = time.time()
                for entry_id, fields in entries:
                    last = entry_id
                    out.append((arrived, ToolResult.model_validate_json(fields["result"])))
        return out


def _kill_group(service: Service) -> float:
    """SIGKILL to the worker's whole process group (main process and pool); returns when."""
    os.killpg(service.process.pid, signal.SIGKILL)
    killed_at = time.time()
    service.process.wait(timeout=10)
    return killed_at


def _poll(condition: Callable[[], object], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f}s"
        time.sleep(0.05)


@pytest.fixture
def cluster(redis_server: str, tmp_path: Path) -> Iterator[Cluster]:
    url = redis_server.rsplit("/", 1)[0] + f"/{DB}"
    redis.Redis.from_url(url).flushdb()
    c = Cluster(url, tmp_path / "logs")
    try:
        yield c
    finally:
        for worker in c.workers:
            worker.stop()
        c.redis.close()


def _held_by_one_worker(cluster: Cluster, stream: str) -> tuple[Service, list[ToolCallTask], str]:
    worker = cluster.start_worker("executor-a")
    (holder,) = cluster.incarnations()
    calls = [cluster.send_chatbot(stream) for _ in range(N_CALLS)]
    # Each chatbot task ran and scheduled its delivery, which the worker now holds until due.
    _poll(lambda: list(cluster.held_deliveries().values()) == [holder] * N_CALLS, f"{N_CALLS} held deliveries", 20)
    return worker, calls, holder


def _check_once(cluster: Cluster, stream: str, calls: list[ToolCallTask],
                got: list[tuple[float, ToolResult]]) -> None:
    assert sorted(r.call_id for _, r in got) == sorted(c.call_id for c in calls)
    for _, result in got:
        assert result.ok and result.content.startswith("[user follow-up]") and len(result.content.split()) == 3
        assert result.ended_at - result.started_at >= CALL_S  # the real wait, not an early answer
    # Exactly once: when the broker holds nothing that could run a call again, count the results.
    _poll(cluster.broker_empty, "empty broker", 20)
    assert cluster.redis.xlen(stream) == N_CALLS


def test_a_running_executor_takes_over_the_calls_of_a_killed_one(cluster: Cluster) -> None:
    stream = f"replies-{uuid.uuid4().hex[:8]}"
    a, calls, dead = _held_by_one_worker(cluster, stream)
    cluster.start_worker("executor-b")
    killed_at = _kill_group(a)
    got = cluster.results_with_arrival(stream, N_CALLS, timeout_s=LIVENESS_TTL_S + CALL_S + 30)
    _check_once(cluster, stream, calls, got)
    recovery = [arrived - killed_at for arrived, _ in got]
    due = max(r.started_at for _, r in got) + CALL_S - killed_at
    print(f"\nlive takeover: results {[f'{s:.2f}' for s in recovery]} s after the kill "
          f"(calls due {due:.2f} s after it; ttl {LIVENESS_TTL_S} s, heartbeat {HEARTBEAT_S} s)")
    assert max(recovery) < max(due, LIVENESS_TTL_S + HEARTBEAT_S) + RECOVERY_SLACK_S
    assert dead not in cluster.incarnations()


def test_a_restarted_executor_runs_the_calls_of_its_killed_predecessor(cluster: Cluster) -> None:
    stream = f"replies-{uuid.uuid4().hex[:8]}"
    a, calls, dead = _held_by_one_worker(cluster, stream)
    killed_at = _kill_group(a)
    time.sleep(RESTART_AFTER_S)  # the scenario: the executor comes back 3 s later
    cluster.start_worker("executor-a")  # the same Celery hostname, a new incarnation
    up_at = time.time()
    got = cluster.results_with_arrival(stream, N_CALLS, timeout_s=LIVENESS_TTL_S + CALL_S + 30)
    _check_once(cluster, stream, calls, got)
    recovery = [arrived - killed_at for arrived, _ in got]
    print(f"\nrestart: results {[f'{s:.2f}' for s in recovery]} s after the kill "
          f"(replacement consuming {up_at - killed_at:.2f} s after it)")
    # Due already (3 s calls, killed after they were held): the bound is the replacement's start
    # plus the rest of the dead one's ttl, plus a scan.
    assert max(recovery) < max(up_at - killed_at, LIVENESS_TTL_S) + HEARTBEAT_S + RECOVERY_SLACK_S
    assert dead not in cluster.incarnations()


class GatedEndpoint:
    """A local HTTP endpoint that answers only once `open` is set, counting the requests it got."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.hits = 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                state.hits += 1
                state.open.wait(60)
                body = f"answer {state.hits}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:  # the caller was killed meanwhile
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_call_running_when_its_executor_dies_is_run_again(cluster: Cluster) -> None:
    """Not only waiting deliveries: a sync call in a pool process killed mid-request is re-run."""
    endpoint = GatedEndpoint()
    try:
        apis = json.dumps({"gated": {"url": endpoint.url, "timeout_s": 60}})
        a = cluster.start_worker("executor-a", AUGSERVE_HTTP_APIS=apis)
        stream = f"replies-{uuid.uuid4().hex[:8]}"
        call = ToolCallTask(call_id=f"call-{uuid.uuid4().hex[:12]}", request_id="req-1", api="http",
                            arguments={"endpoint": "gated"}, reply_to=stream)
        cluster.celery.send_task(task_name("http"), kwargs=call.model_dump(mode="json"), queue=CELERY_QUEUE)
        _poll(lambda: endpoint.hits == 1, "the call reaching the endpoint", 20)
        killed_at = _kill_group(a)
        endpoint.open.set()  # from now on it answers: the re-run gets through
        cluster.start_worker("executor-a", AUGSERVE_HTTP_APIS=apis)
        ((arrived, result),) = cluster.results_with_arrival(stream, 1, timeout_s=START_BOUND_S + LIVENESS_TTL_S + 10)
        assert (result.call_id, result.ok, result.content) == (call.call_id, True, "answer 2")
        print(f"\nrunning call: result {arrived - killed_at:.2f} s after the kill")
        _poll(cluster.broker_empty, "empty broker", 20)
        assert cluster.redis.xlen(stream) == 1 and endpoint.hits == 2
    finally:
        endpoint.close()
