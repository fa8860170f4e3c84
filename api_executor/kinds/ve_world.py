"""A small ALFWorld-like household: places (receptacles), objects, one goal per episode. Pure.

State is a JSON-able dict so the ve kind can keep it in Redis between calls; `step` takes a state
and an action text and returns the new state and the observation. Unknown or impossible actions
are observations ("Nothing happens."), never exceptions: the model is expected to flail a little.
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any

State = dict[str, Any]

# place -> (preposition, openable)
PLACES: dict[str, tuple[str, bool]] = {
    "cabinet 1": ("in", True), "cabinet 2": ("in", True), "coffeemachine 1": ("in", False),
    "countertop 1": ("on", False), "countertop 2": ("on", False), "diningtable 1": ("on", False),
    "drawer 1": ("in", True), "fridge 1": ("in", True), "garbagecan 1": ("in", False),
    "microwave 1": ("in", True), "shelf 1": ("on", False), "sinkbasin 1": ("in", False),
    "stoveburner 1": ("on", False),
}
START_PLACES = ("cabinet 1", "cabinet 2", "countertop 1", "countertop 2", "diningtable 1",
                "drawer 1", "fridge 1", "shelf 1")
OBJECTS = ("mug 1", "cup 1", "plate 1", "bowl 1", "apple 1", "potato 1", "egg 1", "tomato 1",
           "bread 1", "knife 1", "spoon 1", "lettuce 1")
# verb -> (attribute it gives, the place it needs)
TREATMENTS = {"clean": ("clean", "sinkbasin 1"), "heat": ("hot", "microwave 1"), "cool": ("cool", "fridge 1")}
# (attribute or None, object type, target place)
GOALS = (
    ("clean", "mug", "coffeemachine 1"), ("clean", "plate", "shelf 1"), ("hot", "potato", "diningtable 1"),
    ("cool", "apple", "countertop 1"), ("hot", "egg", "countertop 2"), (None, "knife", "drawer 1"),
    ("cool", "tomato", "diningtable 1"), (None, "spoon", "cabinet 2"),
)
HELP = ("Available actions: look, inventory, go to <place>, open <place>, close <place>, "
        "take <object> from <place>, put <object> in/on <place>, clean <object> with sinkbasin 1, "
        "heat <object> with microwave 1, cool <object> with fridge 1, examine <object or place>, help.")
NOTHING = "Nothing happens."


def new_episode(seed: str) -> State:
    """A deterministic layout and goal for an episode id (the same id always starts the same)."""
    rng = random.Random(seed)
    attr, kind, target = rng.choice(GOALS)
    contents: dict[str, list[str]] = {p: [] for p in PLACES}
    for obj in OBJECTS:
        choices = [p for p in START_PLACES if not (obj.split()[0] == kind and p == target)]
        contents[rng.choice(choices)].append(obj)
    text = f"put a {attr + ' ' if attr else ''}{kind} {PLACES[target][0]} {target}"
    return {"goal": {"attr": attr, "object": kind, "target": target, "text": text},
            "at": None, "holding": None, "contents": contents, "opened": [], "attrs": {},
            "steps": 0, "done": False}


def intro(state: State) -> str:
    return (f"You are in the middle of a room. Looking quickly around you, you see {_listing(list(PLACES))}.\n"
            f"Your task is to: {state['goal']['text']}.")


def step(state: State, action: str) -> tuple[State, str]:
    s = copy.deepcopy(state)
    s["steps"] += 1
    text = re.sub(r"\s+", " ", action.strip().lower()).rstrip(".")
    obs = _dispatch(s, text)
    if not s["done"] and _goal_met(s):
        s["done"] = True
        obs += "\nTask completed!"
    return s, obs


def _dispatch(s: State, text: str) -> str:
    if text == "look":
        return _look(s)
    if text in ("inventory", "i"):
        return f"You are carrying: a {s['holding']}." if s["holding"] else "You are not carrying anything."
    if text == "help":
        return HELP
    if m := re.fullmatch(r"go to (.+)", text):
        return _go(s, m[1])
    if m := re.fullmatch(r"(open|close) (.+)", text):
        return _open_close(s, m[1], m[2])
    if m := re.fullmatch(r"take (.+?) from (.+)", text):
        return _take(s, m[1], m[2])
    if m := re.fullmatch(r"(?:put|move) (.+?) (?:in/on|in|on|into|onto) (.+)", text):
        return _put(s, m[1], m[2])
    if m := re.fullmatch(r"(clean|heat|cool) (.+?) with (.+)", text):
        return _treat(s, m[1], m[2], m[3])
    if m := re.fullmatch(r"examine (.+)", text):
        return _examine(s, m[1])
    return NOTHING


def _resolve(name: str, candidates: tuple[str, ...] | list[str]) -> str | None:
    """'the fridge' -> 'fridge 1' when unambiguous; exact names always win."""
    name = re.sub(r"^(the|a|an) ", "", name.strip())
    if name in candidates:
        return name
    matches = [c for c in candidates if c.split()[0] == name]
    return matches[0] if len(matches) == 1 else None


def _visible(s: State, place: str) -> bool:
    return not PLACES[place][1] or place in s["opened"]


def _describe(s: State, place: str) -> str:
    prep = PLACES[place][0].capitalize()
    if not _visible(s, place):
        return f"The {place} is closed."
    items = s["contents"][place]
    return f"{prep} the {place}, you see {_listing(items) if items else 'nothing'}."


def _look(s: State) -> str:
    if s["at"] is None:
        return intro(s).split("\n")[0]
    return f"You are facing the {s['at']}. {_describe(s, s['at'])}"


def _go(s: State, name: str) -> str:
    place = _resolve(name, tuple(PLACES))
    if place is None:
        return NOTHING
    if s["at"] == place:
        return f"You are already at the {place}. {_describe(s, place)}"
    s["at"] = place
    return f"You arrive at the {place}. {_describe(s, place)}"


def _open_close(s: State, verb: str, name: str) -> str:
    place = _resolve(name, tuple(PLACES))
    if place is None or s["at"] != place or not PLACES[place][1]:
        return NOTHING
    is_open = place in s["opened"]
    if verb == "open":
        if is_open:
            return f"The {place} is already open."
        s["opened"].append(place)
        items = s["contents"][place]
        return f"You open the {place}. The {place} is open. In it, you see {_listing(items) if items else 'nothing'}."
    if not is_open:
        return f"The {place} is already closed."
    s["opened"].remove(place)
    return f"You close the {place}."


def _take(s: State, obj_name: str, place_name: str) -> str:
    place = _resolve(place_name, tuple(PLACES))
    if place is None or s["at"] != place or not _visible(s, place):
        return NOTHING
    obj = _resolve(obj_name, s["contents"][place])
    if obj is None:
        return NOTHING
    if s["holding"]:
        return f"You are already carrying the {s['holding']}. Put it somewhere first."
    s["contents"][place].remove(obj)
    s["holding"] = obj
    return f"You pick up the {obj} from the {place}."


def _put(s: State, obj_name: str, place_name: str) -> str:
    place = _resolve(place_name, tuple(PLACES))
    held = s["holding"]
    if place is None or held is None or s["at"] != place or not _visible(s, place):
        return NOTHING
    if _resolve(obj_name, [held]) is None:
        return NOTHING
    s["contents"][place].append(held)
    s["holding"] = None
    return f"You put the {held} {PLACES[place][0]} the {place}."


def _treat(s: State, verb: str, obj_name: str, place_name: str) -> str:
    attr, needed = TREATMENTS[verb]
    place = _resolve(place_name, tuple(PLACES))
    held = s["holding"]
    if place != needed or s["at"] != place or held is None or _resolve(obj_name, [held]) is None:
        return NOTHING
    attrs = s["attrs"].setdefault(held, [])
    if attr not in attrs:
        attrs.append(attr)
    # Heating and cooling undo each other.
    opposite = {"hot": "cool", "cool": "hot"}.get(attr)
    if opposite in attrs:
        attrs.remove(opposite)
    return f"You {verb} the {held} using the {place}."


def _examine(s: State, name: str) -> str:
    place = _resolve(name, tuple(PLACES))
    if place is not None:
        return _describe(s, place) if s["at"] == place else NOTHING
    reachable = ([s["holding"]] if s["holding"] else []) + (
        s["contents"][s["at"]] if s["at"] and _visible(s, s["at"]) else [])
    obj = _resolve(name, reachable)
    if obj is None:
        return NOTHING
    attrs = s["attrs"].get(obj, [])
    return f"This is a {' '.join(attrs) + ' ' if attrs else ''}{obj}."


def _goal_met(s: State) -> bool:
    goal = s["goal"]
    for obj in s["contents"][goal["target"]]:
        if obj.split()[0] == goal["object"] and (goal["attr"] is None or goal["attr"] in s["attrs"].get(obj, [])):
            return True
    return False


def _listing(items: list[str]) -> str:
    named = [f"a {i}" for i in items]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + f", and {named[-1]}"
