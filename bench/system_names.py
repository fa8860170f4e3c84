"""Bench system names: `POLICY[+SCHEDULER][:key=value...]`, e.g. `infercept+fastserve:starvation_s=0.3`.

Pure (no stack imports), so the bench's configuration and the simulator can name systems too.
"""

from __future__ import annotations

import json


def split_system(name: str) -> tuple[str, str, dict]:
    """`infercept+fastserve:starvation_s=0.3` -> (policy, scheduler, scheduler options); a bare
    policy runs FCFS. Options are `:key=value` each (commas separate systems on the command line),
    values JSON scalars."""
    head, *raw_options = name.split(":")
    policy, _, scheduler = head.partition("+")
    options = {}
    for item in raw_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"system {name!r}: a scheduler option is :key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"system {name!r}: option {key} is not a JSON value: {value!r}") from None
    return policy, scheduler or "fcfs", options


def system_name(policy: str, scheduler: str, options: dict) -> str:
    """The inverse of split_system, options sorted: how a running stack names itself."""
    name = policy if scheduler == "fcfs" else f"{policy}+{scheduler}"
    if options:
        name += "".join(f":{key}={json.dumps(value)}" for key, value in sorted(options.items()))
    return name
