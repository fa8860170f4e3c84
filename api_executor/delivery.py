"""Delivering a ToolResult to its reply stream, at most once per call_id.

With acks_late a call can run twice (a worker lost after delivering but before acking, a stand-in
scheduled twice). A marker key per call_id makes delivery idempotent: one Lua script sets the
marker (SET NX EX) and XADDs the result atomically, so there is no window in which the marker
exists without the result, or the reverse. The marker outlives the broker's visibility timeout,
the longest a message can wait before it is handed out again (ExecutorSettings enforces it).
"""

from __future__ import annotations

import redis

from common.names import PREFIX
from common.schemas import ToolResult

_DELIVER_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], '*', 'result', ARGV[2])
  return 1
end
return 0
"""


def delivered_key(call_id: str) -> str:
    return f"{PREFIX}:executor:delivered:{call_id}"


def already_delivered(client: redis.Redis, call_id: str) -> bool:
    return bool(client.exists(delivered_key(call_id)))


def deliver(client: redis.Redis, result: ToolResult, reply_to: str, marker_ttl_s: int) -> bool:
    """XADD <reply_to> * result <ToolResult JSON>; False if this call_id was delivered before."""
    script = client.register_script(_DELIVER_ONCE)
    added = script(keys=[delivered_key(result.call_id), reply_to], args=[marker_ttl_s, result.model_dump_json()])
    return bool(added)
