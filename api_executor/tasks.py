"""The executor's Celery tasks: one per API kind, named common.names.task_name(kind), plus the
internal `api.deliver` (common.names.DELIVER_TASK, kwargs common.schemas.StandInDelivery) that
ends a stand-in's wait. Thin: api_executor.runner does the work.

Each kind task takes ToolCallTask's fields as kwargs: send_task("api.<kind>", kwargs=call.model_dump()).
"""

from __future__ import annotations

from typing import Any

from celery import Task

from api_executor import runner, runtime
from api_executor.celery_app import app
from api_executor.kinds import calculator, chatbot, http, image, qa, tts, ve
from common.names import DELIVER_TASK, task_name
from common.schemas import API_KINDS, StandInDelivery


class ExecutorTask(Task):
    """Base of every executor task: a failure that escaped the runner still answers the call."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: dict[str, Any], einfo: Any) -> None:
        kind = kwargs.get("kind") or self.name.removeprefix("api.")
        runner.on_task_failure(kind, exc, kwargs)


SYNC_KINDS: dict[str, runner.SyncFn] = {
    "calculator": lambda c: calculator.run(c.arguments),
    "qa": lambda c: qa.run(c.arguments),
    "ve": lambda c: ve.run(c.arguments, runtime.redis_client(), runtime.settings().executor_ve_episode_ttl_s,
                           c.request_id),
    "http": lambda c: http.run(c.arguments, runtime.settings().http_apis, runtime.settings().executor_http_max_chars),
}
STANDINS = {"chatbot": chatbot.SPEC, "image": image.SPEC, "tts": tts.SPEC}
assert set(SYNC_KINDS) | set(STANDINS) == set(API_KINDS), "every API kind needs a task"


@app.task(name=task_name("calculator"), bind=True, base=ExecutorTask)
def calculator_task(self: Task, **kwargs: Any) -> None:
    runner.run_sync(self, "calculator", SYNC_KINDS["calculator"], kwargs)


@app.task(name=task_name("qa"), bind=True, base=ExecutorTask)
def qa_task(self: Task, **kwargs: Any) -> None:
    runner.run_sync(self, "qa", SYNC_KINDS["qa"], kwargs)


@app.task(name=task_name("ve"), bind=True, base=ExecutorTask)
def ve_task(self: Task, **kwargs: Any) -> None:
    runner.run_sync(self, "ve", SYNC_KINDS["ve"], kwargs)


@app.task(name=task_name("http"), bind=True, base=ExecutorTask)
def http_task(self: Task, **kwargs: Any) -> None:
    runner.run_sync(self, "http", SYNC_KINDS["http"], kwargs)


@app.task(name=task_name("chatbot"), base=ExecutorTask)
def chatbot_task(**kwargs: Any) -> None:
    runner.run_standin("chatbot", STANDINS["chatbot"], kwargs)


@app.task(name=task_name("image"), base=ExecutorTask)
def image_task(**kwargs: Any) -> None:
    runner.run_standin("image", STANDINS["image"], kwargs)


@app.task(name=task_name("tts"), base=ExecutorTask)
def tts_task(**kwargs: Any) -> None:
    runner.run_standin("tts", STANDINS["tts"], kwargs)


@app.task(name=DELIVER_TASK, base=ExecutorTask)
def deliver(**kwargs: Any) -> None:
    runner.run_delivery(StandInDelivery.model_validate(kwargs))

