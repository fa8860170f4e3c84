"""Holder leases on a real Redis through the executor's own kombu transport (no Celery worker):
an unacked message names its holder, every way out of the unacked hash drops the hold, and a
message whose holder stopped heart-beating goes back on the queue exactly once.

These pin the kombu internals api_executor.broker and api_executor.reclaim lean on (the unacked
hash's format, `_remove_from_indices`, `_do_restore_message`): a kombu upgrade that changes them
fails here, loudly, not in production."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue

from api_executor import reclaim
from api_executor.broker import Transport

DB = 6
"""A database of its own: other tests flush db 0."""


@pytest.fixture
def broker(redis_server: str) -> Iterator[tuple[Connection, redis.Redis]]:
    url = redis_server.rsplit("/", 1)[0] + f"/{DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    with Connection(url, transport=Transport) as conn:
        queue = Queue("reclaim-test", Exchange("reclaim-test", type="direct"), routing_key="reclaim-test")
        queue(conn.default_channel).declare()
        yield conn, client
    client.close()


def _publish(conn: Connection, body: dict) -> None:
    with conn.Producer() as producer:
        producer.publish(body, exchange="reclaim-test", routing_key="reclaim-test", serializer="json")


def _receive(conn: Connection):
    message = conn.default_channel.basic_get("reclaim-test", no_ack=False)
    assert message is not None
    return message


def _holds(client: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(reclaim.HOLDERS_KEY).items()}


def test_a_received_message_names_its_holder_and_an_ack_drops_it(broker) -> None:
    conn, client = broker
    _publish(conn, {"n": 1})
    message = _receive(conn)
    tag = message.delivery_tag
    assert _holds(client) == {tag: reclaim.incarnation()}
    assert client.hexists("unacked", tag) and client.zscore("unacked_index", tag) is not None
    ttl_ms = client.pttl(reclaim.alive_key(reclaim.incarnation()))
    assert 0 < ttl_ms <= 5000  # ExecutorSettings' default liveness ttl
    message.ack()
    assert _holds(client) == {} and not client.hexists("unacked", tag)


def test_a_requeued_message_drops_its_hold(broker) -> None:
    conn, client = broker
    _publish(conn, {"n": 1})
    _receive(conn).reject(requeue=True)
    assert _holds(client) == {} and client.llen("reclaim-test") == 1


def test_a_live_holders_message_stays_held(broker) -> None:
    conn, client = broker
    _publish(conn, {"n": 1})
    _receive(conn)
    assert reclaim.orphaned(client, me="another-worker") == []
    assert reclaim.reclaim_once(conn.default_channel) == 0  # its own holds, too, stay
    assert client.llen("reclaim-test") == 0


def test_a_dead_holders_message_goes_back_once(broker) -> None:
    conn, client = broker
    _publish(conn, {"n": 1})
    _publish(conn, {"n": 2})
    first = _receive(conn)
    me = reclaim.incarnation()
    client.delete(reclaim.alive_key(me))  # what the ttl does to a worker that died
    assert reclaim.orphaned(client, me="another-worker") == [(first.delivery_tag, me)]
    assert reclaim.restore_orphan(conn.default_channel, client, first.delivery_tag, me)
    assert not reclaim.restore_orphan(conn.default_channel, client, first.delivery_tag, me)  # a second scanner
    assert _holds(client) == {} and client.hlen("unacked") == 0
    # Back at the front of the queue (ahead of {"n": 2}), readable by kombu as before, marked redelivered.
    again = _receive(conn)
    assert again.decode() == {"n": 1} and again.delivery_tag == first.delivery_tag
    assert again.delivery_info["redelivered"]
    assert _receive(conn).decode() == {"n": 2}


def test_a_message_held_anew_is_not_restored_for_its_old_holder(broker) -> None:
    conn, client = broker
    _publish(conn, {"n": 1})
    tag = _receive(conn).delivery_tag
    assert not reclaim.restore_orphan(conn.default_channel, client, tag, "a-dead-worker")
    assert _holds(client) == {tag: reclaim.incarnation()} and client.llen("reclaim-test") == 0
