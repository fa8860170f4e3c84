"""The worker's scheduler defaults: LAMPS with the serving starvation guard unless told otherwise."""

from __future__ import annotations

import pytest

from engine_worker.policies.cost_model import GPTJ_A100
from engine_worker.policies.lamps import SERVING_STARVATION_THRESHOLD, STARVATION_THRESHOLD, Lamps
from engine_worker.policies.schedulers import make_scheduler
from engine_worker.settings import WorkerSettings


@pytest.fixture(autouse=True)
def _no_scheduler_env(monkeypatch):
    for name in ("AUGSERVE_SCHEDULER", "AUGSERVE_SCHEDULER_OPTIONS"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_is_lamps_with_the_serving_guard():
    s = WorkerSettings(model_path="m")
    assert (s.scheduler, s.scheduler_options) == ("lamps", {"starvation_threshold": SERVING_STARVATION_THRESHOLD})
    policy = make_scheduler(s.scheduler, GPTJ_A100, **s.scheduler_options)
    assert isinstance(policy, Lamps) and policy.starvation_threshold == SERVING_STARVATION_THRESHOLD


def test_another_scheduler_gets_no_lamps_options():
    assert WorkerSettings(model_path="m", scheduler="fcfs").scheduler_options == {}


def test_given_options_win_even_when_empty(monkeypatch):
    monkeypatch.setenv("AUGSERVE_SCHEDULER_OPTIONS", "{}")
    s = WorkerSettings(model_path="m")
    assert s.scheduler_options == {}
    assert make_scheduler(s.scheduler, GPTJ_A100, **s.scheduler_options).starvation_threshold == STARVATION_THRESHOLD
