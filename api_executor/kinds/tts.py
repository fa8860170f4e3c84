"""tts: text-to-speech. Trace: normal(6.1 s, 2.7 s), clipped to >= 0.5 s."""

from __future__ import annotations

from typing import Any

from api_executor.kinds.standin import StandInSpec, prompt_words


def _header(arguments: dict[str, Any], duration_s: float) -> str:
    text = prompt_words(arguments, "text", "input", limit=8)
    about = f' for "{text}"' if text else ""
    return f"[speech synthesized: {duration_s:.1f} s of audio{about}]"


SPEC = StandInSpec(
    kind="tts", mean_s=6.1, std_s=2.7, min_s=0.5, max_s=600.0, default_tokens=25, header=_header,
    filler=(
        "The audio is a 24 kHz mono WAV file.",
        "The voice is neutral and clearly paced.",
        "The file was saved to the shared output folder.",
        "Playback is ready.",
    ),
)
