"""The engine worker process: intake from Redis, one RequestSession per request, output back."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import redis.asyncio as aioredis

from common.names import WORKERS_HASH
from common.schemas import ErrorEvent, FinalEvent, InterceptionEvent
from engine_worker import metrics
from engine_worker.engine import build_engine
from engine_worker.intake import OutputPublisher, RequestStream, parse_request
from engine_worker.session import RequestSession
from engine_worker.settings import WorkerSettings
from engine_worker.tokens import TokenCodec
from engine_worker.tool_client import ToolClient

log = logging.getLogger("engine_worker")


class EngineWorker:
    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self._inflight: dict[str, asyncio.Task] = {}
        self._paused = 0

    async def run(self) -> None:
        s = self.settings
        self._redis = aioredis.from_url(s.redis_url)
        await self._redis.ping()
        self._engine = build_engine(s)
        self._codec = TokenCodec(s.model_path)
        self._codec.encode("warm-up")
        self._tools = ToolClient(self._redis, s.redis_url, s.worker_id, s.api_call_timeout_s)
        self._stream = RequestStream(self._redis, s.worker_id)
        self._out = OutputPublisher(self._redis)
        await self._stream.ensure_group()
        metrics.serve(s.metrics_port)
        await self._heartbeat_once()
        log.info("engine worker %s ready: model %s, policy %s", s.worker_id, s.model_id, s.policy)
        background = [asyncio.create_task(self._tools.read_results()), asyncio.create_task(self._heartbeat())]
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
        last_claim = 0.0
        while True:
            if time.monotonic() - last_claim > 5 * self.settings.heartbeat_s:
                last_claim = time.monotonic()
                for entry_id, fields in await self._stream.claim_from_dead_workers(5 * self.settings.heartbeat_s):
                    self._start(entry_id, fields, reclaimed=True)
            room = self.settings.max_inflight - len(self._inflight)
            if room <= 0:
                await asyncio.wait(list(self._inflight.values()), return_when=asyncio.FIRST_COMPLETED)
                continue
            for entry_id, fields in await self._stream.next_requests(min(room, 32)):
                self._start(entry_id, fields, reclaimed=False)

    def _start(self, entry_id: str, fields: dict, reclaimed: bool) -> None:
        task = asyncio.create_task(self._handle(entry_id, fields, reclaimed))
        self._inflight[entry_id] = task
        metrics.inflight_requests.labels(self.settings.worker_id).set(len(self._inflight))
        task.add_done_callback(lambda _t: self._done(entry_id))

    def _done(self, entry_id: str) -> None:
        self._inflight.pop(entry_id, None)
        metrics.inflight_requests.labels(self.settings.worker_id).set(len(self._inflight))

    async def _handle(self, entry_id: str, fields: dict, reclaimed: bool) -> None:
        try:
            request = parse_request(fields)
        except Exception:
            log.exception("dropping malformed request entry %s", entry_id)
            await self._stream.ack(entry_id)
            return
        rid = request.request_id
        try:
            if reclaimed and await self._stream.has_output(rid):
                await self._out.emit(rid, ErrorEvent(status=503, code="worker_lost",
                                                      message="the engine worker serving this request died"))
                return
            session = RequestSession(request, self._engine, self._codec, self._call_tool,
                                     lambda event: self._emit(rid, event), self.settings.max_model_len)
            final = await session.run()
            await self._out.emit(rid, final)
        except Exception as exc:
            log.exception("request %s failed", rid)
            await self._out.emit(rid, ErrorEvent(status=500, code="engine_error", message=f"engine error: {exc}"))
        finally:
            await self._stream.ack(entry_id)

    async def _call_tool(self, **kwargs):
        worker = self.settings.worker_id
        self._paused += 1
        metrics.paused_requests.labels(worker, self.settings.policy).set(self._paused)
        try:
            return await self._tools.call(**kwargs)
        finally:
            self._paused -= 1
            metrics.paused_requests.labels(worker, self.settings.policy).set(self._paused)

    async def _emit(self, request_id: str, event) -> None:
        worker = self.settings.worker_id
        if isinstance(event, InterceptionEvent):
            r = event.record
            metrics.interceptions_total.labels(worker, r.api, r.strategy, "ok" if r.ok else "error").inc()
            metrics.interception_seconds.labels(worker, r.api).observe(r.duration_s)
        elif isinstance(event, FinalEvent):
            metrics.requests_total.labels(worker, event.finish_reason).inc()
            metrics.generated_tokens_total.labels(worker).inc(event.usage.completion_tokens)
        await self._out.emit(request_id, event)

    def status(self) -> dict:
        s = self.settings
        return {
            "worker_id": s.worker_id, "model": s.model_id, "policy": s.policy, "inflight": len(self._inflight),
            "paused": self._paused, "max_model_len": s.max_model_len, "kv_cache_bytes": s.kv_cache_bytes,
            "heartbeat_at": time.time(),
        }

    async def _heartbeat_once(self) -> None:
        await self._redis.hset(WORKERS_HASH, self.settings.worker_id, json.dumps(self.status()))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self._heartbeat_once()
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                log.warning("heartbeat failed")
