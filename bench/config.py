"""The benchmark's parameters, its profiles, and sizing the KV pool for a model.

Profiles (every field can be overridden on the command line), measured on 2 shared CPU cores with
the default model (SmolLM2-135M, float32 there):
Every profile starts its systems together, keeps them all up, and drives them one at a time,
interleaved, each rate `repeats` times (bench.runner), on explicitly equal engines
(bench.engine_settings).
- full (the headline, ~100 min): the trace at its real token counts (context cap 2048, as the
  paper) with a KV pool of 8,192 tokens (64 blocks: ~4 full-length contexts, ~8 of the trace's
  mean context), so paused requests compete for it; stock-vllm, our `vllm` policy (discard and
  re-queue on our engine), infercept as the paper writes it and infercept-on-demand, rates swept
  to past stock vLLM's collapse, 120 s of arrivals + 120 s to drain, twice; stand-in call times
  x0.05 (a 28 s human turn becomes 1.4 s).
- quick (CI smoke, < 4 min): stock-vllm and infercept at 0.5 req/s for 20 s (+ at most 10 s to
  drain), twice; token counts x0.1 and context cap 256, so the KV pool shrinks with them to 768
  tokens (6 blocks) and paused requests compete for it.
- scaled (~30 min): the six systems (stock-vllm, vllm, improved-discard, preserve, swap,
  infercept) over a rate sweep on quick's x0.1 workload with a longer window, and the
  zero-interception overhead run (infercept vs stock-vllm).
- schedulers (~12 min): the queue-order schedulers beside infercept and stock-vllm, 0.5 req/s.
- fastserve (~8 min per rate): FCFS against FastServe's MLFQ (admission only, 3 s and 300 ms
  guards) on Pareto output lengths without calls, two running slots.
Sustainable rate: the highest rate whose normalized latency (slo_statistic) stays under slo_s
(bench.sustainable). dtype "auto" runs the model in float32 on a CPU without native bf16 (no
AVX512-BF16/AMX): there bf16 is emulated and 4-7x slower (measured with SmolLM2-135M on an AVX2
machine). Elsewhere the engine worker's own default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from bench.engine_settings import EngineSettings, allowed_cpus
from bench.system_names import system_name
from bench.trace import DEFAULT_TRACE
from engine_worker import cost_profile
from engine_worker.settings import WorkerSettings, default_scheduler_options, engine_dtype_for, native_bf16


def _worker_default_system() -> str:
    scheduler = WorkerSettings.model_fields["scheduler"].default
    return system_name(WorkerSettings.model_fields["policy"].default, scheduler, default_scheduler_options(scheduler))


DEFAULT_SYSTEM = _worker_default_system()
"""What a deployment runs: the worker's default policy, scheduler and that scheduler's default
options, as a bench system name (`infercept-on-demand+lamps:starvation_threshold=1000`)."""
DEFAULT_POLICIES = ("stock-vllm", "vllm", "improved-discard", "preserve", "swap", "infercept")
"""Systems: `stock-vllm` (vLLM's own server, client-side tool loop) and our engine-worker policies."""
HEADLINE_SYSTEMS = ("stock-vllm", "vllm:ttft_budget_s=null", "infercept:ttft_budget_s=null", DEFAULT_SYSTEM)
"""The full-scale headline: stock vLLM, today's engines' discard-and-requeue on our engine, and
InferCept's rule as written (plain FCFS by original arrival, no TTFT budget) beside our default
(moves KV only while memory is in demand; LAMPS' memory-over-time order)."""
HEADLINE_RATES = (0.15, 0.3, 0.45, 0.6)
"""Measured (README, bfloat16 on AVX512-bf16 cores): stock vLLM meets the SLO at 0.15 req/s and
misses it from 0.3, so its sustainable rate is bracketed; the higher rates find ours'. On a CPU
without native bf16 (float32, about half the speed) stock's knee is near 0.1: `--rates
0.075,0.15,0.225` brackets it there."""
HEADLINE_DRAIN_S = 180.0
"""A request arriving at the window's end may need ~200 s alone (1,000+ tokens at ~150 ms each
plus its calls): with a 90 s drain the 95%-served rule of the sustainable rate measured the drain
rather than the system."""
SCHEDULER_SYSTEMS = ("stock-vllm", "infercept", "infercept+fastserve", "infercept+lamps", "continuum+continuum",
                     "infercept+autellix", "fastserve+fastserve")
"""The queue-order schedulers (POLICY+SCHEDULER) beside infercept (FCFS) and stock vLLM."""
FASTSERVE_SYSTEMS = ("infercept", "infercept+fastserve:preempt=false", "infercept+fastserve",
                     "infercept+fastserve:starvation_s=0.3")
"""FCFS against FastServe's MLFQ for admission only, time-slicing with the released code's 3 s
starvation guard, and with the paper's 300 ms."""
FASTSERVE_MAX_NUM_SEQS = 2
"""Few running slots, so requests queue for them and the order of the queue decides latency."""
BLOCK_TOKENS = 128
"""vLLM's KV block size on CPU."""
MAX_MODEL_LEN = 4096
"""The engine worker's default; the benchmark lowers it to what the pool can hold."""
TEMPLATE_MARGIN = 64
"""Tokens of max_model_len beyond the context cap, in case the client's count is off."""


RATES = (0.3, 0.6, 1.0)
"""The full profile's sweep (req/s)."""
SLO_S = 0.3
"""Normalized latency SLO (s/token). See bench/README.md for the measurements behind it."""
QUICK_OVERHEAD_WINDOW_S = 0.0


@dataclass(frozen=True)
class BenchConfig:
    profile: str
    policies: tuple[str, ...] = DEFAULT_POLICIES
    """The systems, in run order (named policies for our stack's, since each is one policy)."""
    rates: tuple[float, ...] = RATES
    window_s: float = 40.0
    drain_s: float = 30.0
    """How long after the window unfinished requests may still complete before they are cut."""
    seed: int = 0
    trace: Path = DEFAULT_TRACE
    types: tuple[str, ...] | None = None
    """Request types to sample (None: the whole mixture)."""
    time_scale: float = 0.05
    token_scale: float = 0.1
    context_cap: int = 256
    kv_cache_mb: float | None = None
    """The engine's KV pool; None: kv_cache_tokens tokens of the served model."""
    kv_cache_tokens: int = 768
    model: str = "default"
    """default (SmolLM2-135M-Instruct), tiny (random weights, tests), or a model folder."""
    dtype: str = "auto"
    """The engine's dtype: auto (see the module docstring), or bfloat16, float16, float32."""
    mode: Literal["open", "closed"] = "open"
    concurrency: int = 8
    """Closed loop: clients, each sending its next request when the last one ends."""
    stream: bool = True
    """Stream responses (SSE) to measure time to first token."""
    executor_concurrency: int = 4
    out_dir: Path = Path("bench-results")
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra AUGSERVE_* settings for the engine worker."""
    slo_s: float = SLO_S
    """Normalized latency (s/token) a sustained rate must stay under."""
    slo_statistic: Literal["mean", "p90"] = "mean"
    overhead_systems: tuple[str, ...] = ("infercept", "stock-vllm")
    """Systems that also run the zero-interception workload (raw engine overhead)."""
    overhead_window_s: float = 30.0
    """Closed-loop window of the zero-interception run; 0 skips it."""
    overhead_concurrency: int = 8
    output_lengths: Literal["trace", "pareto"] = "trace"
    """trace: the trace's segments and calls; pareto: no calls and heavy-tailed lengths
    (workload.heavy_tailed_outputs), FastServe's setting."""
    pareto_alpha: float = 1.2
    pareto_min_tokens: int = 8
    compare: str | None = None
    """The system compared with stock vLLM and our `vllm` policy (None: the worker's default
    policy if it runs, else the first of ours)."""
    repeats: int = 2
    """Runs of each rate per system, interleaved: every rate once for every system (in an order
    rotated per rate), then again with the next repeat's seed."""
    max_num_batched_tokens: int = 2048
    """The engine step's token budget, for every system (vLLM's default where this machine's
    defaults are not a control: bench.engine_settings)."""
    enable_chunked_prefill: bool = True
    async_scheduling: bool = False
    cpu_cores: str | None = None
    """Cores the engines' threads are bound to (VLLM_CPU_OMP_THREADS_BIND); None: every core this
    process may use."""
    realtime: bool = False
    """Run the bench and every system it starts under SCHED_RR (bench.realtime.enter_realtime): on a
    machine other jobs share, their processes then run only in the engines' idle time instead of
    stalling the engines' OpenMP threads (a nice level does not prevent that). Needs root or
    CAP_SYS_NICE; every system gets it alike."""
    engine_core_below: bool = False
    """Under `realtime`, each system's vLLM engine core (and its model runner) one priority below
    the processes that serve it (bench.realtime); off by default: measured, it lowered what both
    systems served at the headline's rates (bench/README.md "Run order")."""
    rr_timeslice_ms: int | None = None
    """Under `realtime`, the kernel's round-robin slice for the run (sched_rr_timeslice_ms, put back
    after): how long a woken process of the same priority may wait for a core the engine's threads
    hold. None: the kernel's (100 ms)."""


PROFILES = {
    "full": BenchConfig(profile="full", policies=HEADLINE_SYSTEMS, rates=HEADLINE_RATES, window_s=120.0,
                        drain_s=HEADLINE_DRAIN_S, token_scale=1.0, context_cap=2048, kv_cache_tokens=8192,
                        overhead_window_s=0.0),
    "scaled": BenchConfig(profile="scaled"),
    "schedulers": BenchConfig(profile="schedulers", policies=SCHEDULER_SYSTEMS, rates=(0.5,), overhead_systems=()),
    "fastserve": BenchConfig(profile="fastserve", policies=FASTSERVE_SYSTEMS, rates=(1.0,), overhead_systems=(),
                             output_lengths="pareto", context_cap=512, kv_cache_tokens=1536,
                             worker_env={"AUGSERVE_MAX_NUM_SEQS": str(FASTSERVE_MAX_NUM_SEQS)}),
    "quick": BenchConfig(profile="quick", policies=("stock-vllm", DEFAULT_SYSTEM), rates=(0.5,), window_s=20.0,
                         drain_s=10.0, overhead_window_s=QUICK_OVERHEAD_WINDOW_S),
}


def profile(name: str, **overrides) -> BenchConfig:
    """A profile with the given fields replaced; None means not given. A pool given in tokens
    (kv_cache_tokens) replaces the profile's pool in MB unless kv_cache_mb is given too."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "kv_cache_tokens" in given and "kv_cache_mb" not in given:
        given["kv_cache_mb"] = None
    return replace(PROFILES[name], **given)


def resolve_dtype(dtype: str) -> str | None:
    """The AUGSERVE_DTYPE to run with; None leaves the worker's default."""
    if dtype != "auto":
        return dtype
    return None if native_bf16() else "float32"


def engine_settings(cfg: BenchConfig, sizing: PoolSizing) -> EngineSettings:
    """The engine every system of the run gets (explicit: bench.engine_settings)."""
    max_num_seqs = int(cfg.worker_env.get("AUGSERVE_MAX_NUM_SEQS",
                                          WorkerSettings.model_fields["max_num_seqs"].default))
    return EngineSettings(
        dtype=engine_dtype_for(sizing.dtype or "auto"), kv_cache_bytes=sizing.kv_cache_bytes,
        max_model_len=sizing.max_model_len, max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max(cfg.max_num_batched_tokens, sizing.max_model_len) if not cfg.enable_chunked_prefill
        else cfg.max_num_batched_tokens,
        enable_chunked_prefill=cfg.enable_chunked_prefill, async_scheduling=cfg.async_scheduling,
        block_size=BLOCK_TOKENS, cpu_cores=cfg.cpu_cores or allowed_cpus())


def kv_bytes_per_token(model_dir: Path | str, dtype: str | None = None) -> int:
    """K and V of every layer for one token (the worker's bf16 when dtype is None)."""
    return cost_profile.kv_bytes_per_token(str(model_dir), dtype or "bfloat16")


@dataclass(frozen=True)
class PoolSizing:
    kv_cache_bytes: int
    pool_tokens: int
    max_model_len: int
    bytes_per_token: int
    dtype: str | None = None
    """AUGSERVE_DTYPE for the engine worker (None: its default)."""


def size_pool(cfg: BenchConfig, bytes_per_token: int, dtype: str | None = None) -> PoolSizing:
    """The engine's KV pool and max_model_len for this run.

    vLLM refuses to start when one max_model_len request does not fit the pool, so
    max_model_len = context cap + margin, rounded up to a block, and must fit. A pool given in
    tokens gets one spare block: vLLM's own estimate keeps back part of one.
    """
    max_model_len = min(MAX_MODEL_LEN, math.ceil((cfg.context_cap + TEMPLATE_MARGIN) / BLOCK_TOKENS) * BLOCK_TOKENS)
    if cfg.kv_cache_mb is not None:
        kv_bytes = int(cfg.kv_cache_mb * (1 << 20))
    else:
        kv_bytes = (math.ceil(cfg.kv_cache_tokens / BLOCK_TOKENS) + 1) * BLOCK_TOKENS * bytes_per_token
    kv_bytes = max(kv_bytes, 1 << 20)  # the worker's floor
    pool_tokens = (kv_bytes // bytes_per_token // BLOCK_TOKENS - 1) * BLOCK_TOKENS
    if pool_tokens < max_model_len:
        raise ValueError(
            f"a {kv_bytes / (1 << 20):.1f} MB KV pool holds ~{pool_tokens} tokens of this model "
            f"({bytes_per_token} bytes/token), under max_model_len {max_model_len} (context cap "
            f"{cfg.context_cap} + {TEMPLATE_MARGIN}): enlarge the pool or lower --context-cap")
    return PoolSizing(kv_bytes, pool_tokens, max_model_len, bytes_per_token, dtype)
