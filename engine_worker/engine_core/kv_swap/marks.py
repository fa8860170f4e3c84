"""Which aborted request the engine worker wants swapped out: the engine core's end, through Redis.

A paused request leaves the pool by being aborted, and an abort carries no parameters; the
connector (in the engine-core process) needs to know, when the request finishes, whether its
blocks go to the host buffer (swap) or straight back to the pool (discard). The worker adds the
request's vLLM id to a per-worker set before aborting it (engine_worker/swap_channel.py); the
connector takes it out atomically here.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from common.names import kv_swap_marks

log = logging.getLogger(__name__)


def take(redis, worker_id: str, vllm_request_id: str) -> bool:
    """True (once) if the worker asked for this request's KV to be swapped out. Runs inside the
    engine core's step, so a Redis outage must not raise here (it would kill the engine): the
    request is then discarded instead (its resume recomputes), and that is logged."""
    try:
        return bool(redis.srem(kv_swap_marks(worker_id), vllm_request_id))
    except RedisError as exc:
        log.warning("swap mark of %s unreadable (%s): discarding its KV instead", vllm_request_id, exc)
        return False
