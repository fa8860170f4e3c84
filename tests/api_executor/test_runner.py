"""The last-resort failure hook: a task killed by its hard time limit still answers its call.

Celery calls it in the worker's main process after killing the pool process, so it is tested
here directly against real Redis (a hard limit cannot be reached in the worker without a kind
that ignores its soft limit, and none does).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from billiard.exceptions import TimeLimitExceeded, WorkerLostError

from api_executor import runner, runtime
from common.names import duration_history
from common.schemas import ToolCallTask, ToolResult


@pytest.fixture
def worker_runtime(redis_server: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AUGSERVE_REDIS_URL", redis_server)
    monkeypatch.setenv("AUGSERVE_EXECUTOR_TIME_LIMIT_S", "75")
    caches = (runtime.settings, runtime.redis_client, runtime.duration_store)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def _kwargs(call_id: str) -> dict:
    return ToolCallTask(call_id=call_id, request_id="r", api="http", arguments={}, reply_to="replies").model_dump()


def test_hard_time_limit_delivers_a_timeout(worker_runtime: None, redis_client: redis.Redis) -> None:
    runner.on_task_failure("http", TimeLimitExceeded(75), _kwargs("hard-1"))
    (_, fields), = redis_client.xrange("replies")
    result = ToolResult.model_validate_json(fields["result"])
    assert (result.call_id, result.ok, result.content) == ("hard-1", False, "error: timed out after 75s")
    assert result.ended_at - result.started_at == pytest.approx(75)
    assert redis_client.llen(duration_history("http")) == 1


def test_lost_worker_delivers_nothing(worker_runtime: None, redis_client: redis.Redis) -> None:
    """The message is requeued (reject_on_worker_lost) and the call runs again: no result yet."""
    runner.on_task_failure("http", WorkerLostError("killed"), _kwargs("lost-1"))
    assert redis_client.xlen("replies") == 0


def test_failure_of_a_delivery_task_uses_its_call(worker_runtime: None, redis_client: redis.Redis) -> None:
    kwargs = {"kind": "image", "call": _kwargs("img-1"), "content": "x", "started_at": 5.0, "due_at": 6.0}
    runner.on_task_failure("image", RuntimeError("boom"), kwargs)
    (_, fields), = redis_client.xrange("replies")
    result = ToolResult.model_validate_json(fields["result"])
    assert (result.call_id, result.api, result.content, result.started_at) == (
        "img-1", "image", "error: internal error (RuntimeError)", 5.0)
