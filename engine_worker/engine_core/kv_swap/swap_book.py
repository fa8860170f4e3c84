"""Scheduler side of the swap path: which records exist, what is in flight, what runs next step.

Lives in the engine-core process beside vLLM's scheduler. A record is the KV of one aborted
(paused) request: its token ids (a resumed request loads it only if its prompt starts with
them), its size, and its state: `saving` while blocks are copied out (the pool blocks stay
allocated until then), `saved` once it lives only in the host buffer, `loading` while it is
copied into the blocks of the request that resumed it. Records a resume never claims expire.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from vllm.logger import init_logger

from engine_worker.engine_core.kv_swap.transfers import PendingTransfer, StepPlan, plan_step

log = init_logger(f"vllm.{__name__}")  # under "vllm": the only logger the engine-core process configures


@dataclass
class SwapRecord:
    key: str
    token_ids: tuple[int, ...]
    num_blocks: int
    nbytes: int
    created: float
    state: Literal["saving", "saved", "loading"] = "saving"


@dataclass(frozen=True)
class LoadPlan:
    key: str
    local_tokens: int
    external_tokens: int


class SwapBook:
    def __init__(self, block_size: int, block_bytes: int, capacity_bytes: int, ttl_s: float = 900.0,
                 clock=time.monotonic, save_timeout_s: float = 60.0):
        self.block_size = block_size
        self.block_bytes = block_bytes
        self.capacity_bytes = capacity_bytes
        self.ttl_s = ttl_s
        self.save_timeout_s = save_timeout_s
        """A resume waits at most this long for its record's copy-out, then recomputes (never hangs)."""
        self._clock = clock
        self.records: dict[str, SwapRecord] = {}
        self.outgoing: list[PendingTransfer] = []
        self.incoming: list[PendingTransfer] = []
        self._saving: dict[str, str] = {}
        """Aborted request id -> record key, until its copy-out completes."""
        self._loads: dict[str, LoadPlan] = {}
        """Resuming request id -> what it loads, between the match and the block allocation."""
        self._loading: dict[str, str] = {}
        """Resuming request id -> record key, until its load completes."""
        self._unreported: set[str] = set()
        """Request ids whose last chunk was planned but whose completion the worker has not reported."""

    def reserved_bytes(self) -> int:
        return sum(r.nbytes for r in self.records.values())

    # -- swap-out -------------------------------------------------------------------------------
    def start_save(self, key: str, request_id: str, token_ids: list[int], num_tokens: int,
                   block_ids: list[int]) -> bool:
        """Takes the first num_tokens of an aborted request's blocks to the host, as record `key`.
        False: no room (or nothing to save), so its blocks go straight back to the pool: a discard."""
        num_blocks = -(-num_tokens // self.block_size)
        nbytes = num_blocks * self.block_bytes
        if num_tokens <= 0 or num_blocks > len(block_ids):
            return False
        if self.reserved_bytes() + nbytes > self.capacity_bytes:
            log.warning("host swap buffer full (%d of %d bytes): %s is discarded instead",
                        self.reserved_bytes(), self.capacity_bytes, request_id)
            return False
        self.records[key] = SwapRecord(key, tuple(token_ids[:num_tokens]), num_blocks, nbytes, created=self._clock())
        self._saving[request_id] = key
        self.outgoing.append(PendingTransfer(key, request_id, "out", list(block_ids[:num_blocks])))
        return True

    # -- swap-in --------------------------------------------------------------------------------
    def match(self, request_id: str, key: str | None, prompt: list[int], local_tokens: int) -> int | None:
        """Tokens the resuming request can load beyond its local prefix-cache hit; None: its
        record is still being saved, ask again next step."""
        record = self.records.get(key) if key else None
        if record is None or record.state == "loading":
            return 0
        if record.state == "saving":
            if self._clock() - record.created > self.save_timeout_s:
                log.warning("%s: swap-out of %s never completed, recomputing instead", request_id, key)
                return 0
            return None
        n = len(record.token_ids)
        if tuple(prompt[:n]) != record.token_ids:
            log.warning("%s does not continue swapped context %s: recomputing it", request_id, key)
            self.records.pop(key)  # type: ignore[arg-type]  # a record was found under it
            return 0
        # The last prompt token is always computed (its logits sample the next token).
        external = min(n, len(prompt) - 1) - local_tokens
        if external <= 0:  # the prefix cache still holds all of it
            self.records.pop(key)  # type: ignore[arg-type]  # as above
            return 0
        self._loads[request_id] = LoadPlan(key, local_tokens, external)  # type: ignore[arg-type]  # as above
        return external

    def start_load(self, request_id: str, block_ids: list[int], external_tokens: int) -> None:
        plan = self._loads.pop(request_id, None)
        if plan is None or external_tokens <= 0:
            return
        first = plan.local_tokens // self.block_size
        end = -(-(plan.local_tokens + external_tokens) // self.block_size)
        self.records[plan.key].state = "loading"
        self._loading[request_id] = plan.key
        self.incoming.append(PendingTransfer(plan.key, request_id, "in", list(block_ids[first:end]), first_block=first))

    # -- each step ------------------------------------------------------------------------------
    def plan(self, budget_tokens: int, pool_usage: float) -> StepPlan:
        step = plan_step(self.outgoing, self.incoming, budget_tokens, pool_usage, self.block_size)
        for c in step.copies:
            if c.last:
                self._unreported.add(c.request_id)
        self.outgoing = [t for t in self.outgoing if t.remaining]
        self.incoming = [t for t in self.incoming if t.remaining]
        return step

    def expired(self) -> list[str]:
        """Saved records no resume claimed within the TTL (their request failed or was cancelled)."""
        now = self._clock()
        gone = [k for k, r in self.records.items() if r.state == "saved" and now - r.created > self.ttl_s]
        for key in gone:
            self.records.pop(key)
        return gone

    def finished(self, sent: set[str], received: set[str]) -> None:
        for request_id in sent:
            self._unreported.discard(request_id)
            key = self._saving.pop(request_id, None)
            if key in self.records:
                self.records[key].state = "saved"
        for request_id in received:
            self._unreported.discard(request_id)
            key = self._loading.pop(request_id, None)
            if key is not None:
                self.records.pop(key, None)

    def busy(self) -> bool:
        """Copies are pending or unconfirmed: the engine must keep stepping."""
        return bool(self.outgoing or self.incoming or self._unreported)
