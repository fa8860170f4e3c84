"""The text environment: a whole episode played through the ve kind, its state in real Redis."""

from __future__ import annotations

import pytest
import redis

from api_executor.errors import ToolError
from api_executor.kinds import ve, ve_world


def _episode_with_goal(kind: str) -> str:
    return next(f"ep-{i}" for i in range(1000) if ve_world.new_episode(f"ep-{i}")["goal"]["object"] == kind)


def _act(client: redis.Redis, episode: str, action: str, request_id: str = "req-1") -> str:
    return ve.run({"episode": episode, "action": action}, client, ttl_s=60, request_id=request_id)


def test_clean_mug_episode(redis_client: redis.Redis) -> None:
    episode = _episode_with_goal("mug")
    first = _act(redis_client, episode, "look")
    assert "Your task is to: put a clean mug in coffeemachine 1." in first

    state = ve_world.new_episode(episode)
    where = next(p for p, items in state["contents"].items() if "mug 1" in items)
    assert "You arrive at the" in _act(redis_client, episode, f"go to {where}")
    if ve_world.PLACES[where][1]:
        assert "You open the" in _act(redis_client, episode, f"open {where}")
    assert _act(redis_client, episode, f"take mug 1 from {where}") == f"You pick up the mug 1 from the {where}."
    assert _act(redis_client, episode, "inventory") == "You are carrying: a mug 1."
    # Putting it in dirty does not complete the task.
    _act(redis_client, episode, "go to coffeemachine 1")
    assert "Task completed" not in _act(redis_client, episode, "put mug 1 in coffeemachine 1")
    _act(redis_client, episode, "take mug 1 from coffeemachine 1")
    _act(redis_client, episode, "go to sinkbasin")  # the number may be left out when unambiguous
    assert _act(redis_client, episode, "clean mug 1 with sinkbasin 1") == "You clean the mug 1 using the sinkbasin 1."
    assert _act(redis_client, episode, "examine mug 1") == "This is a clean mug 1."
    _act(redis_client, episode, "go to coffeemachine 1")
    done = _act(redis_client, episode, "put mug 1 in coffeemachine 1")
    assert done == "You put the mug 1 in the coffeemachine 1.\nTask completed!"

    stored_ttl = redis_client.ttl(ve.episode_key("req-1", episode))
    assert 0 < stored_ttl <= 60


def test_first_action_gets_the_intro_too(redis_client: redis.Redis) -> None:
    obs = _act(redis_client, "fresh-1", "go to fridge 1")
    intro, _, rest = obs.partition("\n\n")
    assert "Your task is to:" in intro and rest.startswith("You arrive at the fridge 1. The fridge 1 is closed.")
    assert "Your task is to" not in _act(redis_client, "fresh-1", "look")


@pytest.mark.parametrize("action", ["dance", "take mug 1 from moon 7", "go to", "open countertop 1",
                                    "put nothing in fridge 1", "heat bread 1 with sinkbasin 1", ""])
def test_nonsense_is_an_observation(redis_client: redis.Redis, action: str) -> None:
    _act(redis_client, "nonsense", "look")
    assert _act(redis_client, "nonsense", action) == "Nothing happens."


def test_episodes_are_separate(redis_client: redis.Redis) -> None:
    _act(redis_client, "a-1", "go to countertop 1")
    _act(redis_client, "b-1", "go to shelf 1")
    assert _act(redis_client, "a-1", "look").startswith("You are facing the countertop 1.")
    assert _act(redis_client, "b-1", "look").startswith("You are facing the shelf 1.")



def test_another_request_cannot_read_or_move_an_episode(redis_client: redis.Redis) -> None:
    _act(redis_client, "shared-name", "go to countertop 1", request_id="victim")
    # The same episode id from another request is a new episode of its own.
    assert "Your task is to:" in _act(redis_client, "shared-name", "go to shelf 1", request_id="other")
    assert _act(redis_client, "shared-name", "look", request_id="victim").startswith("You are facing the countertop 1.")


@pytest.mark.parametrize(("arguments", "message"), [
    ({"action": "look"}, "missing argument 'episode'"),
    ({"episode": "e"}, "missing argument 'action'"),
    ({"episode": "bad id!", "action": "look"}, "'episode' must be"),
    ({"episode": "e", "action": "x" * 201}, "'action' must be"),
])
def test_bad_arguments(redis_client: redis.Redis, arguments: dict, message: str) -> None:
    with pytest.raises(ToolError) as info:
        ve.run(arguments, redis_client, ttl_s=60, request_id="req-1")
    assert message in str(info.value)


def test_layout_is_deterministic_and_complete() -> None:
    a, b = ve_world.new_episode("same"), ve_world.new_episode("same")
    assert a == b
    placed = sorted(o for items in a["contents"].values() for o in items)
    assert placed == sorted(ve_world.OBJECTS)
    goal = a["goal"]
    assert not any(o.startswith(goal["object"]) for o in a["contents"][goal["target"]])
