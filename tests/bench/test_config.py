"""Profiles and KV pool sizing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.config import DEFAULT_SYSTEM, PROFILES, kv_bytes_per_token, profile, resolve_dtype, size_pool
from stack.processes import REPO_ROOT

SMOLLM2_135M = {"num_hidden_layers": 30, "num_key_value_heads": 3, "num_attention_heads": 9, "hidden_size": 576}


@pytest.mark.parametrize(("dtype", "expected"), [(None, 23_040), ("bfloat16", 23_040), ("float32", 46_080)])
def test_kv_bytes_per_token_from_the_model_config(tmp_path, dtype, expected):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2_135M))
    assert kv_bytes_per_token(tmp_path, dtype) == expected


@pytest.mark.parametrize(("overrides", "pool_tokens", "max_model_len"), [
    ({"kv_cache_mb": 64.0, "context_cap": 2048}, 2688, 2176),  # vLLM itself says 2688 for 64 MB
    ({}, 768, 384),  # the profiles' own pool
    ({"kv_cache_tokens": 768, "context_cap": 256}, 768, 384),  # tokens replace the profile's MB
    ({"kv_cache_tokens": 1000, "context_cap": 512}, 1024, 640),
])
def test_pool_sizing(overrides, pool_tokens, max_model_len):
    sizing = size_pool(profile("scaled", **overrides), 23_040)
    assert (sizing.pool_tokens, sizing.max_model_len) == (pool_tokens, max_model_len)
    assert sizing.kv_cache_bytes // 23_040 >= pool_tokens


def test_a_pool_too_small_for_the_context_cap_is_refused():
    with pytest.raises(ValueError, match="enlarge the pool or lower --context-cap"):
        size_pool(profile("scaled", kv_cache_mb=16.0, context_cap=2048), 23_040)


def test_profiles_and_overrides():
    quick = profile("quick")
    assert quick.profile == "quick" and quick.policies == ("stock-vllm", DEFAULT_SYSTEM) and len(quick.rates) == 1
    assert profile("quick", window_s=5.0, seed=None).window_s == 5.0  # None keeps the profile's value
    scaled = PROFILES["scaled"]
    assert scaled.policies == ("stock-vllm", "vllm", "improved-discard", "preserve", "swap", "infercept")
    assert len(scaled.rates) >= 3 and scaled.overhead_window_s > 0
    assert set(scaled.overhead_systems) == {"infercept", "stock-vllm"}
    full = PROFILES["full"]  # the headline: the trace's real token counts, the paper's context cap
    assert (full.token_scale, full.context_cap) == (1.0, 2048) and {"stock-vllm", DEFAULT_SYSTEM} <= set(full.policies)
    assert DEFAULT_SYSTEM == "infercept-on-demand+lamps:starvation_threshold=1000"  # the worker's defaults, named
    sizing = size_pool(full, 46_080)  # SmolLM2-135M in float32: the pool holds ~4 full contexts
    assert sizing.pool_tokens == 8192 and 3 <= sizing.pool_tokens // sizing.max_model_len <= 4
    assert all(cfg.repeats >= 2 for cfg in PROFILES.values())  # every rate at least twice
    assert resolve_dtype("float16") == "float16" and resolve_dtype("auto") in (None, "float32")


def test_every_profile_system_is_a_worker_policy_and_scheduler_or_stock_vllm():
    # A typo in a profile would otherwise surface only when the worker refuses it mid-benchmark.
    from bench.system_names import split_system
    from bench.tool_loop import STOCK_SYSTEM
    from engine_worker.settings import WorkerSettings

    policies = set(WorkerSettings.model_fields["policy"].annotation)
    schedulers = set(WorkerSettings.model_fields["scheduler"].annotation)
    assert "fastserve+fastserve" in PROFILES["schedulers"].policies
    for cfg in PROFILES.values():
        for system in cfg.policies:
            if system != STOCK_SYSTEM:
                policy, scheduler, _options = split_system(system)
                assert policy in policies and scheduler in schedulers, system


def test_realtime_scheduling_is_entered_and_inherited_or_refused_clearly():
    """--realtime: the bench process enters SCHED_RR and a child it starts inherits it; without the
    privilege the bench stops with a clear reason (run in a child, so pytest keeps its policy)."""
    code = ("import subprocess, sys\n"
            "from bench.realtime import current_scheduling, enter_realtime\n"
            "try:\n    print(enter_realtime())\nexcept ValueError as exc:\n    print('refused:', exc); sys.exit(0)\n"
            "print(subprocess.run([sys.executable, '-c', 'from bench.realtime import current_scheduling; "
            "print(current_scheduling())'], capture_output=True, text=True, check=True).stdout.strip())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout.splitlines()
    if os.geteuid() == 0:
        assert out == ["SCHED_RR priority 10", "SCHED_RR priority 10"]
    else:
        assert out[0].startswith("refused: --realtime needs root or CAP_SYS_NICE")
