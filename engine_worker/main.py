"""The engine worker process: intake from Redis, one RequestSession per request, output back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import redis.asyncio as aioredis

from common.names import WORKERS_HASH
from common.redis_retry import OUTAGE_ERRORS, Backoff, retry_async
from common.schemas import (
    ErrorEvent,
    FinalEvent,
    InterceptionEvent,
    OutputEvent,
    Strategy,
    WorkerStatus,
    stale_after_s,
)
from engine_worker import engine_stats, metrics, spans
from engine_worker.cancellations import CancelWatch
from engine_worker.checkpoint import Checkpoint, replay
from engine_worker.cost_profile import describe, load_or_profile
from engine_worker.engine import build_engine, effective_config
from engine_worker.intake import Entry, OutputPublisher, RequestStream, missing_stream_or_group, parse_request
from engine_worker.intercept_controller import InterceptController
from engine_worker.pause import Pauses
from engine_worker.policies.output_length import OutputLengthHistory
from engine_worker.policies.schedulers import SchedulerName
from engine_worker.session import RequestSession
from engine_worker.settings import WorkerSettings
from engine_worker.swap_channel import SwapChannel
from engine_worker.tokens import TokenCodec
from engine_worker.tool_client import ToolClient
from estimator.client import EstimatorClient

log = logging.getLogger("engine_worker")
ENGINE_STATS_LOG_S = 10.0
"""vLLM's OpenAI server logs its engine stats this often (VLLM_LOG_STATS_INTERVAL's default)."""
LOOP_LAG_PROBE_S = 0.25
LOOP_LAG_WARN_S = 1.0
REDIS_SPARE_CONNECTIONS = 32
"""Connections beyond one per request in flight: the intake, heartbeat, cancellation and reply
loops. A request's task makes one Redis call at a time (emit, ack, call), so the pool never runs
dry; redis-py's default of 100 did at 256 in flight ("Too many connections" on every ack of a
batch that ended together, each then retried with backoff)."""


class EngineWorker:
    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self._inflight: dict[tuple[str, str], asyncio.Task] = {}
        """Keyed by (stream, entry id): entry ids are only unique within one stream."""
        self._backlog: deque[Entry] = deque()
        """Entries read past this worker's room (XREADGROUP's COUNT is per stream). They are
        pending on this worker already, so they start here as room frees, before any new read."""
        self._sessions: dict[str, RequestSession] = {}
        self._tasks: dict[str, asyncio.Task | None] = {}
        """Request id -> the task serving it, for cancelling a request its client abandoned."""
        self._cancelled: set[str] = set()
        self._last_claim = 0.0

    async def run(self) -> None:
        s = self.settings
        self._redis = aioredis.from_url(s.redis_url, max_connections=s.max_inflight + REDIS_SPARE_CONNECTIONS)
        await self._redis.ping()
        self._engine = build_engine(s)
        self._engine_config = effective_config(self._engine)
        self._codec = TokenCodec(s.model_path)
        self._codec.encode("warm-up")
        self._tools = ToolClient(self._redis, s.redis_url, s.worker_id, s.api_call_timeout_s)
        self._stream = RequestStream(self._redis, s.worker_id)
        self._out = OutputPublisher(self._redis)
        self._profile = await load_or_profile(self._engine, s.model_path, s.engine_dtype)
        log.info("cost model:\n%s", describe(self._profile))
        spans.configure(s.worker_id, f"{s.policy}+{s.scheduler}" if s.scheduler != SchedulerName.FCFS else s.policy,
                        self._profile.cost_model.kv_bytes_per_token)
        history = EstimatorClient.from_url(s.redis_url, time_scale=s.time_scale)
        # The engine core reports its pool size back to this process's config at start-up; vLLM
        # keeps one of them as its null block, never allocated.
        pool_blocks = max(0, (self._engine.vllm_config.cache_config.num_gpu_blocks or 0) - 1)
        self._controller = InterceptController(
            s.policy, self._profile.cost_model, s.duration_estimate,
            block_size=self._engine.vllm_config.cache_config.block_size,
            running_context=self._running_context, kv_usage=lambda: engine_stats.LATEST.kv_cache_usage,
            history_remaining=history.expected_remaining, interval_s=s.policy_interval_s,
            swap_capacity_tokens=s.swap_space_bytes // self._profile.cost_model.kv_bytes_per_token,
            total_blocks=pool_blocks, reserve_blocks=s.reserve_blocks_for(pool_blocks),
            engine_steps=lambda: engine_stats.LATEST.steps,
            engine_queue=lambda: (engine_stats.LATEST.num_running, engine_stats.LATEST.num_waiting))
        self._pauses = Pauses(self._controller, self._tools, self._profile.cost_model.kv_bytes_per_token, s.worker_id)
        self._swap = SwapChannel(self._redis, s.worker_id)
        self._lengths = OutputLengthHistory()
        metrics.serve(s.metrics_port, s.metrics_host)
        metrics.worker_info.labels(s.worker_id, s.policy, s.scheduler, s.model_id).set(1)
        metrics.count_faults(s.worker_id)
        metrics.collect_engine_snapshot(s.worker_id)
        # Heartbeat first, then the groups: a worker with a registered stream but no heartbeat
        # yet would look dead to the others, who would adopt and delete its stream.
        await self._heartbeat_once()
        await self._stream.ensure_group()
        for entry in await self._stream.own_pending():
            log.warning("resuming request entry %s of %s, pending from this worker's previous run",
                        entry.entry_id, entry.stream)
            self._start(entry, reclaimed=True)
        log.info("engine worker %s ready: model %s, policy %s", s.worker_id, s.model_id, s.policy)
        self._cancels = CancelWatch(self._redis)
        background = [asyncio.create_task(self._tools.read_results()), asyncio.create_task(self._heartbeat()),
                      asyncio.create_task(self._controller.run()), asyncio.create_task(self._watch_cancellations()),
                      asyncio.create_task(self._log_engine_stats()), asyncio.create_task(self._watch_loop_lag())]
        try:
            await self._intake()
        finally:
            for task in background + list(self._inflight.values()):
                task.cancel()
            try:  # best effort: Redis may be the thing that went away
                await asyncio.wait_for(self._redis.hdel(WORKERS_HASH, s.worker_id), 2)
            except (asyncio.TimeoutError, aioredis.RedisError):
                pass
            self._engine.shutdown()

    async def _intake(self) -> None:
        """Reads requests for the worker's lifetime. A Redis outage pauses it (bounded backoff,
        logged), never ends it: the requests in flight carry on meanwhile, and once Redis answers
        again the worker re-registers (heartbeat, stream registry, consumer groups: a Redis that
        lost its data has none of them) before reading on."""
        backoff = Backoff(first_s=0.2, cap_s=5.0)
        while True:
            try:
                if backoff.failures:
                    await self._heartbeat_once()
                    await self._stream.ensure_group()
                    log.info("intake: Redis reachable again after %d retries; re-registered", backoff.failures)
                    backoff.reset()
                await self._intake_step()
            except OUTAGE_ERRORS as exc:
                delay = backoff.next_delay()
                log.warning("intake: Redis unavailable (%s), retry %d in %.1fs", exc, backoff.failures, delay)
                await asyncio.sleep(delay)
            except aioredis.ResponseError as exc:
                if not missing_stream_or_group(exc):
                    raise
                log.warning("intake: request stream or group missing (%s); recreating", exc)
                await self._stream.ensure_group()

    async def _intake_step(self) -> None:
        if time.monotonic() - self._last_claim > stale_after_s(self.settings.heartbeat_s):
            self._last_claim = time.monotonic()
            for entry in await self._stream.claim_from_dead_workers(stale_after_s(self.settings.heartbeat_s)):
                self._start(entry, reclaimed=True)
        room = self.settings.max_inflight - len(self._inflight)
        while room > 0 and self._backlog:
            self._start(self._backlog.popleft(), reclaimed=False)
            room -= 1
        if room <= 0:
            await asyncio.wait(list(self._inflight.values()), return_when=asyncio.FIRST_COMPLETED)
            return
        for entry in await self._stream.next_requests(min(room, 32)):
            if room > 0:
                self._start(entry, reclaimed=False)
                room -= 1
            else:
                self._backlog.append(entry)

    def _start(self, entry: Entry, reclaimed: bool) -> None:
        task = asyncio.create_task(self._handle(entry, reclaimed))
        self._inflight[entry.key] = task
        metrics.inflight_requests.labels(self.settings.worker_id).set(len(self._inflight))
        task.add_done_callback(lambda _t: self._done(entry.key))

    def _done(self, key: tuple[str, str]) -> None:
        self._inflight.pop(key, None)
        metrics.inflight_requests.labels(self.settings.worker_id).set(len(self._inflight))

    async def _handle(self, entry: Entry, reclaimed: bool) -> None:
        try:
            request = parse_request(entry.fields)
        except Exception:
            log.exception("dropping malformed request entry %s of %s", entry.entry_id, entry.stream)
            await self._ack(entry)
            return
        rid = request.request_id
        traced = spans.RequestTrace.begin(request)
        self._tasks[rid] = asyncio.current_task()
        try:
            if request.program_id is not None:
                await self._record_holder(request.program_id)
            checkpoint = await self._checkpoint(rid) if reclaimed else None
            if checkpoint is not None and checkpoint.ended:
                return  # answered already: only its ack was missing
            session = RequestSession(request, self._engine, self._codec, self._pauses,
                                     lambda *events: self._emit(rid, *events), self.settings.max_model_len,
                                     requeue_at_back=self._controller.policy.requeue_at_back, swap=self._swap,
                                     lengths=self._lengths, reply_to=self._tools.reply_to, checkpoint=checkpoint)
            self._sessions[rid] = session
            final = (await session.run()).model_copy(update={"worker_id": self.settings.worker_id})
            traced.finish(final)
            await self._emit(rid, *session.take_held(), final)
        except asyncio.CancelledError as exc:
            if rid not in self._cancelled:
                raise  # the worker is stopping
            log.info("request %s cancelled: its client went away", rid)
            traced.fail(exc)
            metrics.requests_total.labels(self.settings.worker_id, "cancelled").inc()
        except Exception as exc:
            refused = _refused_by_vllm(exc)
            if refused:
                log.info("request %s refused by vLLM: %s", rid, exc)
            else:
                log.exception("request %s failed", rid)
            traced.fail(exc)
            error = (ErrorEvent(status=400, code="invalid_request", message=f"the engine refused the request: {exc}")
                     if refused else ErrorEvent(status=500, code="engine_error", message=f"engine error: {exc}"))
            try:
                await self._out.emit(rid, error)
            except OUTAGE_ERRORS:
                # Redis is gone past the retries: so is the gateway's view of this request, which
                # ends it with its own 503 (gateway/engine.py).
                log.error("request %s: could not report its failure, Redis unavailable", rid)
        finally:
            traced.end()
            self._sessions.pop(rid, None)
            self._tasks.pop(rid, None)
            self._cancelled.discard(rid)
            await self._ack(entry)

    async def _checkpoint(self, rid: str) -> Checkpoint | None:
        """A reclaimed request's progress, from its output events: None if it emitted none (it
        starts afresh), else what this worker continues it from (failover)."""
        checkpoint = replay(await retry_async(lambda: self._stream.output_events(rid), f"request {rid}", log))
        if checkpoint.empty:
            metrics.failovers_total.labels(self.settings.worker_id, "restarted").inc()
            return None
        kind = "answered" if checkpoint.ended else "paused" if checkpoint.pending else "generating"
        metrics.failovers_total.labels(self.settings.worker_id, kind).inc()
        log.warning("request %s: continuing the work of a dead worker (%s: %d tokens emitted, %d calls done)",
                    rid, kind, len(checkpoint.generated) + len(checkpoint.open_tokens), len(checkpoint.interceptions))
        return checkpoint

    async def _ack(self, entry: Entry) -> None:
        """Acks through a Redis restart. If Redis stays away past the retries the entry stays
        pending, and is claimed (and continued) like a dead worker's: never fatal here."""
        try:
            await retry_async(lambda: self._stream.ack(entry), f"ack of {entry.stream} {entry.entry_id}", log)
        except OUTAGE_ERRORS:
            log.error("left request entry %s of %s pending: Redis unavailable", entry.entry_id, entry.stream)

    async def _watch_cancellations(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cancel_poll_s)
            try:
                cancelled = await self._cancels.cancelled(list(self._tasks))
            except OUTAGE_ERRORS as exc:
                log.warning("could not check for cancelled requests: %s", exc)
                continue
            for rid in cancelled - self._cancelled:
                task = self._tasks.get(rid)
                if task is not None:
                    self._cancelled.add(rid)
                    task.cancel()

    async def _record_holder(self, program_id: str) -> None:
        try:
            await self._stream.record_holder(program_id, self.settings.program_affinity_ttl_s)
        except aioredis.RedisError as exc:  # affinity is an optimisation: never fail a request for it
            log.warning("could not record program %s's holder: %s", program_id, exc)

    def _running_context(self) -> int:
        """Context tokens of this worker's requests that are not paused (C_batch)."""
        return sum(s.context_len() for rid, s in self._sessions.items() if rid not in self._pauses)

    async def _emit(self, request_id: str, *events: OutputEvent) -> None:
        for event in events:
            self._count(event)
        await self._out.emit(request_id, *events)

    def _count(self, event: OutputEvent) -> None:
        worker = self.settings.worker_id
        if isinstance(event, InterceptionEvent):
            r = event.record
            metrics.interceptions_total.labels(worker, r.api, r.strategy, "ok" if r.ok else "error").inc()
            metrics.interception_seconds.labels(worker, r.api).observe(r.duration_s)
            metrics.paused_kv_byte_seconds_total.labels(worker, r.strategy).inc(r.held_kv_byte_seconds)
            metrics.duration_error_seconds.labels(worker, r.api).observe(abs(r.duration_s - r.predicted_duration_s))
        elif isinstance(event, FinalEvent):
            metrics.requests_total.labels(worker, event.finish_reason).inc()
            metrics.generated_tokens_total.labels(worker).inc(event.usage.completion_tokens)
            # Recompute happens after a resume, so only the final records carry it.
            metrics.recomputed_tokens_total.labels(worker).inc(sum(r.recomputed_tokens for r in event.interceptions))
            for r in event.interceptions:
                if r.strategy != Strategy.PRESERVE:
                    metrics.recompute_seconds.labels(worker, r.strategy).observe(r.recompute_s)
                if r.strategy == Strategy.SWAP:
                    for direction, seconds in (("out", r.swap_out_s), ("in", r.swap_in_s)):
                        metrics.swapped_bytes_total.labels(worker, direction).inc(r.swapped_bytes)
                        metrics.swap_seconds_total.labels(worker, direction).inc(seconds)

    def status(self) -> WorkerStatus:
        s = self.settings
        return WorkerStatus(
            worker_id=s.worker_id, model=s.model_id, policy=s.policy, scheduler=s.scheduler,
            scheduler_options=s.scheduler_options, duration_estimate=s.duration_estimate,
            inflight=len(self._inflight), paused=len(self._pauses), max_model_len=s.max_model_len,
            kv_cache_bytes=s.kv_cache_bytes, backlog=len(self._backlog), kv_pool_blocks=self._controller.total_blocks,
            offload_reserve_blocks=self._controller.reserve_blocks, engine_config=self._engine_config,
            heartbeat_at=time.time())

    async def _heartbeat_once(self) -> None:
        await self._redis.hset(WORKERS_HASH, self.settings.worker_id, self.status().model_dump_json())

    async def _log_engine_stats(self) -> None:
        """vLLM's own periodic stats line ("Avg prompt throughput ..., Running: n reqs, ... KV cache
        usage"), as vLLM's OpenAI server logs it every 10 s: the same engine-level figures in our
        log as in a stock server's, for side-by-side reading."""
        while True:
            await asyncio.sleep(ENGINE_STATS_LOG_S)
            try:
                await self._engine.do_log_stats()
            except Exception:  # noqa: BLE001 - a log line is never worth the worker
                log.exception("engine stats logging failed")

    async def _watch_loop_lag(self) -> None:
        """How late this process's event loop wakes a sleeper: every session's output, close and
        Redis call waits that long on top of its own work (a blocked or starved loop shows here
        before anywhere else). Logged past LOOP_LAG_WARN_S."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(LOOP_LAG_PROBE_S)
            lag = max(0.0, time.monotonic() - asked - LOOP_LAG_PROBE_S)
            metrics.event_loop_lag_seconds.labels(self.settings.worker_id).observe(lag)
            if lag > LOOP_LAG_WARN_S:
                log.warning("event loop woke %.1fs late (%d requests in flight, %d paused)", lag,
                            len(self._inflight), len(self._pauses))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self._heartbeat_once()
            except OUTAGE_ERRORS as exc:
                log.warning("heartbeat failed: %s", exc)


def _refused_by_vllm(exc: Exception) -> bool:
    """vLLM's own verdict that the request is bad (e.g. a grammar its backend cannot compile):
    the client's fault, a 400, not an engine failure."""
    from vllm.exceptions import VLLMClientError

    return isinstance(exc, VLLMClientError)
