"""Per-kind duration defaults, used when Redis is down or a kind has no history yet.

Means (and, for the stand-ins, standard deviations) are the ones measured in the trace the
stand-ins are calibrated on. Only the timed stand-ins are multiplied by `time_scale`: it is the
knob that compresses their waits (common/settings.py); the real kinds run at real speed.
"""

from __future__ import annotations

from common.schemas import API_KINDS

DEFAULT_MEAN_S: dict[str, float] = {
    "calculator": 0.0001,
    "qa": 0.71,
    "ve": 0.085,
    "chatbot": 28.2,
    "image": 11.5,
    "tts": 6.1,
    "http": 1.0,
}
DEFAULT_STD_S: dict[str, float] = {"chatbot": 18.4, "image": 0.9, "tts": 2.7}
TIMED_KINDS: frozenset[str] = frozenset({"chatbot", "image", "tts"})

assert set(DEFAULT_MEAN_S) == set(API_KINDS), "every API kind needs a default duration"


class UnknownApi(ValueError):
    """An API kind that is not in common.schemas.API_KINDS (a caller's bug, not an outage)."""


def check_api(api: str) -> str:
    if api not in DEFAULT_MEAN_S:
        raise UnknownApi(f"unknown api kind {api!r}; known: {', '.join(API_KINDS)}")
    return api


def default_mean_s(api: str, time_scale: float) -> float:
    scale = time_scale if check_api(api) in TIMED_KINDS else 1.0
    return DEFAULT_MEAN_S[api] * scale


def default_std_s(api: str, time_scale: float) -> float:
    scale = time_scale if check_api(api) in TIMED_KINDS else 1.0
    return DEFAULT_STD_S.get(api, 0.0) * scale
