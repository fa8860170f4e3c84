"""What every executor task does around its kind's function: the call's whole life, always ending
in exactly one delivered ToolResult.

- sync kinds run the function now; every failure becomes an error result the model reads
  ("error: ..."), a soft time limit included; TransientErrors of the http kind are retried with
  exponential backoff first.
- stand-ins plan (duration, text) and schedule `api.deliver` with a countdown: the wait holds a
  broker message, not a worker process, so hundreds of waits need no extra processes.
- `finish` delivers once per call_id (api_executor.delivery), then records the duration in the
  estimator store and the metrics; a duplicate is only counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celery import Task
from pydantic import ValidationError

from api_executor import delivery, metrics, runtime, spans
from api_executor.celery_app import app
from api_executor.errors import ToolError, TransientError
from api_executor.kinds import standin
from common.names import CELERY_QUEUE, DELIVER_TASK
from common.redis_retry import retry_sync
from common.schemas import StandInDelivery, ToolCallTask, ToolResult

log = logging.getLogger(__name__)

FIRST_STARTED = "_first_started_at"
"""Extra kwarg carried across retries, so started_at is the first attempt's start."""
DELIVERY_JITTER_S = 0.05
"""A delivery that fires this close before its due time waits out the rest (timer jitter)."""
MAX_RETRY_BACKOFF_S = 30.0

SyncFn = Callable[[ToolCallTask], str]


def run_sync(task: Task, kind: str, fn: SyncFn, kwargs: dict[str, Any]) -> None:
    first_started = kwargs.pop(FIRST_STARTED, None)
    call = _parse(kind, kwargs)
    if call is None or _duplicate(kind, call):
        return
    started = first_started if isinstance(first_started, (int, float)) else time.time()
    outcome, content = "ok", ""
    try:
        content = fn(call)
    except SoftTimeLimitExceeded:
        outcome, content = "timeout", f"timed out after {runtime.settings().executor_soft_time_limit_s:g}s"
    except TransientError as exc:
        retries, limit = task.request.retries, runtime.settings().executor_http_max_retries
        if kind == "http" and retries < limit:
            metrics.count_retry(kind)
            countdown = min(MAX_RETRY_BACKOFF_S, runtime.settings().executor_http_retry_backoff_s * 2**retries)
            raise task.retry(kwargs={**kwargs, FIRST_STARTED: started}, countdown=countdown, max_retries=limit)
        attempts = retries + 1
        outcome, content = "error", f"{exc} (after {attempts} attempt{'s' if attempts > 1 else ''})"
    except ToolError as exc:
        outcome, content = "error", str(exc)
    except Exception as exc:  # a bug in a kind: still an answer for the paused request
        log.exception("%s call %s failed", kind, call.call_id)
        outcome, content = "error", f"internal error ({type(exc).__name__})"
    finish(kind, call, outcome, content, started, time.time())


def run_standin(kind: str, spec: standin.StandInSpec, kwargs: dict[str, Any]) -> None:
    call = _parse(kind, kwargs)
    if call is None or _duplicate(kind, call):
        return
    started = time.time()
    try:
        plan = standin.plan(spec, call, runtime.settings().time_scale)
    except ToolError as exc:
        finish(kind, call, "error", str(exc), started, time.time())
        return
    schedule_delivery(kind, call, plan.content, started, due_at=started + plan.wait_s)


def schedule_delivery(kind: str, call: ToolCallTask, content: str, started_at: float, due_at: float) -> None:
    remaining = due_at - time.time()
    if remaining <= 0:
        finish(kind, call, "ok", content, started_at, time.time())
        return
    planned = StandInDelivery(kind=kind, call=call, content=content, started_at=started_at, due_at=due_at)
    app.send_task(DELIVER_TASK, kwargs=planned.model_dump(mode="json"),
                  countdown=min(remaining, runtime.settings().executor_max_countdown_s), queue=CELERY_QUEUE)


