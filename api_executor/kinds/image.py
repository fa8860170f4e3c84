"""image: text-to-image generation. Trace: normal(11.5 s, 0.9 s)."""

from __future__ import annotations

from typing import Any

from api_executor.kinds.standin import StandInSpec, prompt_words


def _header(arguments: dict[str, Any], duration_s: float) -> str:
    prompt = prompt_words(arguments, "prompt", "description", "text")
    return f"[image generated: {prompt}]" if prompt else "[image generated]"


SPEC = StandInSpec(
    kind="image", mean_s=11.5, std_s=0.9, min_s=0.1, max_s=600.0, default_tokens=25, header=_header,
    filler=(
        "The image is 1024 by 1024 pixels in PNG format.",
        "It was saved to the shared output folder.",
        "The composition follows the prompt with soft natural lighting.",
        "A preview thumbnail is attached to this message.",
    ),
)
