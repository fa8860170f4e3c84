"""The executor's Celery app: Redis broker, JSON only, late acks, no result backend.

Start a worker (from the repository root, with the stack's env, e.g. AUGSERVE_REDIS_URL):

    python -m celery -A api_executor.celery_app worker -Q api --pool prefork --concurrency 8

Results travel by message (XADD to the caller's reply stream), never through a Celery backend.
Late acks + reject-on-worker-lost mean a call whose pool process dies is run again; a call whose
whole worker dies (main process included) is put back on the queue by a live or restarted worker
once the dead one's liveness key expires (api_executor.reclaim); delivery is idempotent by call_id
(api_executor.delivery), so the caller still gets exactly one result. The visibility timeout is
far above any task's hard limit plus the longest delivery countdown, so messages that are merely
waiting (stand-in deliveries held with a countdown) are never handed out twice; it is only the
backstop for an unacked message that names no holder. Metrics: set AUGSERVE_EXECUTOR_METRICS_PORT
to serve /metrics from the main process.
Traces (AUGSERVE_OTLP_ENDPOINT): set up in each prefork pool process, where tasks run; a failure
that only the main process reports (a hard time limit) gets no execute_tool span.
"""

from __future__ import annotations

from typing import Any  # noqa: E402

from celery import Celery, signals  # noqa: E402

from api_executor import metrics  # first: it may set PROMETHEUS_MULTIPROC_DIR before prometheus_client loads
from api_executor.broker import RestoreAfterReconnect  # noqa: E402
from api_executor.reclaim import ReclaimFromDeadExecutors  # noqa: E402
from api_executor.settings import ExecutorSettings  # noqa: E402
from common import tracing  # noqa: E402
from common.names import CELERY_QUEUE  # noqa: E402

settings = ExecutorSettings()

app = Celery("api_executor", broker=settings.redis_url, include=["api_executor.tasks"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=CELERY_QUEUE,
    task_routes={"api.*": {"queue": CELERY_QUEUE}},
    broker_transport_options={"visibility_timeout": settings.executor_visibility_timeout_s},
    # Broker outages (api_executor/broker.py): our transport survives the restore that kombu's
    # crashes on; reconnect at start-up and after a loss, forever, kombu's backoff (2 s steps up to
    # 30 s between tries): a worker that gave up would only be restarted into the same outage.
    broker_transport="api_executor.broker:Transport",
    broker_connection_retry=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    # A task running when the connection drops is left to finish (not cancelled): its result is
    # delivered once Redis is back (delivery retries), its message put back on the queue (it
    # cannot be acked on the lost channel) and re-run, where the delivered call_id makes it a no-op.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    # Sends (a stand-in's delivery, an http retry) ride out a restart instead of failing the call.
    task_publish_retry_policy={"max_retries": 15, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0},
    task_soft_time_limit=settings.executor_soft_time_limit_s,
    task_time_limit=settings.executor_time_limit_s,
)


app.steps["consumer"].add(RestoreAfterReconnect)
app.steps["consumer"].add(ReclaimFromDeadExecutors)


@signals.worker_init.connect
def _serve_metrics(**_: Any) -> None:
    metrics.count_faults()  # in the main process: the pool processes forked later inherit it
    if settings.executor_metrics_port:
        metrics.serve(settings.executor_metrics_port)


@signals.worker_process_init.connect
def _trace_pool_process(**_: Any) -> None:
    # After the fork, in the pool process: the batch exporter's thread would not survive a fork.
    if tracing.setup("api-executor", settings.otlp_endpoint):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument()


@signals.worker_process_shutdown.connect
def _flush_traces(**_: Any) -> None:
    tracing.shutdown()
