"""The simulator's invariants over random workloads, every handling policy and queue order:
no request lost (each finishes with exactly its planned tokens), every block freed once, the
token budget, running slots, swap budget and host buffer respected at every iteration."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from engine_worker.policies.handling import POLICIES
from engine_worker.policies.schedulers import SCHEDULERS
from sim.engine import SimConfig, Simulator
from sim.hardware import PRESETS
from sim.workload import SimRequest, SimSegment

DEPLOYMENT = replace(PRESETS["a100-gptj-6b"], kv_pool_tokens=64 * 16, max_num_seqs=6, max_num_batched_tokens=96,
                     host_swap_tokens=600)
"""A tiny pool and budget, so memory, slots and the budget all bind."""

segments = st.lists(st.tuples(st.integers(1, 40), st.sampled_from(["a", "b"]), st.floats(0.0, 2.0),
                              st.integers(0, 30)), min_size=0, max_size=3)
requests = st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(1, 300), segments, st.integers(1, 40),
                              st.sampled_from([None, "p1", "p2"])), min_size=1, max_size=12)


def build(raw) -> list[SimRequest]:
    out = []
    for i, (arrival, prompt, calls, last, program) in enumerate(raw):
        segs = [SimSegment(g, api, d, ret) for g, api, d, ret in calls] + [SimSegment(last)]
        out.append(SimRequest(f"r{i}", arrival, prompt, tuple(segs), program_id=program))
    return out


def check_step(sim: Simulator) -> None:
    sim.pool.check()
    step = sim.steps[-1]
    assert (step.batched_tokens <= sim.d.max_num_batched_tokens
            or step.batched_requests == 1 and not sim.d.chunked_prefill)
    assert step.slots_held <= sim.d.max_num_seqs
    assert step.swapped_tokens <= step.swap_budget_tokens
    assert 0 <= sim.host_tokens <= sim.d.host_swap_tokens


@settings(max_examples=40)
@given(requests, st.sampled_from(sorted(POLICIES)), st.sampled_from(sorted(SCHEDULERS)), st.booleans(),
       st.sampled_from(["running-context", "step-tokens"]), st.sampled_from(["recompute", "swap"]))
def test_no_request_lost_and_every_block_freed_once(raw, policy, scheduler, chunked, basis, preemption):
    reqs = build(raw)
    deployment = replace(DEPLOYMENT, chunked_prefill=chunked, max_num_batched_tokens=96 if chunked else 200,
                         preemption=preemption)
    sim = Simulator(deployment, reqs, SimConfig(policy=policy, scheduler=scheduler, record_steps=True,
                                                      swap_budget_basis=basis),
                    on_step=check_step)
    states = sim.run()
    assert all(s.phase == "done" and s.generated == s.req.generate_tokens for s in states)
    assert all(len(s.interceptions) == len(s.req.segments) - 1 for s in states)
    assert sim.pool.num_free == sim.pool.num_blocks and sim.pool.allocations == sim.pool.frees
    assert sim.host_tokens == 0
    assert not (sim.waiting or sim.running or sim.paused)


def test_each_strategy_happens_where_the_policy_says():
    """A sanity check that the property test's runs do exercise the three strategies."""
    reqs = [SimRequest(f"r{i}", 0.1 * i, 200, (SimSegment(20, "a", 3.0, 10), SimSegment(20))) for i in range(10)]
    seen = {}
    for policy in ("preserve", "vllm", "swap"):
        sim = Simulator(replace(DEPLOYMENT, kv_pool_tokens=16_000, host_swap_tokens=10_000), reqs,
                        SimConfig(policy=policy))
        states = sim.run()
        seen[policy] = {i.strategy for s in states for i in s.interceptions}
        recomputed = sum(i.recomputed_tokens for s in states for i in s.interceptions)
        assert (recomputed > 0) == (policy == "vllm")
    assert seen == {"preserve": {"preserve"}, "vllm": {"discard"}, "swap": {"swap"}}


def test_swap_preemption_keeps_a_time_sliced_request_s_kv():
    """Deployment.preemption = "swap": MLFQ's hand-overs copy the displaced job's KV to host and
    back (no recomputation); "recompute" throws it away. Same tokens out either way."""
    reqs = [SimRequest(f"r{i}", 0.01 * i, 50, (SimSegment(200 if i == 0 else 5),)) for i in range(8)]
    out = {}
    for mode in ("recompute", "swap"):
        sim = Simulator(replace(DEPLOYMENT, kv_pool_tokens=16_000, max_num_seqs=1, preemption=mode), reqs,
                        SimConfig(policy="preserve", scheduler="fastserve", record_steps=True,
                                  scheduler_options={"min_slice_recomputes": 0.0}), on_step=check_step)
        states = sim.run()
        assert sim.preemptions > 0 and all(s.generated == s.req.generate_tokens for s in states)
        out[mode] = (sum(s.preempt_recomputed for s in states), sum(st.swapped_tokens for st in sim.steps))
    assert out["recompute"][0] > 0 and out["recompute"][1] == 0
    assert out["swap"][0] == 0 and out["swap"][1] > 0
