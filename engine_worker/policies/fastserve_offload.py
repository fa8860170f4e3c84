"""FastServe's proactive KV offload as a handling policy (`fastserve`; FastServe, arXiv 2305.05920).

Paused requests keep their KV (preserve) while the pool has room. When the free blocks fall below
a reserve (room for the running batch to grow into), the LOWEST-priority paused requests are
swapped out to the host buffer ahead of need, lowest first, only as many as restore the reserve,
within this iteration's swap budget: `kv_offload.plan_kv_moves`, fed the preserved paused requests
in priority order. Only its offload part applies here: a paused request whose KV was released is
not a candidate any more (decisions are one-way per pause), so every holder passed is on device
and the plan's upload list is always empty.

Priority: the paused request expected to resume soonest ranks highest. FastServe keeps the KV of
the jobs it will schedule next on device and ranks idle jobs by their estimated next scheduled
time (the paper) or MLFQ level (the code). A request paused at a call cannot run at all before its
call returns, so its next need for its KV is its resume: the predicted remaining call time plays
the role of the estimated next scheduled time. Remaining = predicted total duration - elapsed
(history or oracle estimates); with no prediction (the `elapsed` estimate) the call is expected to
last about as long again as it has so far (InferCept's elapsed rule: the longer a call has run,
the longer it is expected to run), so the longest-running call resumes last. Ties: request id.

Upload: FastServe uploads a job's KV before its turn. Here the resumed request is a new vLLM
request that the connector matches to its swap record when the scheduler admits it
(engine_core/kv_swap/connector.py get_num_new_matched_tokens): the engine runs vLLM's priority scheduling with
the queue scheduler's ranks as priorities (engine.py, engine_core/queue_scheduler.py), so resumed requests are
admitted in rank order as running slots and blocks allow; admission allocates its blocks and
parks it in WAITING_FOR_REMOTE_KVS, and SwapBook copies pending loads oldest-admitted first within
the per-step budget (swap_book.py, transfers.py). So loads start at admission, in priority order,
and complete before the request is scheduled; nothing is uploaded before the call returns (the
request could not use it) nor ahead of admission (no separate upload path).

Approximations: a paused request is taken to hold ceil(context / block_size) blocks of its own
(blocks shared through the prefix cache free less); a request bigger than one iteration's budget
blocks every higher-priority offload behind it until a larger budget comes (strict priority).
"""

from __future__ import annotations

from common.schemas import Strategy
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.handling_types import BatchState, Handling, PausedRequest, waste_figures
from engine_worker.policies.kv_offload import KvHolder, plan_kv_moves


def remaining_s(p: PausedRequest) -> float:
    """Predicted time until the request's call returns (its next need for its KV)."""
    if p.predicted_duration_s is not None:
        return max(0.0, p.predicted_duration_s - p.elapsed_s)
    return p.elapsed_s


def by_priority(paused: list[PausedRequest]) -> list[PausedRequest]:
    """Highest priority (soonest resume) first."""
    return sorted(paused, key=lambda p: (remaining_s(p), p.request_id))


def offload_ahead(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    """The `fastserve` handling policy (handling.POLICIES)."""
    ordered = by_priority(paused)
    moves = plan_kv_moves([KvHolder(p.request_id, p.context_tokens, on_device=True) for p in ordered],
                          free_blocks=max(0, batch.free_blocks), reserve_blocks=max(0, batch.reserve_blocks),
                          block_size=batch.block_size, swap_budget_tokens=max(0, batch.swap_budget_tokens))
    offload = set(moves.offload)
    return [Handling(p.request_id, Strategy.SWAP if p.request_id in offload else Strategy.PRESERVE,
                     *waste_figures(p, batch, cm)) for p in ordered]
