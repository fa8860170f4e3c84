"""The text environment kind: one ve_world episode per `episode` id, its state kept in Redis.

Consecutive calls of one request continue the same episode; the state expires `ttl_s` after the
last action. Episodes are the request's own (the key holds its request id): another request,
another client's above all, naming the same episode id plays a different one, so it can neither
read nor move this one. The first call of an episode starts with the room description and the goal. One
request acts on its episode sequentially, so a plain GET/SET (no WATCH) is enough.
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from api_executor.errors import ToolError
from api_executor.kinds import ve_world
from common.names import PREFIX

MAX_ACTION_CHARS = 200


def episode_key(request_id: str, episode: str) -> str:
    return f"{PREFIX}:executor:ve:{request_id}:{episode}"


def run(arguments: dict[str, Any], client: redis.Redis, ttl_s: int, request_id: str) -> str:
    episode, action = arguments.get("episode"), arguments.get("action")
    if episode is None or action is None:
        missing = "episode" if episode is None else "action"
        raise ToolError(f"missing argument '{missing}' (ve takes 'episode' and 'action')")
    if not isinstance(episode, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", episode):
        raise ToolError("argument 'episode' must be 1-128 characters of letters, digits, _ . : -")
    if not isinstance(action, str) or len(action) > MAX_ACTION_CHARS:
        raise ToolError(f"argument 'action' must be a string of at most {MAX_ACTION_CHARS} characters")

    key = episode_key(request_id, episode)
    raw = client.get(key)
    first = raw is None
    state = ve_world.new_episode(episode) if first else json.loads(raw)  # type: ignore[arg-type]  # not first: a str
    if first and action.strip().lower() in ("", "look"):
        obs = ve_world.intro(state)
    else:
        state, obs = ve_world.step(state, action)
        if first:
            obs = f"{ve_world.intro(state)}\n\n{obs}"
    client.set(key, json.dumps(state, separators=(",", ":")), ex=ttl_s)
    return obs
