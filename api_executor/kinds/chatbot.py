"""chatbot: a human's follow-up turn. Trace: normal(28.2 s, 18.4 s), clipped to [1, 60] s."""

from __future__ import annotations

from typing import Any

from api_executor.kinds.standin import StandInSpec


def _header(arguments: dict[str, Any], duration_s: float) -> str:
    return "[user follow-up]"


SPEC = StandInSpec(
    kind="chatbot", mean_s=28.2, std_s=18.4, min_s=1.0, max_s=60.0, default_tokens=42, header=_header,
    filler=(
        "Thanks, that helps a lot.",
        "Could you explain the second step in more detail?",
        "I am not sure I follow the last part.",
        "Can you give me a shorter version of that answer?",
        "What would change if the input were twice as large?",
        "Please also list the sources you relied on.",
        "That makes sense, now let us move on to the next question.",
        "Is there a simpler way to do this?",
    ),
)
