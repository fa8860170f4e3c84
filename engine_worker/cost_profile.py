"""Profiles the cost model on the machine the worker runs on, and caches it.

Measured, not hand-fitted: forward time vs batched tokens (single prefills of n fresh tokens,
linear fit T_fwd(n) = a*n + c and its error), swap time vs tokens (copying that many tokens of
KV into a separate host buffer and back), KV bytes per token from the model config. Cached per
model, dtype and CPU/GPU model (profile_store.py); `--force` re-profiles.

    python -m engine_worker.cost_profile --model ~/.cache/augserve/models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

from engine_worker.policies.cost_model import CostModel
from engine_worker.profile_store import Fit, Profile, cache_path, hardware_name, load, save

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2}
PREFILL_SIZES = (32, 64, 128, 256, 512, 1024, 1536)
SWAP_SIZES = (128, 512, 2048, 8192)


def fit_linear(samples: list[tuple[int, float]]) -> Fit:
    """Least squares on RELATIVE error (weights 1/y^2): small steps matter as much as big ones,
    since the policy compares recompute costs of contexts from tens to thousands of tokens."""
    pts = [(float(x), y) for x, y in samples if y > 0]
    ws = [1.0 / (y * y) for _, y in pts]
    sw = sum(ws)
    mx = sum(w * x for w, (x, _) in zip(ws, pts)) / sw
    my = sum(w * y for w, (_, y) in zip(ws, pts)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, (x, _) in zip(ws, pts))
    slope = sum(w * (x - mx) * (y - my) for w, (x, y) in zip(ws, pts)) / sxx if sxx else 0.0
    slope = max(slope, 1e-12)
    intercept = max(my - slope * mx, 0.0)
    err = max(abs(slope * x + intercept - y) / y for x, y in pts)
    return Fit(slope=slope, intercept=intercept, max_rel_error=err)


def saturation_tokens(fit: Fit) -> int:
    """Tokens per step past which time grows linearly: where the per-token work equals the fixed
    step cost (a*S = c). Below it a step is mostly fixed cost, so adding tokens is nearly free."""
    return max(16, int(fit.intercept / fit.slope))


def kv_bytes_per_token(model_path: str, dtype: str) -> int:
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    heads = cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    return 2 * cfg["num_hidden_layers"] * heads * head_dim * DTYPE_BYTES[dtype]


async def profile_forward(engine, vocab_size: int, reps: int = 3,
                          sizes: tuple[int, ...] = PREFILL_SIZES) -> list[tuple[int, float]]:
    """Median time of a single prefill of n fresh tokens (+1 sampled token), per n."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    rng = random.Random(0)
    params = SamplingParams(max_tokens=1, temperature=0)
    samples = []
    for n in sizes:
        times = []
        for rep in range(reps + 1):
            # Fresh random tokens: no prefix-cache hit may shorten the prefill.
            prompt = TokensPrompt(prompt_token_ids=[rng.randrange(3, vocab_size) for _ in range(n)])
            start = time.perf_counter()
            async for _ in engine.generate(prompt, params, request_id=f"profile-{n}-{rep}-{rng.random()}"):
                pass
            if rep:  # the first run of each size warms up
                times.append(time.perf_counter() - start)
        samples.append((n, statistics.median(times)))
        print(f"  prefill {n:5d} tokens: {samples[-1][1] * 1e3:8.1f} ms", flush=True)
    return samples


def profile_swap(bytes_per_token: int, reps: int = 5) -> list[tuple[int, float]]:
    """Median time to copy n tokens of KV out to a host buffer and back, halved (one direction)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    samples = []
    for n in SWAP_SIZES:
        src = torch.empty(n * bytes_per_token, dtype=torch.uint8, device=device)
        host = torch.empty_like(src, device="cpu", pin_memory=device == "cuda")
        host.copy_(src)  # first touch faults the pages in: not part of a copy's cost
        times = []
        for _ in range(reps):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            host.copy_(src, non_blocking=device == "cuda")
            src.copy_(host, non_blocking=device == "cuda")
            if device == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) / 2)
        samples.append((n, statistics.median(times)))
    return samples


def build_profile(forward: list[tuple[int, float]], swap: list[tuple[int, float]], kv_bytes: int) -> Profile:
    fwd, sw = fit_linear(forward), fit_linear(swap)
    cm = CostModel(fwd_s_per_token=fwd.slope, fwd_base_s=fwd.intercept, swap_s_per_token=sw.slope,
                   kv_bytes_per_token=kv_bytes, saturation_tokens=saturation_tokens(fwd))
    return Profile(cm, fwd, sw, forward, swap, hardware_name())


def describe(p: Profile) -> str:
    cm = p.cost_model
    return (
        f"hardware: {p.hardware}\n"
        f"T_fwd(n) = {cm.fwd_s_per_token * 1e3:.4f} ms/token * n + {cm.fwd_base_s * 1e3:.2f} ms"
        f"  (max error {p.forward_fit.max_rel_error:.1%} over {len(p.forward_samples)} sizes)\n"
        f"T_swap(n) = {cm.swap_s_per_token * 1e6:.3f} us/token * n"
        f"  (max error {p.swap_fit.max_rel_error:.1%})\n"
        f"KV bytes/token M = {cm.kv_bytes_per_token}; saturation S = {cm.saturation_tokens} tokens;"
        f" swap budget at S = {cm.swap_budget_tokens(cm.saturation_tokens)} tokens/step"
    )


QUICK_SIZES = (16, 64, 256)


async def profile_engine(engine, model_path: str, dtype: str, vocab_size: int, quick: bool = False) -> Profile:
    """`quick`: three sizes, one timed run each: what a worker does at start-up with no cache."""
    forward = await profile_forward(engine, vocab_size, reps=1 if quick else 3,
                                    sizes=QUICK_SIZES if quick else PREFILL_SIZES)
    kv = kv_bytes_per_token(model_path, dtype)
    return build_profile(forward, profile_swap(kv), kv)


async def _cli(model: str, dtype: str, force: bool) -> int:
    # Imported on call: engine.py imports vLLM, which reading a cached profile does not need.
    from engine_worker.engine import build_engine
    from engine_worker.settings import WorkerSettings

    settings = WorkerSettings(model_path=model, dtype=dtype, max_num_seqs=4)
    dtype = settings.engine_dtype
    path = cache_path(model, dtype)
    cached = None if force else load(path)
    if cached is not None:
        print(f"cached profile {path}:\n{describe(cached)}")
        return 0
    engine = build_engine(settings)
    try:
        vocab = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
        profile = await profile_engine(engine, model, dtype, vocab)
    finally:
        engine.shutdown()
    save(profile, path)
    print(f"profiled, saved to {path}:\n{describe(profile)}")
    return 0


async def load_or_profile(engine, model_path: str, dtype: str) -> Profile:
    """The cached profile of this model/dtype/hardware, else a quick one (cached for next time)."""
    path = cache_path(model_path, dtype)
    profile = load(path)
    if profile is None:
        vocab = json.loads((Path(model_path) / "config.json").read_text())["vocab_size"]
        profile = await profile_engine(engine, model_path, dtype, vocab, quick=True)
        save(profile, path)
    return profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile the intercept cost model on this machine.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--dtype", default="auto", choices=sorted(DTYPE_BYTES))
    parser.add_argument("--force", action="store_true", help="re-profile even if cached")
    args = parser.parse_args(argv)
    return asyncio.run(_cli(args.model, args.dtype, args.force))


if __name__ == "__main__":
    sys.exit(main())
