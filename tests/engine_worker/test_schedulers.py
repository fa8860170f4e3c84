"""What every queue-order policy owes the scheduler: a total, deterministic order; plus FCFS."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_worker.policies.cost_model import GPTJ_A100
from engine_worker.policies.fcfs import Fcfs
from engine_worker.policies.queue_order import QueuedRequest, ranks
from engine_worker.policies.schedulers import SCHEDULERS, make_scheduler

snapshot = st.builds(
    QueuedRequest,
    request_id=st.text("abcdef0123", min_size=1, max_size=4),
    arrival_s=st.floats(0, 100),
    state=st.sampled_from(["waiting", "running", "paused"]),
    context_tokens=st.integers(1, 4000),
    generated_tokens=st.integers(0, 500),
    program_id=st.one_of(st.none(), st.sampled_from(["p1", "p2", "p3"])),
    attained_s=st.floats(0, 10),
    last_scheduled_s=st.one_of(st.none(), st.floats(0, 100)),
    calls_done=st.integers(0, 3),
    predicted_output_tokens=st.one_of(st.none(), st.integers(0, 2000)),
    api_kind=st.one_of(st.none(), st.sampled_from(["calculator", "qa", "chatbot"])),
    predicted_call_s=st.one_of(st.none(), st.floats(0, 60)),
)
snapshot_lists = st.lists(snapshot, max_size=25, unique_by=lambda s: s.request_id)
# One scheduling round: the snapshots, then which of them ran and for how long.
rounds = st.lists(st.tuples(snapshot_lists, st.lists(st.floats(0, 0.5), max_size=5)), min_size=1, max_size=6)


def _play(name: str, played: list[tuple[list[QueuedRequest], list[float]]],
          shuffle_seed: int | None) -> list[list[str]]:
    policy = make_scheduler(name, GPTJ_A100)
    orders, now = [], 0.0
    for snapshots, run_seconds in played:
        given_snapshots = list(snapshots)
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(given_snapshots)
        order = policy.order(given_snapshots, now)
        orders.append(order)
        now += 0.05
        policy.observe(dict(zip(order, run_seconds)), now)
    return orders


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@settings(max_examples=60, deadline=None)
@given(played=rounds, shuffle_seed=st.integers(0, 1000))
def test_order_is_a_total_deterministic_permutation(name, played, shuffle_seed):
    orders = _play(name, played, None)
    for order, (snapshots, _) in zip(orders, played):
        assert sorted(order) == sorted(s.request_id for s in snapshots)  # everyone exactly once
    # Same history, same answer; and the snapshots' input order never matters.
    assert _play(name, played, None) == orders
    assert _play(name, played, shuffle_seed) == orders


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_duplicate_ids_are_refused(name):
    twice = [QueuedRequest("a", 0.0, "waiting", 10), QueuedRequest("a", 1.0, "waiting", 10)]
    with pytest.raises(ValueError, match="more than once"):
        make_scheduler(name, GPTJ_A100).order(twice, 0.0)


def test_registry_names_and_unknown_name():
    assert set(SCHEDULERS) == {"fcfs", "fastserve", "lamps", "continuum", "autellix"}
    with pytest.raises(ValueError, match="unknown scheduler 'sjf'"):
        make_scheduler("sjf", GPTJ_A100)
    assert make_scheduler("fastserve", GPTJ_A100, starvation_s=0.3).starvation_s == 0.3


def test_fcfs_orders_by_original_arrival_whatever_the_state():
    snapshots = [
        QueuedRequest("returned-from-call", 1.0, "waiting", 900, calls_done=2, last_scheduled_s=50.0),
        QueuedRequest("running", 3.0, "running", 100),
        QueuedRequest("new", 40.0, "waiting", 50),
        QueuedRequest("b-tie", 3.0, "paused", 10),
    ]
    assert Fcfs(ttft_budget_s=None).order(snapshots, 60.0) == ["returned-from-call", "b-tie", "running", "new"]


def test_fcfs_ttft_budget_puts_overdue_new_arrivals_first():
    snapshots = [
        QueuedRequest("resumed", 1.0, "waiting", 900, calls_done=1, generated_tokens=40),
        QueuedRequest("new-late", 50.0, "waiting", 50),
        QueuedRequest("new-overdue", 40.0, "waiting", 50),
        QueuedRequest("started", 30.0, "waiting", 50, generated_tokens=3),  # has its first token
    ]
    assert Fcfs(ttft_budget_s=None).order(snapshots, 60.0) == ["resumed", "started", "new-overdue", "new-late"]
    # At 60 s only the arrival of 40 s has waited more than 15 s; at 70 s both have.
    assert Fcfs(ttft_budget_s=15).order(snapshots, 60.0) == ["new-overdue", "resumed", "started", "new-late"]
    assert Fcfs(ttft_budget_s=15).order(snapshots, 70.0) == ["new-overdue", "new-late", "resumed", "started"]
    assert make_scheduler("fcfs", GPTJ_A100).ttft_budget_s == 2.0  # on by default
    assert make_scheduler("fcfs", GPTJ_A100, ttft_budget_s=None).ttft_budget_s is None
    with pytest.raises(ValueError, match="ttft_budget_s"):
        Fcfs(ttft_budget_s=-1)


def test_ranks_turn_an_order_into_sort_keys():
    assert ranks(["c", "a", "b"]) == {"c": 0, "a": 1, "b": 2}


def test_program_defaults_to_the_request_itself():
    assert QueuedRequest("r", 0.0, "waiting", 1).program == "request:r"
    assert QueuedRequest("r", 0.0, "waiting", 1, program_id="agent-7").program == "agent-7"
    assert QueuedRequest("r", 5.0, "waiting", 1, last_scheduled_s=2.0).waiting_since_s == 5.0
