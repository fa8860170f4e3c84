"""ExecutorSettings fails fast on limits that would lose or duplicate results."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api_executor.settings import ExecutorSettings


def test_defaults_are_consistent() -> None:
    s = ExecutorSettings()
    assert s.executor_soft_time_limit_s < s.executor_time_limit_s < s.executor_visibility_timeout_s
    assert 2 * s.executor_heartbeat_s <= s.executor_liveness_ttl_s < s.api_call_timeout_s


@pytest.mark.parametrize(("fields", "message"), [
    ({"executor_soft_time_limit_s": 80, "executor_time_limit_s": 75}, "soft_time_limit_s must be below executor_time"),
    ({"executor_soft_time_limit_s": 130, "executor_time_limit_s": 140}, "below api_call_timeout_s"),
    ({"executor_visibility_timeout_s": 600}, "visibility_timeout_s must exceed"),
    ({"executor_idempotency_ttl_s": 3000}, "idempotency_ttl_s must exceed"),
    ({"executor_heartbeat_s": 3, "executor_liveness_ttl_s": 5}, "at least twice executor_heartbeat_s"),
    ({"executor_liveness_ttl_s": 119, "executor_heartbeat_s": 2},
     "liveness_ttl_s \\+ executor_heartbeat_s must be below"),
])
def test_nonsense_is_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExecutorSettings(**fields)


def test_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUGSERVE_EXECUTOR_SOFT_TIME_LIMIT_S", "5")
    monkeypatch.setenv("AUGSERVE_EXECUTOR_TIME_LIMIT_S", "7")
    monkeypatch.setenv("AUGSERVE_HTTP_APIS", '{"weather": {"url": "http://127.0.0.1:1/w", "timeout_s": 3}}')
    s = ExecutorSettings()
    assert (s.executor_soft_time_limit_s, s.executor_time_limit_s) == (5, 7)
    assert s.http_apis["weather"].timeout_s == 3
