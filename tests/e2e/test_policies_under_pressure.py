"""Under memory pressure every handling policy yields the same greedy tokens.

The KV pool holds 10 blocks (1,280 tokens) and three requests of ~420-token contexts pause at a
3-second call at the same time: preserve alone cannot hold all three (the third waits for blocks),
discard and swap free the pool, infercept chooses, fastserve swaps out the latest to resume once
the free blocks fall below its reserve (its default for this pool: 4 of the 9 usable blocks). The
KV moves must change nothing but cost.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine_worker.cost_profile import kv_bytes_per_token
from engine_worker.settings import WorkerSettings
from stack.models import build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig

MODEL = "SmolLM2-135M-Instruct"
BLOCK = 128
POOL_BLOCKS = 10
PROMPTS = [f"Request {i}: " + "the quick brown fox jumps over the lazy dog. " * 40 for i in range(3)]
PLAN = {"segments": [
    {"generate_tokens": 8, "api": "tts", "duration_s": 3.0, "return_tokens": 6},
    {"generate_tokens": 8},
]}


WORKERS: dict[str, dict] = {}
"""Each policy's worker status (its heartbeat), read while its stack runs."""


def _pool_bytes() -> int:
    dtype = WorkerSettings(model_path=str(build_tiny())).engine_dtype
    return POOL_BLOCKS * BLOCK * kv_bytes_per_token(str(build_tiny()), dtype)


async def _run_three(url: str) -> list[dict]:
    async with httpx.AsyncClient(timeout=180) as client:
        responses = await asyncio.gather(*(client.post(f"{url}/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "plan": PLAN, "return_token_ids": True}) for prompt in PROMPTS))
    for response in responses:
        assert response.status_code == 200, response.text
    return [r.json() for r in responses]


@pytest.fixture(scope="module")
def bodies(tmp_path_factory) -> dict[str, list[dict]]:
    out = {}
    for policy in ("preserve", "improved-discard", "swap", "infercept", "fastserve"):
        cfg = StackConfig(
            model_path=str(build_tiny()), state_dir=tmp_path_factory.mktemp(f"pressure-{policy}"),
            gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
            executor_metrics_port=free_port(), redis_port=free_port(), time_scale=0.02,
            worker_env={"AUGSERVE_POLICY": policy, "AUGSERVE_KV_CACHE_BYTES": str(_pool_bytes()),
                        "AUGSERVE_MAX_MODEL_LEN": "1024"},
            gateway_env={"AUGSERVE_MAX_MODEL_LEN": "1024"},
        )
        stack = Stack(cfg).start()
        try:
            out[policy] = asyncio.run(_run_three(cfg.gateway_url))
            WORKERS[policy] = stack.worker_status()
        finally:
            stack.stop()
    return out


def test_the_paused_contexts_do_not_fit_the_pool_together(bodies):
    contexts = [b["interceptions"][0]["context_tokens"] for b in bodies["preserve"]]
    # Each holds ceil(context / 128) blocks while paused: together more than the pool has.
    assert sum(-(-c // BLOCK) for c in contexts) > POOL_BLOCKS - 1, contexts


def test_the_policies_really_moved_kv(bodies):
    strategies = {p: {r["strategy"] for b in bs for r in b["interceptions"]} for p, bs in bodies.items()}
    assert strategies["preserve"] == {"preserve"}
    assert strategies["improved-discard"] == {"discard"}
    assert "swap" in strategies["swap"]
    # Three 4-block contexts in 9 blocks: two paused ones leave 1 free, below the reserve of 4.
    assert "swap" in strategies["fastserve"]


def test_infercept_chooses_by_its_waste_rule(bodies):
    """InferCept's rule (engine_worker/policies/infercept.py): swap while the swap budget lasts;
    any other paused request is discarded exactly when its discard waste is below its preserve
    waste. The records carry the figures of the policy's last decision for the call."""
    records = [r for b in bodies["infercept"] for r in b["interceptions"]]
    assert len(records) == 3
    for r in records:
        if r["strategy"] != "swap":
            assert r["strategy"] == ("discard" if r["waste_discard"] < r["waste_preserve"] else "preserve"), r
