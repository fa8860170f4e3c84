"""The operator's ranking: highest sustainable rate first, near-ties broken by latency."""

from __future__ import annotations

from sim.rank import ranking_key


def _order(systems: dict[str, tuple[float | None, float | None]]) -> list[str]:
    top = max((r for r, _ in systems.values() if r is not None), default=0.0)
    return sorted(systems, key=lambda s: ranking_key(systems[s][0], top, systems[s][1]))


def test_a_higher_sustainable_rate_ranks_first():
    # The case that was ranked backwards: every system below the top tier came before it.
    systems = {"top": (0.194, 0.093), "second": (0.15, 0.093), "third": (0.136, 0.093), "none": (None, 0.098)}
    assert _order(systems) == ["top", "second", "third", "none"]


def test_near_ties_go_by_latency():
    systems = {"slow": (0.20, 0.15), "fast": (0.195, 0.10), "far": (0.10, 0.01)}
    assert _order(systems) == ["fast", "slow", "far"]
