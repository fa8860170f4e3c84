"""The executor's Redis broker transport: kombu's, plus surviving a Redis restart, plus holder
leases so that the messages of an executor that died are reclaimed by a live one
(api_executor.reclaim: every unacked message records which worker incarnation holds it).

When the broker connection drops, Celery closes the channel, and closing puts the messages this
worker had received but not acked (running acks_late tasks, and every stand-in delivery held with
a countdown) back on the queue. Redis is down at that moment, so that restore cannot work; and in
kombu 5.x it does not fail cleanly either: the connection's transport is already collected, the
channel's new pool reads `None.hostname`, and the AttributeError (not a connection error) kills the
worker ("Unrecoverable error"). Those messages are safe in Redis's unacked hash (AOF), but would be
handed out again only after the visibility timeout (an hour): every paused request would hit its
call timeout instead.

So the close-time restore here tolerates the lost connection and remembers the delivery tags, and
a consumer bootstep puts them back on the queue as soon as the connection is back (each start of
the consumer blueprint follows a (re)connect). Re-running a message is safe: delivery is
idempotent by call_id (api_executor.delivery) and a stand-in's delivery carries its absolute due
time (api_executor.runner.run_delivery).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import bootsteps
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from api_executor import metrics, reclaim

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = kombu_redis.get_redis_error_classes().connection_errors
_lock = threading.Lock()
_unrestored: set[str] = set()
"""Delivery tags whose restore failed with the connection: restored after the reconnect."""


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        """kombu's append (the unacked hash and its time index, one pipeline), with the hold
        recorded in that same pipeline: an unacked message always names its holder."""
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key, delivery_tag, dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))
            reclaim.record_hold(pipe, delivery_tag)
            pipe.execute()
            virtual.QoS.append(self, message, delivery_tag)  # kombu_redis.QoS.append's own writes are above

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        # Every way out of the unacked hash (ack, reject, restore_by_tag) passes here.
        pipe = super()._remove_from_indices(delivery_tag, pipe)
        reclaim.release_hold(pipe, delivery_tag)
        return pipe

    def restore_unacked(self, client: Any = None) -> None:
        tags = set(self._delivered)  # type: ignore[call-overload]  # kombu declares it None, sets a dict
        try:
            super().restore_unacked(client)
        except (AttributeError, *_CONNECTION_ERRORS) as exc:
            with _lock:
                _unrestored.update(tags)
            self._delivered.clear()  # type: ignore[attr-defined]  # as above
            log.warning("broker connection lost: %d unacked message(s) go back on the queue once it is "
                        "back (%s: %s)", len(tags), type(exc).__name__, exc)


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


def take_unrestored() -> set[str]:
    with _lock:
        tags = set(_unrestored)
        _unrestored.clear()
        return tags


class RestoreAfterReconnect(bootsteps.StartStopStep):
    """Consumer bootstep: runs after every (re)connect, puts the remembered messages back."""

    requires = ("celery.worker.consumer.connection:Connection",)

    connects = 0
    """Consumer starts in this process so far: every one after the first is a reconnect."""

    def start(self, c: Any) -> None:
        if RestoreAfterReconnect.connects:
            metrics.count_broker_reconnect()
        RestoreAfterReconnect.connects += 1
        tags = take_unrestored()
        if not tags:
            return
        channel = c.connection.default_channel
        restored = 0
        try:
            with channel.conn_or_acquire() as client:
                for tag in sorted(tags):
                    channel.qos.restore_by_tag(tag, client=client)
                    restored += 1
        except BaseException:
            with _lock:  # the connection failed again: try once more after the next reconnect
                _unrestored.update(sorted(tags)[restored:])
            raise
        # A tag Redis no longer holds (restarted without its data) restores nothing: that call's
        # request gets its call-timeout error result instead.
        log.warning("broker connection back: put %d message(s) received before it was lost back on the queue",
                    restored)
