"""The InferCept workload trace (shared/data/README.md): loading and classifying its requests.

A file maps request keys to segment lists. Each segment is a stretch of generation, ended by an
API/tool/human call except (usually) the last. Counts come as integers (`prompt_tokens`, ...) or,
for the ShareGPT-derived types, as text (`prompt`, ...), measured here as len(text)/4 tokens like
the original analysis.

Request type follows the key shape, as the original generator classifies them:
- 32 hex digits: Math (calculator) or QA (Wikipedia search). The calculator answers in ~0.00008 s,
  so fast calls mean Math, with one correction: one QA request recorded its only search as 0 s.
  Its ~930-token prompt (QA's; Math prompts are ~400) settles it, giving the README's 98 Math / 50
  QA; api_time alone would say 99 / 49.
- `_1`: TTS; `_2`/`_3`: Image in text form, VE in token form; plain integers: Chatbot in text
  form, VE in token form.
In TTS and Image requests the calls alternate, starting with the tool: even segments end at the
tool (tts / image), odd ones at a human turn (chatbot). Checked on the file: tool calls average
6.1 s (TTS) and 11.5 s (Image), human turns ~28 s, as the README's table says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RequestType = Literal["math", "qa", "ve", "chatbot", "image", "tts"]
REQUEST_TYPES: tuple[str, ...] = RequestType.__args__  # type: ignore[attr-defined]

DEFAULT_TRACE = Path(__file__).resolve().parent / "data" / "infercept_mixture.json"
"""`--trace` points elsewhere."""

CHARS_PER_TOKEN = 4
FAST_CALL_S = 0.01
"""Calculator calls take ~0.0001 s, the fastest QA search ~0.3 s: anything under this is Math."""
QA_PROMPT_TOKENS = 670
"""Between Math's ~405-token and QA's ~934-token first prompts."""

_HEX_KEY = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class TraceSegment:
    prompt_tokens: int
    """Context handed to the model for this segment (later segments repeat the grown context)."""
    completion_tokens: int
    api_time_s: float | None = None
    """Duration of the call that ends this segment; None when generation ends here."""
    api_tokens: int | None = None
    """Tokens the call returns."""


@dataclass(frozen=True)
class TraceRequest:
    key: str
    type: RequestType
    segments: tuple[TraceSegment, ...]

    @property
    def num_calls(self) -> int:
        return sum(1 for s in self.segments if s.api_time_s is not None)


def _tokens(segment: dict, count_field: str, text_field: str) -> int | None:
    if count_field in segment:
        return int(segment[count_field])
    if text_field in segment:
        return round(len(segment[text_field]) / CHARS_PER_TOKEN)
    return None


def parse_segment(raw: dict) -> TraceSegment:
    prompt = _tokens(raw, "prompt_tokens", "prompt")
    completion = _tokens(raw, "completion_tokens", "completion")
    if prompt is None or completion is None:
        raise ValueError(f"segment lacks prompt/completion: {sorted(raw)}")
    api_time = raw.get("api_time")
    api_tokens = _tokens(raw, "api_token_length", "api_token")
    if api_time is None:
        api_tokens = None
    return TraceSegment(prompt, completion, None if api_time is None else float(api_time),
                        None if api_time is None else (api_tokens or 0))


def classify(key: str, raw_segments: list[dict]) -> RequestType:
    """The request type from the key's shape and the segments' form (see the module docstring)."""
    text_form = "prompt" in raw_segments[0]
    if _HEX_KEY.fullmatch(key):
        times = [s["api_time"] for s in raw_segments if "api_time" in s]
        fast = all(t < FAST_CALL_S for t in times)
        first_prompt = _tokens(raw_segments[0], "prompt_tokens", "prompt") or 0
        return "math" if fast and first_prompt < QA_PROMPT_TOKENS else "qa"
    if key.endswith("_1"):
        return "tts"
    if key.endswith(("_2", "_3")):
        return "image" if text_form else "ve"
    if key.isdigit():
        return "chatbot" if text_form else "ve"
    raise ValueError(f"request key {key!r} has no known shape (32 hex digits, _1/_2/_3 suffix, integer)")


def call_kind(request_type: RequestType, segment_index: int) -> str:
    """The API kind (common.schemas.ApiKind) of the call that ends segment `segment_index`."""
    if request_type == "math":
        return "calculator"
    if request_type in ("tts", "image"):
        return request_type if segment_index % 2 == 0 else "chatbot"
    return request_type  # qa, ve, chatbot


def load_trace(path: Path | str = DEFAULT_TRACE) -> list[TraceRequest]:
    """Every request of a trace file, in file order."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON object of request key -> segments")
    requests = []
    for key, raw_segments in data.items():
        if not isinstance(raw_segments, list) or not raw_segments:
            raise ValueError(f"{path}: request {key!r} has no segments")
        requests.append(TraceRequest(str(key), classify(str(key), raw_segments),
                                     tuple(parse_segment(s) for s in raw_segments)))
    return requests
