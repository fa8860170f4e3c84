"""A call outlives its executor: messages held by a dead executor go back on the queue within
seconds, not after the broker's visibility timeout.

With acks_late on Celery's Redis broker, a message a worker has received sits in kombu's unacked
hash until it is acked: a running call, and every stand-in delivery held with a countdown (an ETA
task the worker keeps in memory until due). When the worker's main process dies (SIGKILL of its
process group, the machine gone), nobody acks or restores them; kombu hands them out again only
once they are older than `visibility_timeout`, which must stay above the longest legitimate hold
(hard time limit + longest countdown): an hour here, so every paused request hit its call timeout.

The options, and why this one:
- a short visibility_timeout: kombu cannot tell a dead holder from a live one that is still
  waiting, so every held message older than the timeout is re-queued while its worker still holds
  it; the copy is held again and re-queued one period later, so copies multiply for as long as a
  countdown lasts, and a sync call longer than the timeout runs twice. Recovery could never be
  faster than the longest legitimate hold, which is minutes.
- `task_reject_on_worker_lost` (configured too): it covers a pool process dying under a live main
  process, which rejects the message back onto the queue. When the main process dies with its
  pool, no one is left to reject.
- the engine worker re-dispatching a call whose executor stopped heart-beating: the engine would
  have to learn which executor holds which call (the broker's bookkeeping, copied into another
  service), and the old message still sits in the unacked hash, to come back as a second copy an
  hour later; every caller of the executor would need the same logic.
- chosen: holder leases, next to kombu's own bookkeeping. In the same pipeline in which kombu adds
  a message to its unacked hash (api_executor.broker.QoS.append), the worker records itself as the
  message's holder (a hash tag -> incarnation) and refreshes its liveness key (PX ttl); a bootstep
  refreshes that key every `executor_heartbeat_s` and looks for holders whose key has expired.
  Each such message is put back at the front of its queue in one WATCH/MULTI transaction that
  also checks the holder is still the dead one, so any number of live workers (the restarted one
  among them) restore it exactly once. A restored stand-in delivery keeps its absolute due time
  (runner.run_delivery): one already due is delivered at once.

An incarnation is one worker process's life (host, pid, a random part), not its Celery hostname:
a restarted worker keeps the hostname, and its predecessor's messages must still look orphaned.

Recovery takes at most `executor_liveness_ttl_s` + `executor_heartbeat_s` after the death while
another executor runs, else until a restarted one's first scan after the ttl. A worker that only
looks dead (its loop stalled past the ttl) has its messages run again elsewhere: delivery is
idempotent by call_id (api_executor.delivery), so that costs a duplicate run, never a second
result. The long visibility_timeout remains the backstop for an unacked message without a holder
record (one received by a worker from before this scheme).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from functools import lru_cache
from typing import Any

from celery import bootsteps
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from api_executor import metrics, runtime
from common.names import PREFIX

log = logging.getLogger(__name__)

HOLDERS_KEY = f"{PREFIX}:executor:holders"
"""Hash: delivery tag of an unacked broker message -> incarnation of the worker holding it."""


def alive_key(incarnation_id: str) -> str:
    """Exists (PX liveness ttl) while that worker incarnation is alive."""
    return f"{PREFIX}:executor:alive:{incarnation_id}"


@lru_cache(maxsize=None)
def _incarnation(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"


def incarnation() -> str:
    """This process's incarnation id (a forked child gets its own, never its parent's)."""
    return _incarnation(os.getpid())


def _ttl_ms() -> int:
    return int(runtime.settings().executor_liveness_ttl_s * 1000)


def record_hold(pipe: Any, delivery_tag: str) -> None:
    """Queues, on kombu's append pipeline: this incarnation holds `delivery_tag`, and is alive.
    One pipeline, so a hold is never recorded without a fresh liveness key behind it."""
    me = incarnation()
    pipe.hset(HOLDERS_KEY, delivery_tag, me).set(alive_key(me), "1", px=_ttl_ms())


def release_hold(pipe: Any, delivery_tag: str) -> None:
    """Queues, wherever kombu removes a message from its unacked indices (ack, reject, restore)."""
    pipe.hdel(HOLDERS_KEY, delivery_tag)


def heartbeat(client: Any) -> None:
    client.set(alive_key(incarnation()), "1", px=_ttl_ms())


def orphaned(client: Any, me: str) -> list[tuple[str, str]]:
    """(delivery tag, holder) of every held message whose holder's liveness key has expired."""
    holds = {bytes_to_str(tag): bytes_to_str(holder) for tag, holder in client.hgetall(HOLDERS_KEY).items()}
    others = sorted(set(holds.values()) - {me})
    if not others:
        return []
    with client.pipeline(transaction=False) as pipe:
        for holder in others:
            pipe.exists(alive_key(holder))
        alive = pipe.execute()
    dead = {holder for holder, up in zip(others, alive) if not up}
    return sorted((tag, holder) for tag, holder in holds.items() if holder in dead)


def restore_orphan(channel: Any, client: Any, tag: str, holder: str) -> bool:
    """Puts `tag` back at the front of its queue if `holder` still holds it (atomic: WATCH on
    both hashes, so a second scanner, an ack or a new holder in between makes this a no-op).
    Uses kombu's own removal and restore steps (as its restore_by_tag does). True if restored."""
    qos = channel.qos
    restored = False

    def transaction(pipe: Any) -> None:
        nonlocal restored
        restored = False
        current = pipe.hget(HOLDERS_KEY, tag)
        raw = pipe.hget(qos.unacked_key, tag)
        pipe.multi()
        if current is None or bytes_to_str(current) != holder:
            return
        qos._remove_from_indices(tag, pipe)  # the hold too (broker.QoS)
        if raw:
            payload, exchange, routing_key = loads(bytes_to_str(raw))
            channel._do_restore_message(payload, exchange, routing_key, pipe, leftmost=False)
            restored = True

    client.transaction(transaction, HOLDERS_KEY, qos.unacked_key)
    return restored


def reclaim_once(channel: Any) -> int:
    """Heartbeat, then restore every message held by a dead incarnation. Returns how many."""
    me = incarnation()
    n = 0
    with channel.conn_or_acquire() as client:
        heartbeat(client)
        for tag, holder in orphaned(client, me):
            if restore_orphan(channel, client, tag, holder):
                n += 1
                log.warning("put message %s back on the queue: its executor %s stopped heart-beating", tag, holder)
    if n:
        metrics.count_reclaimed(n)
    return n


class ReclaimFromDeadExecutors(bootsteps.StartStopStep):
    """Consumer bootstep: from every (re)connect on, heartbeat and reclaim every heartbeat_s, on
    the worker's event loop (the loop that holds the messages: if it stalls, so does the lease)."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._tref: Any = None

    def start(self, c: Any) -> None:
        self.stop(c)
        channel = c.connection.default_channel
        self._tick(channel)
        self._tref = c.timer.call_repeatedly(runtime.settings().executor_heartbeat_s, self._tick, (channel,))

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None

    def shutdown(self, c: Any) -> None:
        self.stop(c)

    @staticmethod
    def _tick(channel: Any) -> None:
        try:
            reclaim_once(channel)
        except channel.connection_errors as exc:  # Redis restarting: the consumer reconnects
            log.warning("executor heartbeat/reclaim skipped: broker unreachable (%s)", exc)
        except Exception:  # never let the timer die with it
            log.exception("executor heartbeat/reclaim failed")