def run_delivery(planned: StandInDelivery) -> None:
    """The scheduled end of a stand-in: deliver now, or hop again if still early (long waits)."""
    remaining = planned.due_at - time.time()
    if remaining > DELIVERY_JITTER_S:
        schedule_delivery(planned.kind, planned.call, planned.content, planned.started_at, planned.due_at)
        return
    if remaining > 0:
        time.sleep(remaining)  # at most DELIVERY_JITTER_S: the timer fired a hair early
    finish(planned.kind, planned.call, "ok", planned.content, planned.started_at, time.time())


def finish(kind: str, call: ToolCallTask, outcome: str, content: str, started_at: float, ended_at: float) -> None:
    ok = outcome == "ok"
    result = ToolResult(
        call_id=call.call_id, api=kind, ok=ok, content=content if ok else f"error: {content}",
        error=None if ok else content, started_at=started_at, ended_at=ended_at,
    )
    settings = runtime.settings()
    # Through a Redis restart: the paused request is waiting for exactly this message.
    delivered = retry_sync(lambda: delivery.deliver(runtime.redis_client(), result, call.reply_to,
                                                    settings.executor_idempotency_ttl_s),
                           f"delivering {kind} call {call.call_id}", log)
    if not delivered:
        metrics.count_duplicate(kind)
        return
    duration = max(0.0, ended_at - started_at)
    runtime.duration_store().record(kind, duration)
    metrics.observe_call(kind, outcome, duration)
    spans.record_call(kind, call, outcome, content, started_at, ended_at)


def on_task_failure(kind: str, exc: BaseException, kwargs: dict[str, Any]) -> None:
    """Last resort for a task that raised (e.g. its hard time limit, reported in the main process):
    deliver an error result unless the call will run again (worker lost: the message is requeued)."""
    if isinstance(exc, WorkerLostError):
        return
    raw = kwargs.get("call", kwargs)
    try:
        call = ToolCallTask.model_validate({k: v for k, v in raw.items() if not k.startswith("_")})
    except ValidationError:
        log.error("%s task failed with unusable kwargs; no result can be delivered", kind)
        return
    now = time.time()
    if isinstance(exc, TimeLimitExceeded):
        limit = runtime.settings().executor_time_limit_s
        outcome, content, started = "timeout", f"timed out after {limit:g}s", now - limit
    else:
        outcome, content, started = "error", f"internal error ({type(exc).__name__})", now
    started = kwargs.get("started_at") or kwargs.get(FIRST_STARTED) or started
    try:
        finish(kind, call, outcome, content, started, now)
    except Exception:
        log.exception("could not deliver the failure of %s call %s", kind, call.call_id)


def _parse(kind: str, kwargs: dict[str, Any]) -> ToolCallTask | None:
    try:
        return ToolCallTask.model_validate(kwargs)
    except ValidationError as exc:
        call_id, reply_to = kwargs.get("call_id"), kwargs.get("reply_to")
        if not (isinstance(call_id, str) and isinstance(reply_to, str)):
            log.error("dropping a %s call without call_id/reply_to: %s", kind, exc)
            return None
        traceparent = kwargs.get("traceparent")
        stub = ToolCallTask(call_id=call_id, request_id=str(kwargs.get("request_id", "")), api=kind,
                            arguments={}, reply_to=reply_to,
                            traceparent=traceparent if isinstance(traceparent, str) else None)
        now = time.time()
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
        finish(kind, stub, "error", f"invalid call (fields: {fields})", now, now)
        return None


def _duplicate(kind: str, call: ToolCallTask) -> bool:
    """Skips the work of a call already answered (acks_late re-run); delivery would refuse anyway."""
    if retry_sync(lambda: delivery.already_delivered(runtime.redis_client(), call.call_id),
                  f"checking {kind} call {call.call_id}", log):
        metrics.count_duplicate(kind)
        return True
    return False
