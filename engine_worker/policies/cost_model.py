"""The measured costs the waste equations need (profiled per model, dtype and hardware)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    fwd_s_per_token: float
    """a in T_fwd(x) = a*x + c: marginal forward time per batched token."""
    fwd_base_s: float
    """c: fixed cost of one forward step."""
    swap_s_per_token: float
    """Copy time per token of KV, one direction (host <-> device pool)."""
    kv_bytes_per_token: int
    """M: KV cache bytes one token holds (all layers, K and V)."""
    saturation_tokens: int
    """S: batched tokens per step beyond which forward time grows linearly (chunk budget)."""

    def fwd_s(self, tokens: float) -> float:
        return self.fwd_s_per_token * tokens + self.fwd_base_s if tokens > 0 else 0.0

    def swap_s(self, tokens: float) -> float:
        return self.swap_s_per_token * tokens

    def swap_budget_tokens(self, batch_tokens: int) -> int:
        """Tokens movable during one forward step: T_swap(N) = T_fwd(batch)."""
        if self.swap_s_per_token <= 0:
            return 1 << 30
        return int(self.fwd_s(batch_tokens) / self.swap_s_per_token)


# InferCept's constants for GPT-J-6B on an A100 (InferCept, arXiv 2402.01869), for the simulator and unit tests:
# not this machine's. a = 0.0463 ms/token, c = 10 ms, S = 384, ~605 swap tokens per iteration.
GPTJ_A100 = CostModel(
    fwd_s_per_token=0.0463e-3, fwd_base_s=10e-3, swap_s_per_token=(0.0463e-3 * 384 + 10e-3) / 605,
    kv_bytes_per_token=2 * 28 * 4096 * 2, saturation_tokens=384,
)
