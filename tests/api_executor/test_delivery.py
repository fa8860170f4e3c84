"""Delivery is at most once per call_id, and the marker and the result appear together."""

from __future__ import annotations

import redis

from api_executor import delivery
from common.schemas import ToolResult


def _result(call_id: str, content: str = "4") -> ToolResult:
    return ToolResult(call_id=call_id, api="calculator", ok=True, content=content, started_at=1.0, ended_at=2.0)


def test_delivers_once(redis_client: redis.Redis) -> None:
    assert not delivery.already_delivered(redis_client, "c1")
    assert delivery.deliver(redis_client, _result("c1"), "replies", marker_ttl_s=100)
    assert delivery.already_delivered(redis_client, "c1")
    assert not delivery.deliver(redis_client, _result("c1", "5"), "replies", marker_ttl_s=100)
    entries = redis_client.xrange("replies")
    assert len(entries) == 1
    assert ToolResult.model_validate_json(entries[0][1]["result"]) == _result("c1")
    assert 0 < redis_client.ttl(delivery.delivered_key("c1")) <= 100


def test_other_calls_are_independent(redis_client: redis.Redis) -> None:
    assert delivery.deliver(redis_client, _result("a"), "replies", marker_ttl_s=100)
    assert delivery.deliver(redis_client, _result("b"), "other-replies", marker_ttl_s=100)
    assert redis_client.xlen("replies") == 1 and redis_client.xlen("other-replies") == 1
