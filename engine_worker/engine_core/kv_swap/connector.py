"""HostSwapConnector: vLLM's KV connector API carrying paused requests' KV out of the pool and back.

vLLM loads this class by path (engine_worker/engine.py) in the engine-core process, once per role:
- scheduler role (SwapBook): when a request marked for swap is aborted, its blocks stay allocated
  and are copied out chunk by chunk; once the copy completes vLLM frees them. A resumed request
  (a new vLLM request over the whole context, carrying `augserve_swap_key` in its
  kv_transfer_params) is matched against the record; vLLM allocates its blocks, holds it in
  WAITING_FOR_REMOTE_KVS while the record is copied back, then prefills only what follows.
- worker role (HostStore): runs each step's copies where the KV tensors live and reports which
  transfers completed.
Per step both directions share the swap budget: the tokens copyable while the step's forward pass
runs, from the measured cost model (engine_worker/cost_profile.py) when its profile exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from pydantic import BaseModel
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
)
from vllm.logger import init_logger
from vllm.v1.request import RequestStatus

from common.names import KV_SWAP_STATS_TTL_S, kv_swap_stats
from engine_worker import profile_store
from engine_worker.engine_core.kv_swap import marks
from engine_worker.engine_core.kv_swap.host_store import CompletedTransfer, HostStore
from engine_worker.engine_core.kv_swap.swap_book import SwapBook
from engine_worker.engine_core.kv_swap.transfers import BlockCopy
from engine_worker.engine_params import SWAP_ID, SWAP_KEY
from engine_worker.policies.cost_model import CostModel

if TYPE_CHECKING:
    from vllm.v1.request import Request

log = init_logger(f"vllm.{__name__}")  # under "vllm": the only logger the engine-core process configures

class SwapConnectorConfig(BaseModel):
    """kv_connector_extra_config, set by engine_worker/engine.py from the worker's settings."""

    redis_url: str
    worker_id: str
    capacity_bytes: int
    """Host buffer size: swap-outs that would exceed it become discards."""
    profile_path: str = ""
    """The cost profile giving the per-step budget; until it exists the budget is unbounded."""
    ttl_s: float = 900.0


@dataclass
class SwapStepMeta(KVConnectorMetadata):
    copies: list[BlockCopy] = field(default_factory=list)
    record_sizes: dict[str, int] = field(default_factory=dict)
    drops: list[str] = field(default_factory=list)


class HostSwapConnector(KVConnectorBase_V1):
    def __init__(self, vllm_config, role: KVConnectorRole, kv_cache_config):
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        self._config = SwapConnectorConfig(**self._kv_transfer_config.kv_connector_extra_config)
        self._redis = redis.Redis.from_url(self._config.redis_url, socket_timeout=2)
        self._num_blocks = kv_cache_config.num_blocks
        block_bytes = sum(t.size for t in kv_cache_config.kv_cache_tensors) // max(1, self._num_blocks)
        self._book = SwapBook(vllm_config.cache_config.block_size, block_bytes, self._config.capacity_bytes,
                              self._config.ttl_s)
        self._cost_model: CostModel | None = None
        self._steps = 0
        self._store: HostStore | None = None

    # ==== scheduler side =======================================================================
    def request_finished(self, request: "Request", block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        swap_id = (request.kv_transfer_params or {}).get(SWAP_ID)
        if request.status != RequestStatus.FINISHED_ABORTED or not swap_id:
            return False, None
        if not marks.take(self._redis, self._config.worker_id, swap_id):
            return False, None  # a discard (or a client abort): the blocks go back to the pool now
        saving = self._book.start_save(swap_id, request.request_id, list(request.all_token_ids),
                                       request.num_computed_tokens, list(block_ids))
        return saving, None

    def get_num_new_matched_tokens(self, request: "Request", num_computed_tokens: int) -> tuple[int | None, bool]:
        key = (request.kv_transfer_params or {}).get(SWAP_KEY)
        if not key:
            return 0, False
        external = self._book.match(request.request_id, key, list(request.prompt_token_ids or []), num_computed_tokens)
        if external is None:
            return None, False
        return external, external > 0

    def update_state_after_alloc(self, request: "Request", blocks, num_external_tokens: int) -> None:
        if num_external_tokens > 0:
            self._book.start_load(request.request_id, blocks.get_block_ids()[0], num_external_tokens)

    def build_connector_meta(self, scheduler_output) -> KVConnectorMetadata:
        self._steps += 1
        budget = self._budget_tokens(scheduler_output.total_num_scheduled_tokens)
        usage = self._kv_cache_manager.usage if self._kv_cache_manager is not None else 0.5
        step = self._book.plan(budget, usage)
        sizes = {c.key: self._book.records[c.key].num_blocks for c in step.copies if c.key in self._book.records}
        return SwapStepMeta(copies=step.copies, record_sizes=sizes, drops=self._book.expired())

    def update_connector_output(self, connector_output) -> None:
        self._book.finished(set(connector_output.finished_sending or ()), set(connector_output.finished_recving or ()))

    def has_pending_push_work(self) -> bool:
        return self._book.busy()

    def _budget_tokens(self, batch_tokens: int) -> int:
        """T_swap(n) = T_fwd(batch): what one step's copies may move without outlasting it."""
        if self._cost_model is None and self._steps % 200 == 1 and self._config.profile_path:
            profile = profile_store.load(Path(self._config.profile_path))
            self._cost_model = profile.cost_model if profile is not None else None
        if self._cost_model is None:
            return 1 << 30
        return self._cost_model.swap_budget_tokens(batch_tokens)

    # ==== worker side ==========================================================================
    def register_kv_caches(self, kv_caches) -> None:
        self._store = HostStore(kv_caches, self._num_blocks)

    def start_load_kv(self, forward_context, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, SwapStepMeta) and self._store is not None
        for key in meta.drops:
            self._store.drop(key)
        self._store.run(meta.copies, meta.record_sizes)

    def wait_for_layer_load(self, layer_name: str) -> None:
        return  # loads target requests waiting for them, never a layer of this step's batch

    def save_kv_layer(self, layer_name, kv_layer, attn_metadata, **kwargs: Any) -> None:
        return  # nothing is saved as it is computed: only aborted paused requests are swapped

    def wait_for_save(self) -> None:
        return

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None, set[str] | None]:
        if self._store is None:
            return None, None
        sent: set[str] = set()
        received: set[str] = set()
        for done in self._store.completed():
            (sent if done.direction == "out" else received).add(done.request_id)
            self._report(done)
        return sent or None, received or None

    def _report(self, done: CompletedTransfer) -> None:
        """Copy time of one swap direction, for the engine worker's interception record."""
        try:
            self._redis.hset(kv_swap_stats(done.key), f"{done.direction}_s", done.seconds)
            self._redis.expire(kv_swap_stats(done.key), KV_SWAP_STATS_TTL_S)
        except redis.RedisError:
            log.warning("could not report the swap-%s time of %s", done.direction, done.key)
