"""Deployments: the cost model of a hardware x model pair, plus the engine's limits.

Each constant names its source. InferCept's (arXiv 2402.01869) come from the paper as
shared/reference/papers.md records them; the others are DERIVED from public spec-sheet figures
(peak bf16 FLOP/s, HBM bandwidth, PCIe bandwidth, model shapes), not measured: step time
T_fwd(x) = a*x + c with c = weight bytes / HBM bandwidth x 1.35 (kernel launch and scheduling
overhead: the ratio of InferCept's measured c = 10 ms to GPT-J's 12.1 GB / 2.0 TB/s = 6 ms is 1.65;
1.35 assumes newer kernels, CUDA graphs) and a = 2 x params / (peak FLOP/s x 0.6 MFU). The CPU
profile is what the engine worker measures here (engine_worker/cost_profile.py), loaded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from engine_worker import profile_store
from engine_worker.policies.cost_model import GPTJ_A100, CostModel


@dataclass(frozen=True)
class Deployment:
    name: str
    cost_model: CostModel
    kv_pool_tokens: int
    """Device KV pool, in tokens (a whole number of blocks is used)."""
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    """Token budget of one iteration (InferCept: S, the saturation point)."""
    chunked_prefill: bool = True
    """False: a prompt is prefilled whole, in an iteration of prefills only, before decodes (vLLM
    v0, the InferCept paper's baseline engine)."""
    prefix_caching: bool = True
    host_swap_tokens: int = 0
    """Host buffer for swapped-out KV, in tokens; 0 disables swapping."""
    preemption: Literal["recompute", "swap"] = "recompute"
    """What a running request handed over by a preemptive queue order (FastServe's MLFQ) loses:
    its KV (recompute, as vLLM V1 preempts), or nothing, its KV copied to the host buffer within
    the per-iteration swap budget and loaded back before it runs again (FastServe offloads a
    preempted job's KV to host memory and uploads it ahead of its turn). A request preempted
    because the pool ran out of blocks always recomputes: the blocks are needed this iteration."""
    call_overhead_s: float = 0.0
    """Dispatch and delivery of an API call beyond its run time (the stack's own latency)."""
    step_overhead_s: float = 0.0
    """Per-iteration time beyond T_fwd (scheduling, sampling, output)."""
    seq_overhead_s: float = 0.0
    """Per-iteration time per request in the batch beyond T_fwd (a decode's attention over its
    context, sampling and detokenizing it): T_fwd is profiled on single prefills, where one
    request carries the whole step."""
    kv_read_s_per_token: float = 0.0
    """Per iteration, per token of context each batched request attends to: reading its K and V
    from device memory, KV bytes / HBM bandwidth (decode attention is memory-bound). T_fwd is
    linear in the tokens an iteration processes (InferCept's profile: a = 0.0463 ms/token is GPT-J's
    12 GFLOP/token at ~84% of an A100's 312 TFLOP/s, c = 10 ms its weight reads; the spec presets:
    FLOPs and weight reads) and leaves it out. The CPU profile's measured per-request overhead
    (seq_overhead_s) stands in for it there."""
    source: str = ""

    @property
    def num_blocks(self) -> int:
        return max(1, self.kv_pool_tokens // self.block_size)


GIB = 1 << 30

# -- A100-80G (InferCept's testbed) -------------------------------------------------------------
GPTJ_KV_BYTES = 2 * 28 * 4096 * 2
"""GPT-J-6B: 28 layers, hidden 4096, fp16 K and V (the model card's config)."""
A100_HBM_BPS = 2.0e12
"""A100-80G's HBM2e bandwidth (spec sheet: 1.94 TB/s PCIe, 2.04 TB/s SXM)."""
A100_KV_GB = 80 * 0.9 - 12.1 - 3
"""vLLM's gpu_memory_utilization 0.9 of 80 GB, less GPT-J's 12.1 GB of fp16 weights and ~3 GB of
activations (our assumption: the paper states no pool size)."""
VICUNA13B = CostModel(
    # Scaled from GPT-J's measured constants by parameter count (13.0B / 6.05B): both terms are
    # weight-bound (c: reading weights; a: FLOPs per token); an estimate, not InferCept's profile.
    fwd_s_per_token=GPTJ_A100.fwd_s_per_token * 13.0 / 6.05, fwd_base_s=GPTJ_A100.fwd_base_s * 13.0 / 6.05,
    # Same PCIe link as GPT-J's ~605 tokens/iteration implies (10.0 GB/s), 40 layers x 5120 x fp16.
    swap_s_per_token=2 * 40 * 5120 * 2 / (GPTJ_A100.kv_bytes_per_token / GPTJ_A100.swap_s_per_token),
    kv_bytes_per_token=2 * 40 * 5120 * 2, saturation_tokens=384)  # S = 384 for 13B too (the paper)

# -- H100-80G SXM / H200 (spec sheets: 989 TFLOP/s dense bf16; HBM3 3.35 TB/s, HBM3e 4.8 TB/s;
# PCIe Gen5 x16 ~50 GB/s achieved per direction with pinned memory) ---------------------------
MFU = 0.6
LAUNCH = 1.35
H100_HBM_BPS = 3.35e12
H200_HBM_BPS = 4.8e12
PCIE5_BPS = 50e9
LLAMA3_8B_KV = 2 * 32 * 8 * 128 * 2
"""Llama-3-8B: 32 layers, 8 KV heads of 128 (GQA), bf16."""
LLAMA3_70B_KV = 2 * 80 * 8 * 128 * 2
"""Llama-3-70B: 80 layers, 8 KV heads of 128, bf16."""


def spec_cost_model(params_b: float, gpus: int, hbm_bps: float, kv_bytes: int, flops: float = 989e12) -> CostModel:
    """T_fwd from spec figures (module docstring); tensor parallel over `gpus`: weights, FLOPs
    and each token's KV split evenly, every GPU with its own PCIe link."""
    base = params_b * 2e9 / gpus / hbm_bps * LAUNCH
    per_token = 2 * params_b * 1e9 / (gpus * flops * MFU)
    return CostModel(fwd_s_per_token=per_token, fwd_base_s=base, swap_s_per_token=kv_bytes / gpus / PCIE5_BPS,
                     kv_bytes_per_token=kv_bytes, saturation_tokens=max(16, int(base / per_token)))


def _pool_tokens(gpus: int, gpu_gb: float, weights_gb: float, kv_bytes: int) -> int:
    return int((gpus * gpu_gb * 0.9 - weights_gb - 2 * gpus) * 1e9 / kv_bytes)


PRESETS: dict[str, Deployment] = {
    "a100-gptj-6b": Deployment(
        "a100-gptj-6b", GPTJ_A100, int(A100_KV_GB * 1e9 / GPTJ_KV_BYTES), block_size=16, max_num_seqs=256,
        max_num_batched_tokens=384, host_swap_tokens=int(64 * GIB / GPTJ_KV_BYTES),
        kv_read_s_per_token=GPTJ_KV_BYTES / A100_HBM_BPS,
        source="InferCept (arXiv 2402.01869): a = 0.0463 ms/token, c = 10 ms, S = 384, ~605 swap tokens/iteration; "
               "pool from 80 GB x 0.9 less weights (assumed); 64 GiB host buffer (assumed)"),
    "a100-vicuna-13b": Deployment(
        "a100-vicuna-13b", VICUNA13B, _pool_tokens(1, 80, 26.0, VICUNA13B.kv_bytes_per_token), block_size=16,
        max_num_seqs=256, max_num_batched_tokens=384, host_swap_tokens=int(64 * GIB / VICUNA13B.kv_bytes_per_token),
        kv_read_s_per_token=VICUNA13B.kv_bytes_per_token / A100_HBM_BPS,
        source="InferCept's S = 384; T_fwd scaled from GPT-J's by parameters; PCIe as GPT-J's budget implies"),
    "h100-llama3-8b": Deployment(
        "h100-llama3-8b", spec_cost_model(8.03, 1, H100_HBM_BPS, LLAMA3_8B_KV),
        _pool_tokens(1, 80, 16.1, LLAMA3_8B_KV),
        block_size=16, max_num_seqs=256, max_num_batched_tokens=8192, host_swap_tokens=int(128 * GIB / LLAMA3_8B_KV),
        kv_read_s_per_token=LLAMA3_8B_KV / H100_HBM_BPS,
        source="derived from H100 SXM spec (989 TFLOP/s bf16, 3.35 TB/s HBM3, PCIe Gen5) and Llama-3-8B's shape"),
    "h200-llama3-8b": Deployment(
        "h200-llama3-8b", spec_cost_model(8.03, 1, H200_HBM_BPS, LLAMA3_8B_KV),
        _pool_tokens(1, 141, 16.1, LLAMA3_8B_KV),
        block_size=16, max_num_seqs=256, max_num_batched_tokens=8192, host_swap_tokens=int(128 * GIB / LLAMA3_8B_KV),
        kv_read_s_per_token=LLAMA3_8B_KV / H200_HBM_BPS,
        source="derived from H200 spec (989 TFLOP/s bf16, 4.8 TB/s HBM3e, 141 GB) and Llama-3-8B's shape"),
    "h100x4-llama3-70b": Deployment(
        "h100x4-llama3-70b", spec_cost_model(70.6, 4, H100_HBM_BPS, LLAMA3_70B_KV),
        _pool_tokens(4, 80, 141.2, LLAMA3_70B_KV),
        block_size=16, max_num_seqs=256, max_num_batched_tokens=8192, host_swap_tokens=int(256 * GIB / LLAMA3_70B_KV),
        kv_read_s_per_token=LLAMA3_70B_KV / 4 / H100_HBM_BPS,
        source="derived: 4x H100 SXM, tensor parallel 4, Llama-3-70B bf16 (141 GB of weights)"),
    "h200x2-llama3-70b": Deployment(
        "h200x2-llama3-70b", spec_cost_model(70.6, 2, H200_HBM_BPS, LLAMA3_70B_KV),
        _pool_tokens(2, 141, 141.2, LLAMA3_70B_KV),
        block_size=16, max_num_seqs=256, max_num_batched_tokens=8192, host_swap_tokens=int(256 * GIB / LLAMA3_70B_KV),
        kv_read_s_per_token=LLAMA3_70B_KV / 2 / H200_HBM_BPS,
        source="derived: 2x H200, tensor parallel 2, Llama-3-70B bf16"),
}

BENCH_POOL_TOKENS = 8192
"""The full-scale bench's KV pool (bench/config.py: 64 usable blocks of 128)."""
STACK_CALL_OVERHEAD_S = 0.011
"""Median pause beyond the call's run time on this stack, bench-results/full2 (qa: 0.011 s pause
for a 0.0001 s search)."""


def cpu_profile(profile_path: Path | str | None = None, model_path: Path | str | None = None,
                dtype: str = "float32") -> Deployment:
    """This machine as the full-scale bench runs it: the worker's measured profile (the cached
    file for the model, dtype and CPU, or `profile_path`), 64 blocks of 128, 2048 tokens per
    step, 64 running slots, a 1 GiB host buffer (the worker's default)."""
    if profile_path is None:
        from stack.models import default_model_dir  # the worker's default model folder

        profile_path = profile_store.cache_path(str(model_path or default_model_dir()), dtype)
    profile = profile_store.load(Path(profile_path))
    if profile is None:
        raise FileNotFoundError(f"no cost profile at {profile_path}: "
                                "run python -m engine_worker.cost_profile --model ...")
    cm = profile.cost_model
    return Deployment("cpu-profile", cm, BENCH_POOL_TOKENS, block_size=128, max_num_seqs=64,
                      max_num_batched_tokens=2048, host_swap_tokens=GIB // cm.kv_bytes_per_token,
                      call_overhead_s=STACK_CALL_OVERHEAD_S,
                      source=f"measured by engine_worker/cost_profile.py on {profile.hardware} ({profile_path})")


def deployment(name: str, **overrides) -> Deployment:
    """A preset (or 'cpu' for this machine's profile) with fields replaced; None values ignored."""
    base = cpu_profile() if name == "cpu" else PRESETS.get(name)
    if base is None:
        raise ValueError(f"unknown hardware {name!r}; known: cpu, {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given)
