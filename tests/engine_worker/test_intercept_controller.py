"""The intercept controller feeds pool-aware policies the pool's state and applies their decisions.

The real controller with its injectable sources (pool usage, engine step counter, clock) set by
the test, as main.py sets them from the engine's stats.
"""

from __future__ import annotations

import pytest

from engine_worker.intercept_controller import SETTLE_STEPS, InterceptController
from engine_worker.policies.cost_model import CostModel
from engine_worker.settings import WorkerSettings

BLOCK = 16
# Copying is cheap beside a forward step: the swap budget per tick is large (~11k tokens at 500).
CM = CostModel(fwd_s_per_token=1e-4, fwd_base_s=1e-2, swap_s_per_token=1e-6, kv_bytes_per_token=1000,
               saturation_tokens=100)


class Engine:
    """What the engine reports, set by the test."""

    def __init__(self, usage: float = 0.0):
        self.usage = usage
        self.steps = 0
        self.now = 0.0


def controller(engine: Engine, policy: str = "fastserve", total: int = 100, reserve: int = 10,
               swap_tokens: int = 1 << 20) -> InterceptController:
    return InterceptController(policy, CM, "elapsed", BLOCK, running_context=lambda: 500,
                               kv_usage=lambda: engine.usage, swap_capacity_tokens=swap_tokens,
                               clock=lambda: engine.now, total_blocks=total, reserve_blocks=reserve,
                               engine_steps=lambda: engine.steps)


def test_free_blocks_come_from_the_reported_usage():
    engine = Engine(usage=0.25)
    assert controller(engine).free_blocks() == 75
    engine.usage = 1.0
    assert controller(engine).free_blocks() == 0


def test_with_room_in_the_pool_paused_requests_stay_preserved():
    engine = Engine(usage=0.5)
    c = controller(engine)
    entry = c.pause("a", "tts", 160, None)
    engine.now = 1.0
    c.tick()
    assert entry.strategy == "preserve" and c.counts() == {"preserve": 1, "discard": 0, "swap": 0}


def test_below_the_reserve_the_longest_running_call_is_swapped_first_and_only_it():
    engine = Engine(usage=0.5)
    c = controller(engine)
    old = c.pause("old", "tts", 160, None)  # 10 blocks
    engine.now = 5.0
    new = c.pause("new", "tts", 160, None)
    engine.now = 5.1
    engine.usage = 0.95  # 5 free of 100, reserve 10: one 10-block offload restores it
    decisions = {d.request_id: d.strategy for d in c.tick()}
    assert decisions == {"old": "swap", "new": "preserve"}
    assert old.released_as == "swap" and old.release.is_set() and not new.release.is_set()


def test_a_release_counts_as_free_until_the_engine_has_stepped_past_it():
    engine = Engine(usage=0.95)
    c = controller(engine)
    first = c.pause("first", "tts", 160, None)  # decided at once: 5 free < 10 reserve
    assert first.released_as == "swap"
    second = c.pause("second", "tts", 160, None)
    # The engine has not stepped since: its usage still counts first's 10 blocks.
    assert c.free_blocks() == 15
    c.tick()
    assert second.strategy == "preserve"
    # Past the settle window a usage that still reads 95% is real: second goes too.
    engine.steps = SETTLE_STEPS + 1
    assert c.free_blocks() == 5
    c.tick()
    assert second.released_as == "swap"


def test_a_swap_that_the_host_buffer_cannot_take_stays_preserved():
    engine = Engine(usage=1.0)
    c = controller(engine, swap_tokens=100)  # the budget is capped by the room: 100 tokens
    entry = c.pause("big", "tts", 160, None)
    assert entry.strategy == "preserve" and c.free_blocks() == 0


def test_other_policies_get_the_same_decisions_as_before():
    engine = Engine(usage=0.99)
    c = controller(engine, policy="preserve")
    assert c.pause("a", "tts", 160, None).strategy == "preserve"
    assert controller(engine, policy="swap").pause("b", "tts", 160, None).strategy == "swap"


@pytest.mark.parametrize("env, pool, expected", [
    ({}, 1000, 64),                                  # max_num_seqs' default: one block per slot
    ({"max_num_seqs": 8}, 1000, 8),
    ({}, 9, 4),                                      # a tiny pool: half of it can be running slots
    ({"offload_reserve_blocks": 2}, 9, 2),           # the setting wins
    ({"offload_reserve_blocks": 0}, 1000, 0),        # 0: never offload (preserve)
])
def test_the_reserve_defaults_to_one_block_per_running_slot(env, pool, expected):
    settings = WorkerSettings(model_path="/nonexistent", **env)
    assert settings.reserve_blocks_for(pool) == expected


def test_the_reserve_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUGSERVE_OFFLOAD_RESERVE_BLOCKS", "12")
    monkeypatch.setenv("AUGSERVE_POLICY", "fastserve")
    settings = WorkerSettings(model_path="/nonexistent")
    assert settings.offload_reserve_blocks == 12 and settings.policy == "fastserve"


def test_the_engine_queue_decides_whether_memory_is_in_demand():
    """infercept-on-demand keeps a paused request while nothing waits, then moves it once an
    arrival waits for admission (the engine's waiting count, as its last step reported it)."""
    engine = Engine(usage=0.3)
    queue = {"running": 2, "waiting": 0}
    c = InterceptController("infercept-on-demand", CM, "elapsed", BLOCK, running_context=lambda: 500,
                            kv_usage=lambda: engine.usage, swap_capacity_tokens=1 << 20, clock=lambda: engine.now,
                            total_blocks=100, engine_steps=lambda: engine.steps,
                            engine_queue=lambda: (queue["running"], queue["waiting"]))
    entry = c.pause("a", "calculator", 160, None)
    engine.now = 0.5
    c.tick()
    assert entry.strategy == "preserve" and not entry.release.is_set()
    queue["waiting"] = 1
    engine.now = 0.6
    c.tick()
    assert entry.strategy == "swap" and entry.release.is_set()
