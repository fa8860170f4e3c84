"""The load generator: scripted chat completions through the gateway's HTTP API, as a client app
sends them (temperature 0, the `plan` extension), open loop (Poisson arrivals) or closed loop.

Times in a RequestRecord are seconds from the run's start on the client's monotonic clock.
Latency counts from the scheduled arrival, so a client that falls behind cannot hide queueing.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.prompts import PromptBuilder
from bench.workload import BenchRequest

OK_FINISH = frozenset({"stop", "length"})
DROPPED_FIELDS = frozenset({"result", "arguments", "call_id"})
"""Interception fields not kept: large text, or unique ids; everything else is (new fields too)."""
UNFINISHED = "not finished by the end of the drain period (cancelled)"


@dataclass
class RequestRecord:
    index: int
    key: str
    type: str
    arrival_s: float
    planned_tokens: int
    sent_s: float | None = None
    first_token_s: float | None = None
    """Streaming only: the first chunk carrying generated text."""
    end_s: float | None = None
    """When the response was complete or failed; None if it never was (cut at the drain end)."""
    status: int | None = None
    ok: bool = False
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    interceptions: list[dict[str, Any]] = field(default_factory=list)


def error_text(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:300].decode(errors="replace")


class Progress:
    """One status line, rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self, label: str, total: int | None, out=sys.stdout):
        self.label, self.total, self.out = label, total, out
        self.sent = self.done = self.failed = 0
        self._last = 0.0
        self._tty = out.isatty()

    def bar(self, width: int = 20) -> str:
        """Finished requests (done or failed) of the total; empty in closed loop (no total)."""
        if not self.total:
            return ""
        filled = round(width * (self.done + self.failed) / self.total)
        return "[" + "#" * filled + "." * (width - filled) + "]"

    def update(self, elapsed_s: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (0.5 if self._tty else 5.0):
            return
        self._last = now
        total = f"/{self.total}" if self.total is not None else ""
        line = (f"  {self.label}: {elapsed_s:5.0f}s {self.bar()} sent {self.sent}{total}  done {self.done}  "
                f"failed {self.failed}  in flight {self.sent - self.done - self.failed}")
        self.out.write(("\r" + line + "   ") if self._tty else line + "\n")
        if force and self._tty:
            self.out.write("\n")
        self.out.flush()


class LoadClient:
    def __init__(self, base_url: str, model: str, prompts: PromptBuilder, *, seed: int, stream: bool = True,
                 timeout_s: float = 900.0, transport: httpx.AsyncBaseTransport | None = None,
                 api_key: str | None = None):
        self.url = f"{base_url}/v1/chat/completions"
        self.model, self.prompts, self.seed, self.stream = model, prompts, seed, stream
        self.timeout = httpx.Timeout(timeout_s, connect=30.0)
        self.limits = httpx.Limits(max_connections=2048, max_keepalive_connections=256)
        self.transport = transport
        """None: the network; tests pass an httpx.MockTransport."""
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        """A stack with keys needs an operator key from the bench: its requests are scripted plans."""

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, limits=self.limits, transport=self.transport,
                                 headers=self.headers)

    def prompt_text(self, request: BenchRequest) -> str:
        """The user message, seeded by the request's index: every system gets the same text."""
        return self.prompts.build(request.prompt_tokens,
                                  random.Random(f"{self.seed}:{request.run_key}:prompt:{request.index}"))

    def body(self, request: BenchRequest) -> dict[str, Any]:
        text = self.prompt_text(request)
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": text}],
                                "temperature": 0, "plan": request.plan, "stream": self.stream}
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _send(self, client: httpx.AsyncClient, body: dict, rec: RequestRecord, clock: Callable[[], float],
                    progress: Progress) -> None:
        rec.sent_s = clock()
        progress.sent += 1
        await self._exchange(client, body, rec, clock)
        rec.end_s = clock()
        if rec.error is None and rec.finish_reason not in OK_FINISH:
            rec.error = f"finish_reason {rec.finish_reason!r}"
        rec.ok = rec.error is None
        if rec.ok:
            progress.done += 1
        else:
            progress.failed += 1

    async def _exchange(self, client: httpx.AsyncClient, body: dict, rec: RequestRecord,
                        clock: Callable[[], float]) -> None:
        """The request's HTTP exchange(s), filling the record; errors go to rec.error."""
        try:
            if self.stream:
                async with client.stream("POST", self.url, json=body) as response:
                    rec.status = response.status_code
                    if response.status_code != 200:
                        rec.error = error_text(await response.aread())
                    else:
                        async for line in response.aiter_lines():
                            if line.startswith("data: ") and not self._chunk(line[6:], rec, clock):
                                break
            else:
                response = await client.post(self.url, json=body)
                rec.status = response.status_code
                if response.status_code != 200:
                    rec.error = error_text(response.content)
                else:
                    payload = response.json()
                    self._finish(payload, rec)
                    rec.finish_reason = payload["choices"][0].get("finish_reason")
        except httpx.HTTPError as exc:
            rec.error = f"{type(exc).__name__}: {exc}"

    def _chunk(self, data: str, rec: RequestRecord, clock: Callable[[], float]) -> bool:
        """Reads one SSE chunk into the record; False at the end of the stream."""
        if data == "[DONE]":
            return False
        chunk = json.loads(data)
        if "error" in chunk:
            rec.error = str(chunk["error"].get("message", chunk["error"]))
            return False
        for choice in chunk.get("choices") or []:
            if rec.first_token_s is None and (choice.get("delta") or {}).get("content"):
                rec.first_token_s = clock()
            if choice.get("finish_reason"):
                rec.finish_reason = choice["finish_reason"]
        self._finish(chunk, rec)
        return True

    @staticmethod
    def _finish(payload: dict, rec: RequestRecord) -> None:
        if "interceptions" in payload:
            rec.interceptions = [{k: v for k, v in r.items() if k not in DROPPED_FIELDS}
                                 for r in payload["interceptions"]]
        if payload.get("usage"):
            rec.prompt_tokens = payload["usage"].get("prompt_tokens")
            rec.completion_tokens = payload["usage"].get("completion_tokens")

    @staticmethod
    def _record(request: BenchRequest) -> RequestRecord:
        return RequestRecord(request.index, request.key, request.type, request.arrival_s, request.generate_tokens)

    async def run_open(self, requests: Sequence[BenchRequest], *, window_s: float, drain_s: float,
                       label: str = "run") -> list[RequestRecord]:
        """Sends each request at its arrival offset; requests unfinished window_s + drain_s after
        the start are cancelled and recorded as such."""
        bodies = [self.body(r) for r in requests]  # built up front: tokenizing must not delay arrivals
        records = [self._record(r) for r in requests]
        progress = Progress(label, len(requests))
        loop = asyncio.get_running_loop()
        start = loop.time()
        clock = lambda: loop.time() - start  # noqa: E731

        async with self._client() as client:
            async def one(request: BenchRequest, body: dict, rec: RequestRecord) -> None:
                await asyncio.sleep(max(0.0, request.arrival_s - clock()))
                await self._send(client, body, rec, clock, progress)

            tasks = [asyncio.create_task(one(*item)) for item in zip(requests, bodies, records)]
            await self._await_all(tasks, start + window_s + drain_s, progress, clock)
        self._mark_unfinished(records)
        return records

    async def run_closed(self, requests: Sequence[BenchRequest], *, concurrency: int, window_s: float,
                         drain_s: float, label: str = "run") -> list[RequestRecord]:
        """`concurrency` clients, each sending its next request as soon as its last one ended,
        until window_s; a request's arrival is its send time."""
        records: list[RequestRecord] = []
        pending = iter(requests)
        progress = Progress(label, None)
        loop = asyncio.get_running_loop()
        start = loop.time()
        clock = lambda: loop.time() - start  # noqa: E731

        async with self._client() as client:
            async def worker() -> None:
                while clock() < window_s and (request := next(pending, None)) is not None:
                    body = self.body(request)
                    rec = self._record(request)
                    rec.arrival_s = clock()
                    records.append(rec)
                    await self._send(client, body, rec, clock, progress)

            tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
            await self._await_all(tasks, start + window_s + drain_s, progress, clock)
        self._mark_unfinished(records)
        return sorted(records, key=lambda r: r.arrival_s)

    @staticmethod
    async def _await_all(tasks: list[asyncio.Task], deadline: float, progress: Progress,
                         clock: Callable[[], float]) -> None:
        loop = asyncio.get_running_loop()
        remaining = set(tasks)
        while remaining and loop.time() < deadline:
            _, remaining = await asyncio.wait(remaining, timeout=min(1.0, deadline - loop.time()))
            progress.update(clock())
        for task in remaining:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        progress.update(clock(), force=True)

    @staticmethod
    def _mark_unfinished(records: list[RequestRecord]) -> None:
        for rec in records:
            if rec.sent_s is not None and rec.end_s is None:
                rec.ok, rec.error = False, UNFINISHED
