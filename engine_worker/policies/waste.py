"""InferCept's waste equations, in bytes x seconds (InferCept, arXiv 2402.01869).

C = context tokens of the paused request, M = KV bytes per token, T_int = call duration,
C_other = context of the other running requests, C_batch = context of the whole running batch.
"""

from __future__ import annotations

from engine_worker.policies.cost_model import CostModel


def preserve(duration_s: float, context: int, cm: CostModel) -> float:
    """Its KV sits idle for the whole call."""
    return duration_s * context * cm.kv_bytes_per_token


def discard(context: int, others: int, cm: CostModel) -> float:
    """Recomputing C stalls its own KV and every other running request's during the prefill."""
    t = cm.fwd_s(context)
    return t * context * cm.kv_bytes_per_token + t * others * cm.kv_bytes_per_token


def chunked_discard(context: int, others: int, cm: CostModel, cached: int = 0) -> float:
    """Recompute split into chunks of at most S tokens mixed with decode steps.

    Its own KV grows while being recomputed (hence the /2); each chunk stalls the others only for
    its own forward time. `cached`: tokens whose blocks are still in the prefix cache on resume
    and are not recomputed: our refinement, cheaper than the paper's discard.
    """
    recompute = max(0, context - cached)
    if recompute == 0:
        return 0.0
    n = max(1, -(-recompute // max(1, cm.saturation_tokens)))
    own = cm.fwd_s(recompute) * recompute * cm.kv_bytes_per_token / 2
    return own + n * cm.fwd_s(recompute / n) * others * cm.kv_bytes_per_token


def swap(context: int, batch: int, cm: CostModel) -> float:
    """Out and back in; the batch idles while a non-overlapped copy blocks."""
    return 2 * cm.swap_s(context) * batch * cm.kv_bytes_per_token
